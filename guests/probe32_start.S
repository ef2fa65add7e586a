/* Entry points of probe32: _start for a plain ELF32 boot (no boot information), pvh_start for
 * a PVH boot (EBX = the hvm_start_info), named by Xen's PHYS32_ENTRY note as Linux's is. */
    .section .text.start, "ax"
    .code32
    .globl _start, pvh_start
_start:
    xor %eax, %eax
    jmp 1f
pvh_start:
    mov %ebx, %eax
1:  mov $probe32_stack_top, %esp
    push %eax
    call probe32_main
2:  hlt
    jmp 2b

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start

    .section .bss
    .balign 16
    .skip 8192
probe32_stack_top:

    .section .note.GNU-stack, "", @progbits

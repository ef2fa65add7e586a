/* Entry points. The VMM enters _start in long mode with RSP = 0 and RDI = the core id; a core
 * started by CPU_ON enters secondary_entry with RDI = the context id, whose low 16 bits carry
 * the core id by this library's convention. Each core's stack is the 4 KiB page
 * [_stack_base + core * 4096, +4096). */
    .section .text.start, "ax"
    .code64
    .globl _start
_start:
    mov %rdi, %rax
    jmp 1f

    .globl secondary_entry
secondary_entry:
    movzwl %di, %eax
    mov $1, %r8d            /* secondary */
    jmp 2f

1:  xor %r8d, %r8d          /* started by the VMM */
2:  inc %rax
    shl $12, %rax
    lea _stack_base(%rip), %rsp
    add %rax, %rsp
    test %r8d, %r8d
    jnz 3f
    call guest_main
    jmp guest_power_off
3:  call guest_secondary_main
    jmp guest_power_off

    .section .note.GNU-stack, "", @progbits

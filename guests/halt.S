/* HLT once (no interrupt controller: the VMM sees a HLT exit and resumes), then SYSTEM_OFF. */
    .section .text.start, "ax"
    .globl _start
_start:
    hlt
    mov $0x84000008, %eax
    mov $0x600, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits

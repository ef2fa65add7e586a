/* MMIO exit benchmark: reads a qword from 0xd0000000 (no RAM there) forever. No stack. */
    .section .text.start, "ax"
    .globl _start
_start:
    mov $0xd0000000, %ebx
1:  mov (%rbx), %rax
    jmp 1b
    .section .note.GNU-stack, "", @progbits

/* No exits at all: counts in RAX forever (for kicks, suspend/resume and register reads). */
    .section .text.start, "ax"
    .globl _start
_start:
    xor %eax, %eax
1:  inc %rax
    jmp 1b
    .section .note.GNU-stack, "", @progbits

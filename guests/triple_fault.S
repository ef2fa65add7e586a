/* An exception with no IDT: the CPU triple-faults. */
    .section .text.start, "ax"
    .globl _start
_start:
    ud2
    .section .note.GNU-stack, "", @progbits

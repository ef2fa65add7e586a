/* A write to a port no device claims (0x1234), then halt in a loop. */
    .section .text.start, "ax"
    .globl _start
_start:
    mov $0x1234, %dx
    mov $0x5a, %al
    outb %al, %dx
1:  cli
    hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits

/* Exit benchmark: `out dx, eax` to port 0x510 with a counter in EAX, forever. No stack. */
    .section .text.start, "ax"
    .globl _start
_start:
    xor %eax, %eax
    mov $0x510, %dx
1:  outl %eax, %dx
    inc %eax
    jmp 1b
    .section .note.GNU-stack, "", @progbits

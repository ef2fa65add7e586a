/* Platform-call benchmark: PSCI_VERSION through port 0x600, forever. No stack. */
    .section .text.start, "ax"
    .globl _start
_start:
    mov $0x600, %dx
1:  mov $0x84000000, %eax
    outl %eax, %dx
    jmp 1b
    .section .note.GNU-stack, "", @progbits

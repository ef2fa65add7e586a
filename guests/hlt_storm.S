/* HLT forever with interrupts off: without an in-kernel irqchip every HLT exits to the VMM. */
    .section .text.start, "ax"
    .globl _start
_start:
    cli
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits

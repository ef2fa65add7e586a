/* Platform-call benchmark: PSCI_VERSION through the platform-call port, forever. No stack. */
#include "pcall_port.h"
    .section .text.start, "ax"
    .globl _start
_start:
    mov $PLATFORM_CALL_PORT, %dx
1:  mov $0x84000000, %eax
    outl %eax, %dx
    jmp 1b
    .section .note.GNU-stack, "", @progbits

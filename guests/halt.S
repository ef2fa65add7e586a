/* HLT once (no interrupt controller: the VMM sees a HLT exit and resumes), then SYSTEM_OFF. */
#include "pcall_port.h"
    .section .text.start, "ax"
    .globl _start
_start:
    hlt
    mov $0x84000008, %eax
    mov $PLATFORM_CALL_PORT, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits

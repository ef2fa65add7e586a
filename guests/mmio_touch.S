/* Reads 8 bytes from guest-physical 0xd0000000 (no RAM there: an MMIO exit), reports the low
 * 4 bytes with `out dx, eax` to port 0x511, then SYSTEM_OFF. */
#include "pcall_port.h"
    .section .text.start, "ax"
    .globl _start
_start:
    mov $0xd0000000, %ebx
    mov (%rbx), %rax
    mov $0x511, %dx
    outl %eax, %dx
    mov $0x84000008, %eax
    mov $PLATFORM_CALL_PORT, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b
    .section .note.GNU-stack, "", @progbits

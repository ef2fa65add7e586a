/* hello32: the guest of examples/c_vmm.c, a flat 32-bit protected-mode program linked at 1 MiB
 * that needs no stack. It writes a line to port 0xe9 one byte at a time, reads a counter from a
 * device at guest-physical 0xd0000000 (no memory there: the VMM answers), writes the counter
 * plus one back to 0xd0000004, and powers off through the platform call (PSCI SYSTEM_OFF on
 * the platform-call port), which makes vm_run return 0. */
#include "pcall_port.h"
    .code32
    .text
    .globl _start
_start:
    mov $message, %esi
    mov $0xe9, %dx
1:  lodsb
    test %al, %al
    jz 2f
    outb %al, %dx
    jmp 1b
2:  mov 0xd0000000, %eax
    inc %eax
    mov %eax, 0xd0000004
    mov $0x84000008, %eax
    mov $PLATFORM_CALL_PORT, %dx
    outl %eax, %dx
3:  hlt
    jmp 3b

message:
    .asciz "hello from a 32-bit guest\n"

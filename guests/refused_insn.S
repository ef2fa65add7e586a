/* At CPL 0, an instruction the VMM does not complete for a host emulator that refuses it
 * (lock cmpxchg16b on a 16-byte-aligned operand, which the CPU itself runs), then SYSTEM_OFF. On
 * a host whose KVM emulates kernel code the VM stops with the instruction's bytes in the
 * message; elsewhere it powers off. */
#include "pcall_port.h"
    .section .text.start, "ax"
    .globl _start
_start:
    lea slot(%rip), %rdi
    xor %eax, %eax
    xor %edx, %edx
    xor %ebx, %ebx
    xor %ecx, %ecx
    lock cmpxchg16b (%rdi)
    mov $0x84000008, %eax
    mov $PLATFORM_CALL_PORT, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b
    .data
    .balign 16
slot: .quad 0, 0
    .section .note.GNU-stack, "", @progbits

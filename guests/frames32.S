/* frames32: a flat 32-bit protected-mode program for the frame-mapping tests. Linked at 1 MiB;
 * the VMM enters it through VMX_GUEST_RIP with three guest-physical addresses in the thread
 * context: EBX = two writable frames, ECX = one read-only frame, ESI = an anonymous
 * reservation served by a fault callback. Every value it reads goes to port 0x524 as a 4-byte
 * OUT; it ends by powering off through the platform call (PSCI SYSTEM_OFF on the platform-call port). */
#include "pcall_port.h"
    .code32
    .text
    .globl _start
_start:
    mov %ecx, %edi          /* ECX is free from here on */
    mov (%ebx), %eax        /* 1: first word of frame 0, written by the VMM */
    call echo
    movl $0xcafef00d, 0x1000(%ebx)  /* frame 1: the VMM reads it back */
    mov 0xffc(%ebx), %eax   /* 2: last word of frame 0 */
    call echo
    mov (%edi), %eax        /* 3: the read-only frame */
    call echo
    movl $0x12345678, (%edi)  /* refused by the mapping: the reservation's callback sees it */
    mov (%edi), %eax        /* 4: unchanged */
    call echo
    mov 8(%esi), %eax       /* 5: answered by the anonymous reservation's callback */
    call echo
    movw $0x55aa, 4(%esi)   /* a 2-byte write the callback records */
    mov 0x1000(%ebx), %eax  /* 6: frame 1 as the guest wrote it */
    call echo

    mov $0x84000008, %eax   /* SYSTEM_OFF */
    mov $PLATFORM_CALL_PORT, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b

echo:
    mov $0x524, %dx
    outl %eax, %dx
    ret

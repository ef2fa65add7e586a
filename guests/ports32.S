/* ports32: a flat 32-bit protected-mode program for C VMM tests written against libsel4vm's
 * API. Linked at 1 MiB; the VMM enters it by setting VMX_GUEST_RIP. It writes 1, 2 and 4 bytes
 * to port 0x520, reads them back and echoes each value (and EBX, set by the VMM through the
 * thread context) to port 0x524, reads two ports nobody handles (0x530, 0x532) and echoes
 * those, writes one (0x531); then writes 4, 2 and 1 bytes to a device the VMM reserved at
 * 0xd0000000 and echoes 4-, 2- and 1-byte reads from it; finally it writes port 0x528, whose
 * handler reports an error. */
    .code32
    .text
    .globl _start
_start:
    mov $0x520, %dx
    mov $0x11, %al
    outb %al, %dx
    mov $0x2233, %ax
    outw %ax, %dx
    mov $0x44556677, %eax
    outl %eax, %dx

    inb %dx, %al
    movzbl %al, %eax
    call echo
    inw %dx, %ax
    movzwl %ax, %eax
    call echo
    inl %dx, %eax
    call echo
    mov %ebx, %eax
    call echo

    mov $0x530, %dx
    inl %dx, %eax
    call echo
    mov $0x532, %dx
    inl %dx, %eax
    call echo
    mov $0x531, %dx
    mov $0x5a, %al
    outb %al, %dx

    movl $0x11223344, 0xd0000000
    movw $0x5566, 0xd0000010
    movb $0x77, 0xd0000020
    movl 0xd0000004, %eax
    call echo
    movzwl 0xd0000008, %eax
    call echo
    movzbl 0xd000000c, %eax
    call echo

    mov $0x528, %dx
    outb %al, %dx
1:  hlt
    jmp 1b

/* Writes EAX to port 0x524, then points DX back at 0x520. (Uses the stack the VMM set.) */
echo:
    mov $0x524, %dx
    outl %eax, %dx
    mov $0x520, %dx
    ret

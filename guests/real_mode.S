/* A flat binary for real mode: reports where it runs (CS, its load offset, CR0.PE) on the
 * serial port, then powers off with the platform call. Position-independent within its
 * segment, so it runs at any --load-addr. */
#include "pcall_port.h"
    .code16
    .text
    .globl _start
_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    mov %ax, %ss
    call 1f
1:  pop %bx                 /* bx = our offset in CS: the load address's low part */
    sub $(1b - _start), %bx
    lea -16(%bx), %sp       /* a stack just below the image, in the same segment */

    lea msg_cs(%bx), %si
    call puts
    mov %cs, %ax
    call puthex
    lea msg_ip(%bx), %si
    call puts
    mov %bx, %ax
    call puthex
    lea msg_pe(%bx), %si
    call puts
    smsw %ax
    and $1, %ax
    call puthex
    lea msg_nl(%bx), %si
    call puts

    mov $0x84000008, %eax   /* SYSTEM_OFF */
    mov $PLATFORM_CALL_PORT, %dx
    outl %eax, %dx
2:  hlt
    jmp 2b

/* Prints the NUL-terminated string at DS:SI. */
puts:
    mov $0x3f8, %dx
3:  lodsb
    test %al, %al
    jz 4f
    outb %al, %dx
    jmp 3b
4:  ret

/* Prints AX as 0x and four hex digits. */
puthex:
    mov %ax, %cx
    mov $0x3f8, %dx
    mov $'0', %al
    outb %al, %dx
    mov $'x', %al
    outb %al, %dx
    mov $4, %di
5:  rol $4, %cx
    mov %cl, %al
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 6f
    add $('a' - '9' - 1), %al
6:  outb %al, %dx
    dec %di
    jnz 5b
    ret

msg_cs: .asciz "real mode: cs="
msg_ip: .asciz " ip="
msg_pe: .asciz " cr0.pe="
msg_nl: .asciz "\n"

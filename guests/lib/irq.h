/* Interrupt plumbing for guests that take interrupts through KVM's in-kernel irqchip: an IDT,
 * stubs that save the caller-saved registers around a C handler, and the 8259 PIC pair routed
 * through the local APIC (LVT0 as ExtINT). Header-only: include it from one file. */
#pragma once

#include "guest.h"

#define PIC1 0x20
#define PIC2 0xa0
#define IRQ_BASE 0x20 /* the master PIC's vector base; the slave's is IRQ_BASE + 8 */
#define LAPIC_BASE 0xfee00000ul

struct idt_gate {
    unsigned short off0, selector;
    unsigned char ist, type;
    unsigned short off1;
    unsigned int off2, zero;
};

static struct idt_gate idt[256] __attribute__((aligned(16)));

/* An interrupt stub `name` that calls `handler` (void handler(void)) and returns with IRETQ. */
#define IRQ_STUB(name, handler)                                         \
    __asm__(".text\n" #name                                             \
            ":\n"                                                       \
            "  push %rax; push %rcx; push %rdx; push %rsi; push %rdi\n" \
            "  push %r8; push %r9; push %r10; push %r11\n"              \
            "  call " #handler                                          \
            "\n"                                                        \
            "  pop %r11; pop %r10; pop %r9; pop %r8\n"                  \
            "  pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax\n"      \
            "  iretq\n")

/* Points `vector` at `stub` (an interrupt gate in the current code segment). */
static void set_gate(int vector, char *stub) {
    unsigned long handler = (unsigned long)stub;
    unsigned short cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    idt[vector] = (struct idt_gate){
        (unsigned short)handler,       cs, 0, 0x8e, (unsigned short)(handler >> 16),
        (unsigned int)(handler >> 32), 0};
}

static void lapic_write(unsigned reg, unsigned value) {
    *(volatile unsigned *)(LAPIC_BASE + reg) = value;
}

/* Loads the IDT; programs both PICs edge-triggered at IRQ_BASE with only the master's lines in
 * `open_lines` (a bit per line) unmasked; enables the local APIC with LINT0 as ExtINT. */
static void interrupts_init(unsigned char open_lines) {
    struct __attribute__((packed)) {
        unsigned short limit;
        unsigned long base;
    } idtr = {sizeof(idt) - 1, (unsigned long)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
    outb(PIC1, 0x11);
    outb(PIC2, 0x11);
    outb(PIC1 + 1, IRQ_BASE);
    outb(PIC2 + 1, IRQ_BASE + 8);
    outb(PIC1 + 1, 0x04);
    outb(PIC2 + 1, 0x02);
    outb(PIC1 + 1, 0x01);
    outb(PIC2 + 1, 0x01);
    outb(PIC1 + 1, (unsigned char)~open_lines);
    outb(PIC2 + 1, 0xff);
    lapic_write(0xf0, 0x1ff);
    lapic_write(0x350, 0x700);
}

/* A non-specific end of interrupt to the master PIC. */
static inline void pic_eoi(void) { outb(PIC1, 0x20); }

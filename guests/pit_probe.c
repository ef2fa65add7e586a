/* pit_probe: drives the 8254 PIT as an OS calibrating its timer does, for a VMM whose own PIT
 * model owns ports 0x40-0x43 while KVM's in-kernel irqchip is on (camkes-vm's i8254.c): channel
 * 0 in mode 2 with a count of 0x2e9c (1 kHz), a latch and two reads of the count, then waits for
 * IRQ 0, which the VMM's model raises, and acknowledges it at the PIC. Values read go out on
 * port 0x5f0 (32-bit); port 0x5f8 says done. */
#include "irq.h"

#define PIT_CH0 0x40
#define PIT_MODE 0x43
#define PORT_VALUE 0x5f0
#define PORT_DONE 0x5f8

static volatile int ticks;

void irq0_handler(void) {
    ticks = ticks + 1;
    pic_eoi();
}

extern char irq0_stub[];
IRQ_STUB(irq0_stub, irq0_handler);

static inline void outl(unsigned short port, unsigned v) {
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

void guest_main(unsigned long core) {
    (void)core;
    set_gate(IRQ_BASE + 0, irq0_stub);
    interrupts_init(1u << 0);
    outb(PIT_MODE, 0x34);  // channel 0, lobyte/hibyte, mode 2
    outb(PIT_CH0, 0x9c);
    outb(PIT_CH0, 0x2e);
    outb(PIT_MODE, 0x00);  // latch channel 0
    unsigned lo = inb(PIT_CH0);
    unsigned hi = inb(PIT_CH0);
    outl(PORT_VALUE, lo | hi << 8);
    while (ticks < 1) __asm__ volatile("sti; hlt; cli" ::: "memory");
    outl(PORT_VALUE, (unsigned)ticks);
    outl(PORT_DONE, 0);
    for (;;) __asm__ volatile("cli; hlt");
}

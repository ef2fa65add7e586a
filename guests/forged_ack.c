/* forged_ack: a hostile guest. It programs the PIC with every line masked, never takes an
 * interrupt, and then writes a specific EOI for IRQ 4 (OCW2 0x64) to the master PIC forever,
 * counting the writes in `forged`, whose address it prints first. Each write is an
 * acknowledgement of IRQ 4 to KVM, whether or not IRQ 4 was raised. Needs the irqchip. */
#include "irq.h"

static volatile unsigned long forged;

void guest_main(unsigned long core) {
    (void)core;
    (void)set_gate; /* no gates: interrupts stay disabled */
    interrupts_init(0);
    serial_puts("forged_ack: counter at ");
    serial_put_hex((unsigned long)&forged, 16);
    serial_puts("\n");
    for (;;) {
        outb(PIC1, 0x60 | 4);
        forged = forged + 1;
    }
}

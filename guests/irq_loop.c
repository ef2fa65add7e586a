/* irq_loop: takes IRQ 3 forever, for the interrupt round-trip benchmark. Each interrupt counts
 * and ends with an EOI at the PIC; the VMM, told of the EOI (an ack callback), raises the line
 * again. Between interrupts the vCPU waits in HLT inside the kernel. Needs the irqchip. */
#include "irq.h"

static volatile unsigned long taken;

void irq3_handler(void) {
    taken = taken + 1;
    pic_eoi();
}

extern char irq3_stub[];
IRQ_STUB(irq3_stub, irq3_handler);

void guest_main(unsigned long core) {
    (void)core;
    set_gate(IRQ_BASE + 3, irq3_stub);
    interrupts_init(1u << 3);
    serial_puts("irq_loop: ready\n");
    for (;;) __asm__ volatile("sti; hlt; cli" ::: "memory");
}

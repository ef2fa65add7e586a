/* irq_order: takes IRQ 5 twice, each time after asking the VMM for it, and waits each time
 * until the VMM says it was told of the EOI. Port protocol (all 32-bit):
 *   out 0x5f0 <- round      "raise IRQ 5 for round `round`" (1: an edge, 2: a held level)
 *   in  0x5f4 -> acks       how many acknowledgements the VMM's callback has seen
 *   out 0x5f8 <- taken      done: interrupts taken; the VMM stops the VM
 * Needs an interrupt controller (the in-kernel irqchip). */
#include "irq.h"

#define PORT_RAISE 0x5f0
#define PORT_ACKS 0x5f4
#define PORT_DONE 0x5f8
#define LINE 5

static volatile unsigned taken;

void irq5_handler(void) {
    taken = taken + 1;
    pic_eoi();
}

extern char irq5_stub[];
IRQ_STUB(irq5_stub, irq5_handler);

static inline void outl(unsigned short port, unsigned v) {
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline unsigned inl(unsigned short port) {
    unsigned v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

void guest_main(unsigned long core) {
    (void)core;
    set_gate(IRQ_BASE + LINE, irq5_stub);
    interrupts_init(1u << LINE);
    for (unsigned round = 1; round <= 2; ++round) {
        outl(PORT_RAISE, round);
        while (taken < round) __asm__ volatile("sti; hlt; cli" ::: "memory");
        while (inl(PORT_ACKS) < round) cpu_relax();
    }
    outl(PORT_DONE, taken);
    for (;;) __asm__ volatile("cli; hlt");
}

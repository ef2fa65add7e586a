/* uart_irq: takes the UART's interrupt. Routes IRQ 4 through the 8259 PIC (vectors 0x20..) to
 * an IDT gate, lets the PIC through the local APIC (LVT0 as ExtINT), enables the UART's
 * "transmitter empty" interrupt with OUT2 set, and waits with HLT. Needs the in-kernel irqchip.
 * Reports each interrupt's IIR; then waits for IRQ 3, which only the VMM can raise, and powers
 * off. */
#include "irq.h"

#define COM1 0x3f8
#define UART_VECTOR (IRQ_BASE + 4)

static volatile int interrupts;
static volatile unsigned char iir_seen[8];
static volatile int irq3_taken;

void irq3_handler(void) {
    irq3_taken = 1;
    pic_eoi();
}

void uart_irq_handler(void) {
    unsigned char iir = inb(COM1 + 2);  // reading IIR acknowledges "transmitter empty"
    if (interrupts < 8) iir_seen[interrupts] = iir;
    interrupts = interrupts + 1;
    pic_eoi();
}

extern char uart_irq_stub[], irq3_stub[];
IRQ_STUB(uart_irq_stub, uart_irq_handler);
IRQ_STUB(irq3_stub, irq3_handler);

static void wait_for(int n) {
    while (interrupts < n) __asm__ volatile("sti; hlt; cli" ::: "memory");
}

void guest_main(unsigned long core) {
    (void)core;
    set_gate(UART_VECTOR, uart_irq_stub);
    set_gate(IRQ_BASE + 3, irq3_stub);
    // Only IRQ 4 (the UART) and IRQ 3 (raised by the VMM) are let through.
    interrupts_init((1u << 4) | (1u << 3));
    serial_puts("uart_irq: PIC and LAPIC ready\n");

    outb(COM1 + 4, 0x08);  // MCR: OUT2 connects the UART's interrupt line
    outb(COM1 + 1, 0x02);  // IER: transmitter empty, which it is: an interrupt now
    wait_for(1);
    outb(COM1 + 1, 0x00);  // quiet while we print
    serial_puts("uart_irq: interrupt 1 iir=");
    serial_put_hex(iir_seen[0], 2);
    serial_putc('\n');

    // Interrupt on again: THR is still empty, so it is raised at once.
    int before = interrupts;
    outb(COM1 + 1, 0x02);
    wait_for(before + 1);
    serial_puts("uart_irq: interrupt 2 iir=");
    serial_put_hex(iir_seen[1], 2);
    serial_putc('\n');
    // Every byte written with the interrupt on empties THR again: a fresh edge. With
    // interrupts masked in the CPU they leave one request pending in the PIC.
    before = interrupts;
    wait_for(before + 1);
    outb(COM1 + 1, 0x00);
    serial_puts("uart_irq: interrupt 3 iir=");
    serial_put_hex(iir_seen[2], 2);
    serial_puts("\nuart_irq: ");
    serial_put_dec(interrupts);
    serial_puts(" interrupts on vector ");
    serial_put_hex(UART_VECTOR, 2);
    serial_putc('\n');

    // IRQ 3 has no device here: the VMM raises it (Vm::pulse_irq / vm_inject_irq).
    serial_puts("uart_irq: waiting for IRQ 3\n");
    while (!irq3_taken) __asm__ volatile("sti; hlt; cli" ::: "memory");
    serial_puts("uart_irq: IRQ 3 taken on vector ");
    serial_put_hex(IRQ_BASE + 3, 2);
    serial_putc('\n');
}

/* uart_echo: reads one line from COM1 and writes it back as "echo: <line>", then powers off.
 * Takes the UART's received-data interrupt (IRQ 4 through the 8259 PIC and LVT0 as ExtINT, so
 * it needs the in-kernel irqchip) and waits for input with HLT. uart_echo_poll.c builds the same
 * program with UART_ECHO_POLL: it polls LSR instead and runs without an irqchip.
 * It does not touch FCR: switching the FIFO on would discard bytes already received (a pipe's
 * bytes can be there before the guest starts). A line ends at '\r' or '\n'; its first LINE_MAX
 * bytes are kept. */
#define COM1 0x3f8
#define LSR_DR 0x01
#define LINE_MAX 80

#ifdef UART_ECHO_POLL
#include "guest.h"

static unsigned char next_byte(void) {
    while ((inb(COM1 + 5) & LSR_DR) == 0) cpu_relax();
    return inb(COM1);
}

static void receive_init(void) {}
static void report(void) {}

#else
#include "irq.h"

#define RING 64
static volatile unsigned char ring[RING];
static volatile unsigned head, tail; /* the handler adds at head, next_byte takes at tail */
static volatile int quiet;           /* the ring filled up: IER is off until it drains */
static volatile int interrupts;

/* Serves every interrupt IIR reports, then ends the interrupt at the PIC. */
void uart_rx_handler(void) {
    interrupts = interrupts + 1;
    for (;;) {
        unsigned char id = inb(COM1 + 2) & 0x0f;
        if (id & 1) break; /* none pending */
        if (id == 0x06) {  /* line status: reading LSR serves it */
            (void)inb(COM1 + 5);
        } else if (id == 0x04 || id == 0x0c) { /* received data or character timeout */
            while (head - tail < RING && (inb(COM1 + 5) & LSR_DR)) {
                ring[head % RING] = inb(COM1);
                head = head + 1;
            }
            if (head - tail == RING) {
                outb(COM1 + 1, 0x00); /* full: leave the rest in the UART for now */
                quiet = 1;
                break;
            }
        } else {
            break; /* THR empty and modem status are not enabled */
        }
    }
    pic_eoi();
}

extern char uart_rx_stub[];
IRQ_STUB(uart_rx_stub, uart_rx_handler);

/* Interrupts stay off except inside the wait, so the handler and this never overlap. */
static unsigned char next_byte(void) {
    while (tail == head) __asm__ volatile("sti; hlt; cli" ::: "memory");
    unsigned char c = ring[tail % RING];
    tail = tail + 1;
    if (quiet) {
        quiet = 0;
        outb(COM1 + 1, 0x01);
    }
    return c;
}

static void receive_init(void) {
    set_gate(IRQ_BASE + 4, uart_rx_stub);
    interrupts_init(1u << 4);
    outb(COM1 + 4, 0x0b); /* MCR: DTR, RTS and OUT2, which connects the interrupt line */
    outb(COM1 + 1, 0x01); /* IER: received data available */
}

static void report(void) {
    serial_puts("uart_echo: ");
    serial_put_dec(interrupts);
    serial_puts(" receive interrupts\n");
}
#endif

void guest_main(unsigned long core) {
    (void)core;
    receive_init();
    serial_puts("uart_echo: ready\n");
    char line[LINE_MAX];
    int n = 0;
    for (;;) {
        unsigned char c = next_byte();
        if (c == '\r' || c == '\n') break;
        if (n < LINE_MAX) line[n++] = (char)c;
    }
    serial_puts("echo: ");
    for (int i = 0; i < n; ++i) serial_putc(line[i]);
    serial_putc('\n');
    report();
}

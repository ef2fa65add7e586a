#include "guest.h"

#define COM1 0x3f8
#define LSR_THRE 0x20

void serial_putc(char c) {
    while ((inb(COM1 + 5) & LSR_THRE) == 0) cpu_relax();
    outb(COM1, (unsigned char)c);
}

void serial_puts(const char *s) {
    while (*s) serial_putc(*s++);
}

void serial_put_dec(long v) {
    char buf[24];
    int n = 0;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    if (v < 0) serial_putc('-');
    do {
        buf[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0) serial_putc(buf[--n]);
}

void serial_put_hex(unsigned long v, int digits) {
    serial_puts("0x");
    for (int i = digits - 1; i >= 0; --i) serial_putc("0123456789abcdef"[(v >> (4 * i)) & 0xf]);
}

long count_cores(void) {
    long n = 1;
    while (platform_call(PSCI_AFFINITY_INFO, (unsigned long)n, 0, 0) != PSCI_INVALID_PARAMETERS)
        ++n;
    return n;
}

static void __attribute__((noreturn)) halt_forever(void) {
    for (;;) __asm__ volatile("cli; hlt");
}

void guest_power_off(void) {
    platform_call(PSCI_SYSTEM_OFF, 0, 0, 0);
    halt_forever();
}

void guest_reset(void) {
    platform_call(PSCI_SYSTEM_RESET, 0, 0, 0);
    halt_forever();
}

void guest_cpu_off(void) {
    platform_call(PSCI_CPU_OFF, 0, 0, 0);
    halt_forever();
}

__attribute__((weak)) void guest_secondary_main(unsigned long context_id) {
    (void)context_id;
    guest_cpu_off();
}

/* Prints the CPUID leaves a kernel picks its instructions by, as the vCPU sees them:
 * "cpuid 1 ecx=0x... edx=0x...", "cpuid 7 ebx=0x... ecx=0x... edx=0x...",
 * "cpuid 80000001 ecx=0x... edx=0x...". */
#include "guest.h"

static void cpuid(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

void guest_main(unsigned long core) {
    (void)core;
    unsigned a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    serial_puts("cpuid 1 ecx=");
    serial_put_hex(c, 8);
    serial_puts(" edx=");
    serial_put_hex(d, 8);
    cpuid(7, 0, &a, &b, &c, &d);
    serial_puts("\ncpuid 7 ebx=");
    serial_put_hex(b, 8);
    serial_puts(" ecx=");
    serial_put_hex(c, 8);
    serial_puts(" edx=");
    serial_put_hex(d, 8);
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    serial_puts("\ncpuid 80000001 ecx=");
    serial_put_hex(c, 8);
    serial_puts(" edx=");
    serial_put_hex(d, 8);
    serial_puts("\n");
    guest_power_off();
}

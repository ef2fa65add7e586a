/* Guest memory both ways: sums 4096 bytes the VMM wrote at 0x300000 and prints the sum, then
 * writes a pattern (byte i = i * 7 + 3) over 8192 bytes at 0x200000 for the VMM to check. */
#include "guest.h"

void guest_main(unsigned long core) {
    (void)core;
    const volatile unsigned char *in = (const volatile unsigned char *)0x300000;
    unsigned long sum = 0;
    for (int i = 0; i < 4096; ++i) sum += in[i];
    serial_puts("sum ");
    serial_put_hex(sum, 8);
    serial_putc('\n');
    volatile unsigned char *out = (volatile unsigned char *)0x200000;
    for (int i = 0; i < 8192; ++i) out[i] = (unsigned char)(i * 7 + 3);
    serial_puts("pattern written\n");
    guest_power_off();
}

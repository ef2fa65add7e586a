/* Writes to read-only RAM at 0x400000 (4 bytes at +0x10, 1 byte at +0x20), then reads the
 * qword at +0x10 back: the writes must not have changed it. */
#include "guest.h"

void guest_main(unsigned long core) {
    (void)core;
    *(volatile unsigned int *)0x400010 = 0x11223344u;
    *(volatile unsigned char *)0x400020 = 0x77;
    unsigned long back = *(volatile unsigned long *)0x400010;
    serial_puts("ro read ");
    serial_put_hex(back, 16);
    serial_putc('\n');
    guest_power_off();
}

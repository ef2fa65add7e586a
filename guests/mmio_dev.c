/* Talks to a device the VMM emulates in a reservation at 0xd0000000: writes 1-, 2-, 4- and
 * 8-byte values to its registers, reads each back with the same width, reads its id register
 * (4 bytes at +0x100), and prints what it got. */
#include "guest.h"

#define DEV 0xd0000000ul

void guest_main(unsigned long core) {
    (void)core;
    *(volatile unsigned char *)(DEV + 0) = 0xab;
    *(volatile unsigned short *)(DEV + 2) = 0xcdef;
    *(volatile unsigned int *)(DEV + 4) = 0x12345678u;
    *(volatile unsigned long *)(DEV + 8) = 0x1122334455667788ul;
    unsigned long b = *(volatile unsigned char *)(DEV + 0);
    unsigned long h = *(volatile unsigned short *)(DEV + 2);
    unsigned long w = *(volatile unsigned int *)(DEV + 4);
    unsigned long q = *(volatile unsigned long *)(DEV + 8);
    unsigned long id = *(volatile unsigned int *)(DEV + 0x100);
    serial_puts("mmio: ");
    serial_put_hex(b, 2);
    serial_putc(' ');
    serial_put_hex(h, 4);
    serial_putc(' ');
    serial_put_hex(w, 8);
    serial_putc(' ');
    serial_put_hex(q, 16);
    serial_puts(" id ");
    serial_put_hex(id, 8);
    serial_putc('\n');
    guest_power_off();
}

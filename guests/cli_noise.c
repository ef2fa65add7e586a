/* Floods the serial port for the CLI's tests, forever, in groups of 16 lines: the byte 0xFF
 * (not UTF-8) and the group's number in decimal, then 15 empty lines. Line k of the output is
 * "\xff<k / 16>" when k % 16 == 0 and empty otherwise. */
#include "guest.h"

/* No wait for THRE: the VMM's UART takes every byte at once. */
static void put(char c) { outb(0x3f8, (unsigned char)c); }

void guest_main(unsigned long core) {
    (void)core;
    for (unsigned long group = 0;; ++group) {
        char digits[24];
        int n = 0;
        unsigned long rest = group;
        do {
            digits[n++] = (char)('0' + rest % 10);
            rest /= 10;
        } while (rest != 0);
        put((char)0xff);
        while (n > 0) put(digits[--n]);
        for (int i = 0; i < 16; ++i) put('\n');
    }
}

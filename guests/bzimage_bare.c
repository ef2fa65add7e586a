/* bzimage_bare: a boot-protocol image that is no compressed Linux (protocol 2.12, XLF_KERNEL_64,
 * payload_offset and payload_length 0). Its 64-bit entry says where it runs and where its
 * boot_params are, then powers off. */
#include "guest.h"

extern char startup_64[];

void bzimage_main(const unsigned char *boot_params) {
    serial_puts("bzimage_bare: 64-bit entry at ");
    serial_put_hex((unsigned long)startup_64, 8);
    serial_puts(", boot_params at ");
    serial_put_hex((unsigned long)boot_params, 8);
    serial_putc('\n');
    guest_power_off();
}

/* Platform-call answers seen from the guest, then SYSTEM_RESET. */
#include "guest.h"

void guest_main(unsigned long core) {
    (void)core;
    serial_puts("psci version ");
    serial_put_hex((unsigned long)platform_call(PSCI_VERSION, 0, 0, 0), 8);
    serial_puts("\nunknown -> ");
    serial_put_dec(platform_call(0x84000099u, 0, 0, 0));
    serial_puts("\naffinity 0 -> ");
    serial_put_dec(platform_call(PSCI_AFFINITY_INFO, 0, 0, 0));
    serial_putc('\n');
    guest_reset();
}

/* The smallest useful guest: one line, then power off (used for whole-process timing). */
#include "guest.h"

void guest_main(unsigned long core) {
    (void)core;
    serial_puts("hello from guestvm\n");
    guest_power_off();
}

/* For VMM-started SMP: every core greets and goes off; nothing powers off, so the VM stops when
 * every vCPU is off. */
#include "guest.h"

void guest_main(unsigned long core) {
    serial_puts("core ");
    serial_put_dec((long)core);
    serial_puts(": hello\n");
    guest_cpu_off();
}

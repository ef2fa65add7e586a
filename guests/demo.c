/* The built-in demo: guest-driven SMP bring-up through the platform call.
 * Core 0 counts the cores, brings up every other one with CPU_ON, probes the error answers,
 * waits until every secondary has gone off again, and powers off. Cores the VMM started itself
 * (guestvm run --start-all) report once and are not brought up again. */
#include "guest.h"

#define CONTEXT_TAG 0xC0DE0000ul
#define MAX_CORES 1024

static unsigned long checked_in;         /* secondaries that reported */
static unsigned char came_up[MAX_CORES]; /* per core: it has reported */

/* Records that `core` came up; false if it had already (then it says nothing). */
static int check_in(unsigned long core) {
    if (core < MAX_CORES && __atomic_exchange_n(&came_up[core], 1, __ATOMIC_SEQ_CST) != 0) {
        return 0;
    }
    __atomic_fetch_add(&checked_in, 1, __ATOMIC_SEQ_CST);
    return 1;
}

static int has_come_up(long core) {
    return core < MAX_CORES && __atomic_load_n(&came_up[core], __ATOMIC_SEQ_CST) != 0;
}

void guest_secondary_main(unsigned long context_id) {
    /* A core the VMM started may have reported and gone off just before core 0's CPU_ON
     * reached it: that second run is silent. */
    if (!check_in(context_id & 0xffff)) guest_cpu_off();
    serial_puts("hello from core ");
    serial_put_dec((long)(context_id & 0xffff));
    serial_puts(" (context id ");
    serial_put_hex(context_id, 8);
    serial_puts(")\n");
    guest_cpu_off();
}

void guest_main(unsigned long core) {
    if (core != 0) { /* started by the VMM (guestvm run --start-all) */
        if (check_in(core)) {
            serial_puts("hello from core ");
            serial_put_dec((long)core);
            serial_puts(" (started by the VMM)\n");
        }
        guest_cpu_off();
    }
    long version = platform_call(PSCI_VERSION, 0, 0, 0);
    serial_puts("guestvm demo: core 0 up, PSCI version ");
    serial_put_dec(version >> 16);
    serial_putc('.');
    serial_put_dec(version & 0xffff);
    serial_putc('\n');

    long n = count_cores();
    serial_puts("guestvm demo: bringing up ");
    serial_put_dec(n);
    serial_puts(" cores\n");

    for (long c = 1; c < n; ++c) {
        if (has_come_up(c)) continue; /* the VMM started it */
        long r = platform_call(PSCI_CPU_ON, (unsigned long)c, (unsigned long)secondary_entry,
                               CONTEXT_TAG | (unsigned long)c);
        if (r != 0) {
            serial_puts("CPU_ON core ");
            serial_put_dec(c);
            serial_puts(" -> ");
            serial_put_dec(r);
            serial_putc('\n');
        }
    }
    long bad_low =
        platform_call(PSCI_CPU_ON, (unsigned long)-1L, (unsigned long)secondary_entry, CONTEXT_TAG);
    long bad_high =
        platform_call(PSCI_CPU_ON, (unsigned long)n, (unsigned long)secondary_entry, CONTEXT_TAG);
    long self = platform_call(PSCI_CPU_ON, 0, (unsigned long)secondary_entry, CONTEXT_TAG);
    serial_puts("probe: CPU_ON(-1) -> ");
    serial_put_dec(bad_low);
    serial_puts(", CPU_ON(");
    serial_put_dec(n);
    serial_puts(") -> ");
    serial_put_dec(bad_high);
    serial_puts(", CPU_ON(0) -> ");
    serial_put_dec(self);
    serial_putc('\n');

    for (long c = 1; c < n; ++c) {
        while (platform_call(PSCI_AFFINITY_INFO, (unsigned long)c, 0, 0) != PSCI_AFFINITY_OFF)
            cpu_relax();
    }
    serial_puts("guestvm demo: ");
    serial_put_dec(1 + (long)__atomic_load_n(&checked_in, __ATOMIC_SEQ_CST));
    serial_puts(" of ");
    serial_put_dec(n);
    serial_puts(" cores came up and went off; powering off\n");
    guest_power_off();
}

/* Bring-up timing: core 0 starts every other core with CPU_ON; each checks in and goes off;
 * core 0 powers off once all have checked in. No output (the benchmark times the protocol). */
#include "guest.h"

static unsigned long checked_in;

void guest_secondary_main(unsigned long ctx) {
    (void)ctx;
    __atomic_fetch_add(&checked_in, 1, __ATOMIC_SEQ_CST);
    guest_cpu_off();
}

void guest_main(unsigned long core) {
    (void)core;
    long n = count_cores();
    for (long c = 1; c < n; ++c) {
        platform_call(PSCI_CPU_ON, (unsigned long)c, (unsigned long)secondary_entry,
                      (unsigned long)c);
    }
    while (__atomic_load_n(&checked_in, __ATOMIC_SEQ_CST) < (unsigned long)(n - 1)) cpu_relax();
    guest_power_off();
}

/* CPU_ON under contention. Cores 1..n-2 come up as a tree (core c brings up 2c+1 and 2c+2), so
 * many cores issue CPU_ON at once; meanwhile every one of them, and core 0, also tries to bring
 * up the last core X = n-1, which stays on until core 0 releases it. Exactly one of those calls
 * may succeed. Core 0 prints one summary line and powers off. Needs at least 3 vCPUs. */
#include "guest.h"

#define MAX_CORES 1024
#define TAG_TREE 0x7eul
#define TAG_X 0x5aul

static long results[MAX_CORES]; /* CPU_ON(X) answer per calling core */
static unsigned long checked_in;
static unsigned long tree_failures;
static unsigned long x_started;
static volatile int release_x;
static long n_cores;

static void start_children(unsigned long c) {
    for (unsigned long child = 2 * c + 1; child <= 2 * c + 2; ++child) {
        if ((long)child > n_cores - 2) break;
        long r = platform_call(PSCI_CPU_ON, child, (unsigned long)secondary_entry,
                               (TAG_TREE << 16) | child);
        if (r != 0) __atomic_fetch_add(&tree_failures, 1, __ATOMIC_SEQ_CST);
    }
}

static long contest_x(void) {
    unsigned long x = (unsigned long)(n_cores - 1);
    return platform_call(PSCI_CPU_ON, x, (unsigned long)secondary_entry, (TAG_X << 16) | x);
}

void guest_secondary_main(unsigned long ctx) {
    unsigned long core = ctx & 0xffff;
    if ((ctx >> 16) == TAG_X) {
        __atomic_fetch_add(&x_started, 1, __ATOMIC_SEQ_CST);
        while (!release_x) cpu_relax();
        guest_cpu_off();
    }
    start_children(core);
    results[core] = contest_x();
    __atomic_fetch_add(&checked_in, 1, __ATOMIC_SEQ_CST);
    guest_cpu_off();
}

void guest_main(unsigned long core) {
    (void)core;
    long n = count_cores();
    n_cores = n;
    if (n < 3 || n > MAX_CORES) {
        serial_puts("smp_race needs 3..1024 cores\n");
        guest_power_off();
    }
    start_children(0);
    results[0] = contest_x();
    while (__atomic_load_n(&checked_in, __ATOMIC_SEQ_CST) < (unsigned long)(n - 2)) cpu_relax();
    long success = 0, already = 0, other = 0;
    for (long c = 0; c <= n - 2; ++c) {
        if (results[c] == 0)
            ++success;
        else if (results[c] == -4)
            ++already;
        else
            ++other;
    }
    release_x = 1;
    for (long c = 1; c < n; ++c) {
        while (platform_call(PSCI_AFFINITY_INFO, (unsigned long)c, 0, 0) != PSCI_AFFINITY_OFF)
            cpu_relax();
    }
    serial_puts("race: ");
    serial_put_dec(n);
    serial_puts(" cores, X started by ");
    serial_put_dec(success);
    serial_puts(" call(s), ");
    serial_put_dec(already);
    serial_puts(" already-on, ");
    serial_put_dec(other);
    serial_puts(" other, X ran ");
    serial_put_dec((long)__atomic_load_n(&x_started, __ATOMIC_SEQ_CST));
    serial_puts(" time(s), tree failures ");
    serial_put_dec((long)__atomic_load_n(&tree_failures, __ATOMIC_SEQ_CST));
    serial_putc('\n');
    guest_power_off();
}

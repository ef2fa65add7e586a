/* Every platform-call answer, checked from the guest's side. Run with 3 vCPUs; core 0 prints one
 * "name -> result" line per call. Core 1 is turned on, found ALREADY_ON while it waits, turned
 * off, and turned on again at a different entry. */
#include "guest.h"

#define TAG_FIRST 0xa1ul
#define TAG_SECOND 0xb2ul
#define TAG_PLAIN 0xc3ul
#define CTX(tag, core) (((tag) << 16) | (core))

static volatile int release_first;
static volatile int first_up;

/* A second entry address that ends in the same code: CPU_ON may name any entry in RAM. */
__asm__(".text\n.globl alt_entry\nalt_entry: jmp secondary_entry\n");
extern char alt_entry[];

static void report(const char *name, long value) {
    serial_puts(name);
    serial_puts(" -> ");
    serial_put_dec(value);
    serial_putc('\n');
}

void guest_secondary_main(unsigned long ctx) {
    unsigned long tag = ctx >> 16, core = ctx & 0xffff;
    serial_puts("core ");
    serial_put_dec((long)core);
    serial_puts(tag == TAG_FIRST ? " first start" : tag == TAG_SECOND ? " second start" : " up");
    serial_puts(" (context ");
    serial_put_hex(ctx, 6);
    serial_puts(")\n");
    if (tag == TAG_FIRST) {
        first_up = 1;
        while (!release_first) cpu_relax();
    }
    guest_cpu_off();
}

static void wait_off(unsigned long core) {
    while (platform_call(PSCI_AFFINITY_INFO, core, 0, 0) != PSCI_AFFINITY_OFF) cpu_relax();
}

void guest_main(unsigned long core) {
    (void)core;
    unsigned long entry = (unsigned long)secondary_entry;
    report("version", platform_call(PSCI_VERSION, 0, 0, 0));
    report("affinity 1 before", platform_call(PSCI_AFFINITY_INFO, 1, 0, 0));
    report("affinity -1", platform_call(PSCI_AFFINITY_INFO, (unsigned long)-1L, 0, 0));
    report("affinity 3", platform_call(PSCI_AFFINITY_INFO, 3, 0, 0));
    report("affinity level 1", platform_call(PSCI_AFFINITY_INFO, 1, 1, 0));
    report("cpu_on entry outside RAM", platform_call(PSCI_CPU_ON, 1, 0xd0000000ul, 0));
    report("cpu_on -5", platform_call(PSCI_CPU_ON, (unsigned long)-5L, entry, 0));
    report("cpu_on 3", platform_call(PSCI_CPU_ON, 3, entry, 0));
    report("cpu_on 0 (self)", platform_call(PSCI_CPU_ON, 0, entry, 0));
    report("cpu_on 1", platform_call(PSCI_CPU_ON, 1, entry, CTX(TAG_FIRST, 1)));
    while (!first_up) cpu_relax();
    report("cpu_on 1 while on", platform_call(PSCI_CPU_ON, 1, entry, CTX(TAG_FIRST, 1)));
    report("affinity 1 while on", platform_call(PSCI_AFFINITY_INFO, 1, 0, 0));
    release_first = 1;
    wait_off(1);
    report("affinity 1 after off", platform_call(PSCI_AFFINITY_INFO, 1, 0, 0));
    report("cpu_on 1 again",
           platform_call(PSCI_CPU_ON, 1, (unsigned long)alt_entry, CTX(TAG_SECOND, 1)));
    wait_off(1);
    report("cpu_on 2", platform_call(PSCI_CPU_ON, 2, entry, CTX(TAG_PLAIN, 2)));
    wait_off(2);
    report("unknown", platform_call(0x8400ffffu, 0, 0, 0));
    report("affinity 0", platform_call(PSCI_AFFINITY_INFO, 0, 0, 0));
    serial_puts("suite done\n");
    guest_power_off();
}

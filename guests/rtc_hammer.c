/* rtc_hammer: two cores drive one CMOS/RTC-style device at ports 0x70/0x71 at once, as an OS
 * reading the clock on every core would: core 0 starts core 1 (CPU_ON), each selects its own
 * register and writes it, then selects register 0 (the seconds) and reads it, ROUNDS times; core
 * 1 goes off, core 0 waits for that and powers off. For a VMM whose device model has no locks
 * (tests/c/serialized_vmm.c). */
#include "guest.h"

#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define ROUNDS 1500

static void hammer(unsigned core) {
    for (unsigned i = 0; i < ROUNDS; ++i) {
        outb(RTC_INDEX, (unsigned char)(0x10 + core));
        outb(RTC_DATA, (unsigned char)i);
        outb(RTC_INDEX, 0x00);
        (void)inb(RTC_DATA);
    }
}

void guest_secondary_main(unsigned long context_id) {
    hammer((unsigned)context_id);
    guest_cpu_off();
}

void guest_main(unsigned long core) {
    (void)core;
    platform_call(PSCI_CPU_ON, 1, (unsigned long)secondary_entry, 1);
    hammer(0);
    while (platform_call(PSCI_AFFINITY_INFO, 1, 0, 0) != PSCI_AFFINITY_OFF) cpu_relax();
    guest_power_off();
}

/* CPU_ON churn: core 0 asks for core 1 forever; core 1 goes off the moment it comes up. */
#include "guest.h"

void guest_main(unsigned long core) {
    (void)core;
    for (;;) platform_call(PSCI_CPU_ON, 1, (unsigned long)secondary_entry, 1);
}

void guest_secondary_main(unsigned long context_id) {
    (void)context_id;
    guest_cpu_off();
}

/* CPU_ON racing vCPU creation: core 0 asks for core 1 until it comes up (while the VMM is still
 * creating that vCPU); core 1 reports through port 0x510, whose handler checks the vm_vcpu_t it
 * is given, then goes off. */
#include "guest.h"

void guest_main(unsigned long core) {
    (void)core;
    while (platform_call(PSCI_CPU_ON, 1, (unsigned long)secondary_entry, 1) != 0) {
    }
    for (;;) __asm__ volatile("hlt");
}

void guest_secondary_main(unsigned long context_id) {
    (void)context_id;
    outb(0x510, 1);
    guest_cpu_off();
}

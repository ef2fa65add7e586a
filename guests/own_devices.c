/* own_devices: for a VMM that brings its own devices, as camkes-vm does. Prints through COM1
 * (the VMM's own 8250 model), writes the PM1a event block at 0x600 and the PM1a control block at
 * 0x604 as an OS clears and sets those ACPI registers (libsel4vmmplatsupport's FADT puts them
 * there), checking that RAX survives, then asks for PSCI_VERSION through the platform call,
 * which answers only when the VMM added it: with it the guest powers off, without it it says
 * done on port 0x5f8. */
#include "guest.h"

#define PM1A_EVT 0x600
#define PM1A_CNT 0x604
#define PORT_DONE 0x5f8

void guest_main(unsigned long core) {
    (void)core;
    serial_puts("own-devices: hello through the VMM's COM1\n");
    unsigned long rax = 0x1122334455668001ul;
    __asm__ volatile("outw %%ax, %%dx" : "+a"(rax) : "d"(PM1A_EVT) : "memory");
    serial_puts(rax == 0x1122334455668001ul ? "pm1a_evt: rax kept\n" : "pm1a_evt: rax clobbered\n");
    rax = 0x6655443322110001ul;
    __asm__ volatile("outw %%ax, %%dx" : "+a"(rax) : "d"(PM1A_CNT) : "memory");
    serial_puts(rax == 0x6655443322110001ul ? "pm1a_cnt: rax kept\n" : "pm1a_cnt: rax clobbered\n");
    long version = platform_call(PSCI_VERSION, 0, 0, 0);
    serial_puts("psci version -> ");
    serial_put_hex((unsigned long)version, 8);
    serial_putc('\n');
    if (version == 0x10000) guest_power_off();
    outb(PORT_DONE, 0);
    for (;;) __asm__ volatile("cli; hlt");
}

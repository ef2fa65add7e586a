/* passthrough: writes 0x5a to port 0x80 (the POST diagnostic port, which writes leave
 * harmless) and reads it back, for a VMM that asked to pass port 0x80 through to the host; the
 * value read goes out on port 0x5f0 (32-bit), then port 0x5f8 says done. */
#include "guest.h"

#define PORT_POST 0x80
#define PORT_VALUE 0x5f0
#define PORT_DONE 0x5f8

static inline void outl(unsigned short port, unsigned v) {
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

void guest_main(unsigned long core) {
    (void)core;
    outb(PORT_POST, 0x5a);
    outl(PORT_VALUE, inb(PORT_POST));
    outl(PORT_DONE, 0);
    for (;;) __asm__ volatile("cli; hlt");
}

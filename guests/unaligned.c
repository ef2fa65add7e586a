/* unaligned: touches RAM and reservations that a VMM registered at unaligned addresses, as
 * camkes-vm and libsel4vmmplatsupport do: RAM [0x500, 0x80000), a reservation
 * (0xE0000, 0xFFFF) and one (0xfed00000, 0x500). Each value read goes out on port 0x5f0 (32-bit)
 * in order; port 0x5f8 says done. RAM left alone: [0x500, 0x10000) (guestvm's boot tables). */
#include "guest.h"

#define PORT_VALUE 0x5f0
#define PORT_DONE 0x5f8

static inline void outl(unsigned short port, unsigned v) {
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

/* Hides the address from the compiler, which takes a small constant for a null pointer. */
static unsigned long at(unsigned long a) {
    __asm__("" : "+r"(a));
    return a;
}
static unsigned read8(unsigned long a) { return *(volatile unsigned char *)at(a); }
static unsigned read16(unsigned long a) { return *(volatile unsigned short *)at(a); }
static unsigned read32(unsigned long a) { return *(volatile unsigned *)at(a); }
static void write32(unsigned long a, unsigned v) { *(volatile unsigned *)at(a) = v; }

void guest_main(unsigned long core) {
    (void)core;
    // RAM: below the registered start (its page is RAM) and at the very end.
    write32(0x100, 0xdeadbeef);
    write32(0x7fffc, 0x55667788);
    outl(PORT_VALUE, read32(0x100));
    outl(PORT_VALUE, read32(0x7fffc));
    // (0xE0000, 0xFFFF): its first and last bytes, the page's last byte (not its own), and a
    // 2-byte read that starts inside it.
    outl(PORT_VALUE, read8(0xe0000));
    outl(PORT_VALUE, read8(0xefffe));
    outl(PORT_VALUE, read8(0xeffff));
    outl(PORT_VALUE, read16(0xefffe));
    // (0xfed00000, 0x500): a register inside, a write, and two places in its page past it.
    outl(PORT_VALUE, read32(0xfed000f0));
    write32(0xfed00010, 3);
    outl(PORT_VALUE, read32(0xfed00500));
    outl(PORT_VALUE, read32(0xfed00ffc));
    outl(PORT_DONE, 0);
    for (;;) __asm__ volatile("cli; hlt");
}

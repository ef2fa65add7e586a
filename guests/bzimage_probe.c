/* bzimage_probe: a minimal kernel in bzImage format, entered by the boot protocol's 64-bit
 * entry. Reports its segments and what boot_params (the zero page at RSI) holds: loader type,
 * command line, e820 map and initrd, then powers off. */
#include "guest.h"

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long u64;

extern char startup_64[];

static u32 rd32(const u8 *p) { return *(const u32 *)p; }
static u64 rd64(const u8 *p) { return *(const u64 *)p; }

void bzimage_main(const u8 *bp) {
    unsigned short cs, ds, ss;
    __asm__ volatile("mov %%cs, %0; mov %%ds, %1; mov %%ss, %2" : "=r"(cs), "=r"(ds), "=r"(ss));
    serial_puts("bzimage64: cs=");
    serial_put_hex(cs, 2);
    serial_puts(" ds=");
    serial_put_hex(ds, 2);
    serial_puts(" ss=");
    serial_put_hex(ss, 2);
    serial_puts(" boot_params=");
    serial_put_hex((u64)bp, 8);
    serial_puts(" startup_64=");
    serial_put_hex((u64)startup_64, 8);
    serial_puts("\nbzimage64: type_of_loader=");
    serial_put_hex(bp[0x210], 2);
    serial_puts(" loadflags=");
    serial_put_hex(bp[0x211], 2);
    serial_puts(" version=");
    serial_put_hex(*(const unsigned short *)(bp + 0x206), 4);
    serial_puts("\nbzimage64: cmdline=");
    u32 cmdline = rd32(bp + 0x228);
    if (cmdline) serial_puts((const char *)(u64)cmdline);
    serial_putc('\n');
    for (u32 i = 0; i < bp[0x1e8]; ++i) {
        const u8 *e = bp + 0x2d0 + 20 * i;
        serial_puts("bzimage64: e820 ");
        serial_put_hex(rd64(e), 16);
        serial_putc(' ');
        serial_put_hex(rd64(e + 8), 16);
        serial_puts(" type=");
        serial_put_dec(rd32(e + 16));
        serial_putc('\n');
    }
    u64 initrd = rd32(bp + 0x218) | ((u64)rd32(bp + 0x0c0) << 32);
    u64 size = rd32(bp + 0x21c) | ((u64)rd32(bp + 0x0c4) << 32);
    if (size != 0) {
        u32 sum = 0;
        for (u64 j = 0; j < size; ++j) sum = sum * 31 + ((const u8 *)initrd)[j];
        serial_puts("bzimage64: initrd ");
        serial_put_hex(initrd, 16);
        serial_putc(' ');
        serial_put_hex(size, 16);
        serial_puts(" hash=");
        serial_put_hex(sum, 8);
        serial_putc('\n');
    }
    guest_power_off();
}

/* probe32: a 32-bit protected-mode guest. Reports its CPU mode and, when entered by PVH, the
 * hvm_start_info the VMM gave it (command line, memory map, modules), then powers off. */
#include "guest.h"

typedef unsigned int u32;
typedef unsigned long long u64;

struct hvm_start_info {
    u32 magic, version, flags, nr_modules;
    u64 modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    u32 memmap_entries, reserved;
};
struct hvm_modlist_entry {
    u64 paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_table_entry {
    u64 addr, size;
    u32 type, reserved;
};

static void put_hex64(u64 v) {
    serial_puts("0x");
    for (int shift = 60; shift >= 0; shift -= 4)
        serial_putc("0123456789abcdef"[(v >> shift) & 0xf]);
}

void probe32_main(u32 start_info) {
    u32 cr0, cs;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    serial_puts("probe32: cr0.pe=");
    serial_put_dec(cr0 & 1);
    serial_puts(" cr0.pg=");
    serial_put_dec(cr0 >> 31);
    serial_puts(" cs=");
    serial_put_hex(cs, 2);
    serial_puts(start_info ? " entry=pvh\n" : " entry=elf\n");
    if (start_info) {
        const struct hvm_start_info *si = (const struct hvm_start_info *)start_info;
        serial_puts("pvh: magic=");
        serial_put_hex(si->magic, 8);
        serial_puts(" version=");
        serial_put_dec(si->version);
        serial_puts(" modules=");
        serial_put_dec(si->nr_modules);
        serial_puts(" rsdp=");
        put_hex64(si->rsdp_paddr);
        serial_puts("\npvh: cmdline=");
        if (si->cmdline_paddr) serial_puts((const char *)(u32)si->cmdline_paddr);
        serial_putc('\n');
        const struct hvm_memmap_table_entry *map =
            (const struct hvm_memmap_table_entry *)(u32)si->memmap_paddr;
        for (u32 i = 0; i < si->memmap_entries; ++i) {
            serial_puts("pvh: memmap ");
            put_hex64(map[i].addr);
            serial_putc(' ');
            put_hex64(map[i].size);
            serial_puts(" type=");
            serial_put_dec(map[i].type);
            serial_putc('\n');
        }
        const struct hvm_modlist_entry *mods =
            (const struct hvm_modlist_entry *)(u32)si->modlist_paddr;
        for (u32 i = 0; i < si->nr_modules; ++i) {
            const unsigned char *p = (const unsigned char *)(u32)mods[i].paddr;
            u32 sum = 0;
            for (u32 j = 0; j < (u32)mods[i].size; ++j) sum = sum * 31 + p[j];
            serial_puts("pvh: module ");
            put_hex64(mods[i].paddr);
            serial_putc(' ');
            put_hex64(mods[i].size);
            serial_puts(" hash=");
            serial_put_hex(sum, 8);
            serial_putc('\n');
        }
    }
    guest_power_off();
}

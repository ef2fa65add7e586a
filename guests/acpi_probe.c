/* acpi_probe: reads the VMM's ACPI tables as an OS would, then powers off through them.
 * Finds the RSDP by scanning the BIOS area 0xe0000..0xfffff, walks XSDT -> MADT and FADT ->
 * DSDT checking every signature and checksum, reports the enabled local APICs and the IOAPIC,
 * checks that ISA IRQ 0 (the PIT) arrives on the GSI the MADT implies, and writes SLP_EN with
 * the DSDT's \_S5 sleep type to the FADT's sleep control register. Needs the irqchip. Any
 * inconsistency prints "acpi_probe: FAIL ..." and ends in a triple fault, never in a power-off. */
#include "irq.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

#define TICK_VECTOR 0x30
#define WATCHDOG_VECTOR 0x31
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WINDOW 0x10

static volatile int ticks, watchdog_fired;

void tick_handler(void) {
    ticks = ticks + 1;
    lapic_write(0xb0, 0);  // EOI
}
void watchdog_handler(void) {
    watchdog_fired = 1;
    lapic_write(0xb0, 0);
}
extern char tick_stub[], watchdog_stub[];
IRQ_STUB(tick_stub, tick_handler);
IRQ_STUB(watchdog_stub, watchdog_handler);

static void __attribute__((noreturn)) fail(const char *what) {
    serial_puts("acpi_probe: FAIL ");
    serial_puts(what);
    serial_putc('\n');
    for (;;) __asm__ volatile("ud2");
}

static u32 rd32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }
static u64 rd64(const u8 *p) { return rd32(p) | (u64)rd32(p + 4) << 32; }
static int same(const u8 *p, const char *s, int n) {
    for (int i = 0; i < n; ++i)
        if (p[i] != (u8)s[i]) return 0;
    return 1;
}
static int sums_to_zero(const u8 *p, u32 n) {
    u8 sum = 0;
    for (u32 i = 0; i < n; ++i) sum = (u8)(sum + p[i]);
    return sum == 0;
}

/* A description table at `addr` with signature `sig`, its length sane and checksum right. */
static const u8 *table(u64 addr, const char *sig) {
    const u8 *t = (const u8 *)addr;
    if (!same(t, sig, 4)) return 0;
    u32 len = rd32(t + 4);
    if (len < 36 || len > 0x20000 || !sums_to_zero(t, len)) fail("table length or checksum");
    return t;
}

static const u8 *find_rsdp(void) {
    for (u64 a = 0xe0000; a < 0x100000; a += 16) {
        const u8 *p = (const u8 *)a;
        if (same(p, "RSD PTR ", 8) && sums_to_zero(p, 20)) return p;
    }
    return 0;
}

/* The SLP_TYP value of the DSDT's \_S5 package: Name (0x08), optional root '\', "_S5_", then
 * Package (0x12) PkgLength NumElements and a first element that is an integer. */
static int s5_sleep_type(const u8 *dsdt) {
    u32 len = rd32(dsdt + 4);
    for (u32 i = 36; i + 8 < len; ++i) {
        if (!same(dsdt + i, "_S5_", 4)) continue;
        if (dsdt[i - 1] != 0x08 && !(dsdt[i - 1] == 0x5c && dsdt[i - 2] == 0x08)) continue;
        const u8 *p = dsdt + i + 4;
        if (*p++ != 0x12) fail("_S5 is not a package");
        p += 1 + (*p >> 6);  // PkgLength: its lead byte says how many bytes follow
        if (*p++ < 1) fail("_S5 package is empty");
        if (p[0] == 0x00 || p[0] == 0x01) return p[0];
        if (p[0] == 0x0a) return p[1];
        fail("_S5's first element is not a byte");
    }
    fail("no _S5 in the DSDT");
}

static u32 ioapic_read(u64 base, u32 reg) {
    *(volatile u32 *)(base + IOAPIC_REGSEL) = reg;
    return *(volatile u32 *)(base + IOAPIC_WINDOW);
}
static void ioapic_write(u64 base, u32 reg, u32 value) {
    *(volatile u32 *)(base + IOAPIC_REGSEL) = reg;
    *(volatile u32 *)(base + IOAPIC_WINDOW) = value;
}

/* Routes `gsi` to TICK_VECTOR on this CPU (APIC id 0, edge, active high), starts the PIT's
 * channel 0 for one ~1 ms count and waits for the tick, or for a ~1 s local-APIC timer (room
 * for a loaded host; a tick that comes at all comes within milliseconds). */
static int pit_tick_arrives(u64 ioapic, u32 gsi) {
    set_gate(TICK_VECTOR, tick_stub);
    set_gate(WATCHDOG_VECTOR, watchdog_stub);
    interrupts_init(0);  // the IDT, the local APIC on, every 8259 line masked
    ioapic_write(ioapic, 0x10 + 2 * gsi + 1, 0);
    ioapic_write(ioapic, 0x10 + 2 * gsi, TICK_VECTOR);
    lapic_write(0x3e0, 0xb);  // divide by 1
    lapic_write(0x320, WATCHDOG_VECTOR);
    lapic_write(0x380, 1000000000);  // at KVM's 1 GHz APIC bus
    outb(0x43, 0x30);  // channel 0, lobyte/hibyte, mode 0 (interrupt on terminal count)
    outb(0x40, 0xa9);  // 1193 = ~1 ms
    outb(0x40, 0x04);
    while (!ticks && !watchdog_fired) __asm__ volatile("sti; hlt; cli" ::: "memory");
    ioapic_write(ioapic, 0x10 + 2 * gsi, 0x10000);  // masked again
    lapic_write(0x380, 0);                          // and the watchdog stopped
    return ticks > 0;
}

void guest_main(unsigned long core) {
    (void)core;
    const u8 *rsdp = find_rsdp();
    if (!rsdp) fail("no RSDP in 0xe0000..0xfffff");
    if (rsdp[15] < 2 || rd32(rsdp + 20) < 36 || !sums_to_zero(rsdp, 36)) fail("RSDP 2.0 part");
    serial_puts("acpi_probe: rsdp ");
    serial_put_hex((u64)rsdp, 8);
    serial_puts(" oem ");
    for (int i = 9; i < 15; ++i) serial_putc((char)rsdp[i]);
    serial_putc('\n');

    const u8 *xsdt = table(rd64(rsdp + 24), "XSDT");
    if (!xsdt) fail("no XSDT");
    const u8 *madt = 0, *fadt = 0;
    for (u32 off = 36; off + 8 <= rd32(xsdt + 4); off += 8) {
        u64 addr = rd64(xsdt + off);
        if (!madt) madt = table(addr, "APIC");
        if (!fadt) fadt = table(addr, "FACP");
    }
    if (!madt || !fadt) fail("XSDT lacks the MADT or the FADT");

    u32 lapics = 0, disabled = 0, ioapics = 0, gsi_base = 0, irq0_gsi = 0;
    u64 ioapic = 0;
    for (u32 off = 44; off < rd32(madt + 4);) {
        const u8 *e = madt + off;
        if (e[1] < 2 || off + e[1] > rd32(madt + 4)) fail("MADT entry length");
        if (e[0] == 0 || e[0] == 9) {  // a local APIC, or a local x2APIC
            if (rd32(e + (e[0] == 0 ? 4 : 8)) & 1)
                ++lapics;
            else
                ++disabled;
        }
        if (e[0] == 1) {
            ++ioapics;
            ioapic = rd32(e + 4);
            gsi_base = rd32(e + 8);
        }
        if (e[0] == 2 && e[3] == 0) irq0_gsi = rd32(e + 4);  // an override of ISA IRQ 0
        off += e[1];
    }
    serial_puts("acpi_probe: lapics ");
    serial_put_dec(lapics);
    serial_puts(" enabled, ");
    serial_put_dec(disabled);
    serial_puts(" disabled\nacpi_probe: ioapics ");
    serial_put_dec(ioapics);
    serial_puts(" at ");
    serial_put_hex(ioapic, 8);
    serial_puts(" gsi base ");
    serial_put_dec(gsi_base);
    serial_puts(" pins ");
    if (ioapics != 1) fail("not one IOAPIC");
    serial_put_dec(((ioapic_read(ioapic, 1) >> 16) & 0xff) + 1);
    serial_putc('\n');

    serial_puts("acpi_probe: isa irq 0 -> gsi ");
    serial_put_dec(irq0_gsi);
    if (irq0_gsi < gsi_base || irq0_gsi - gsi_base >= 24) fail("IRQ 0's GSI is on no IOAPIC pin");
    serial_puts(pit_tick_arrives(ioapic, irq0_gsi - gsi_base) ? ": pit tick arrived\n"
                                                              : ": no pit tick\n");

    if (!(rd32(fadt + 112) & (1u << 20))) fail("FADT is not hardware-reduced");
    const u8 *dsdt = table(rd64(fadt + 140), "DSDT");
    if (!dsdt) fail("no DSDT at X_DSDT");
    const u8 *control = fadt + 244;  // SLEEP_CONTROL_REG, a Generic Address Structure
    if (control[0] != 1 || control[1] != 8) fail("sleep control is not an I/O byte");
    const u16 port = (u16)rd64(control + 4);
    const int type = s5_sleep_type(dsdt);
    serial_puts("acpi_probe: s5 type ");
    serial_put_dec(type);
    serial_puts(" via port ");
    serial_put_hex(port, 4);
    serial_putc('\n');
    outb(port, (u8)((type << 2) | 0x20));  // SLP_TYPx | SLP_EN
    fail("still running after SLP_EN");
}

/* Starts vCPU 1 the way an OS starts an application processor: INIT, then a startup IPI whose
 * vector (0x20) points the processor, in real mode, at a trampoline copied to 0x20000. The
 * trampoline prints "ap: up", sets a flag and halts. Core 0 prints "sipi_probe: INIT sent",
 * waits for the flag and prints "sipi_probe: AP up" (or "sipi_probe: no AP"), then powers off.
 * Needs the irqchip; the VMM leaves vCPU 1 waiting for SIPI (Vm::await_sipi). */
#include "guest.h"

#define LAPIC 0xfee00000ul
#define TRAMPOLINE 0x20000ul

__asm__(
    ".text\n"
    ".globl tramp_start, tramp_end, tramp_flag\n"
    ".code16\n"
    "tramp_start:\n"
    "  cli\n"
    "  mov %cs, %ax\n"
    "  mov %ax, %ds\n"
    "  mov $0x3f8, %dx\n"
    "  mov $(tramp_msg - tramp_start), %si\n"
    "1: lodsb\n"
    "  test %al, %al\n"
    "  jz 2f\n"
    "  out %al, %dx\n"
    "  jmp 1b\n"
    "2: movb $1, (tramp_flag - tramp_start)\n"
    "3: hlt\n"
    "  jmp 3b\n"
    "tramp_msg: .asciz \"ap: up\\n\"\n"
    "tramp_flag: .byte 0\n"
    "tramp_end:\n"
    ".code64\n");
extern char tramp_start[], tramp_end[], tramp_flag[];

static void lapic_write(unsigned reg, unsigned value) {
    *(volatile unsigned *)(LAPIC + reg) = value;
}

static void wait_icr_idle(void) {
    for (int i = 0; i < 100000 && (*(volatile unsigned *)(LAPIC + 0x300) & (1u << 12)); ++i) {
        cpu_relax();
    }
}

void guest_main(unsigned long core) {
    (void)core;
    unsigned char *dst = (unsigned char *)TRAMPOLINE;
    for (char *p = tramp_start; p < tramp_end; ++p) *dst++ = (unsigned char)*p;
    volatile unsigned char *flag =
        (volatile unsigned char *)(TRAMPOLINE + (tramp_flag - tramp_start));
    lapic_write(0xf0, 0x1ff); /* software-enable the local APIC */
    lapic_write(0x310, 1u << 24);
    lapic_write(0x300, 0x4500); /* INIT, level assert */
    wait_icr_idle();
    serial_puts("sipi_probe: INIT sent\n");
    for (int i = 0; i < 2; ++i) { /* the startup IPI twice, as the MP specification says */
        lapic_write(0x310, 1u << 24);
        lapic_write(0x300, 0x4600 | (TRAMPOLINE >> 12));
        wait_icr_idle();
    }
    for (long i = 0; i < 2000000L && !*flag; ++i) cpu_relax();
    serial_puts(*flag ? "sipi_probe: AP up\n" : "sipi_probe: no AP\n");
    guest_power_off();
}

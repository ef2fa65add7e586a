/* Freestanding helpers shared by the test and demo guests. */
#pragma once

#include "pcall_port.h"

#define PSCI_VERSION 0x84000000u
#define PSCI_CPU_OFF 0x84000002u
#define PSCI_SYSTEM_OFF 0x84000008u
#define PSCI_SYSTEM_RESET 0x84000009u
#define PSCI_CPU_ON 0xC4000003u
#define PSCI_AFFINITY_INFO 0xC4000004u
#define PSCI_INVALID_PARAMETERS (-2L)
#define PSCI_AFFINITY_OFF 1L

/* The platform call: function id in EAX, arguments in RBX, RCX, RSI; `out dx, eax` to
 * PLATFORM_CALL_PORT; the result in RAX. */
static inline long platform_call(unsigned fn, unsigned long a, unsigned long b, unsigned long c) {
    long rax = fn;
    __asm__ volatile("outl %%eax, %%dx"
                     : "+a"(rax)
                     : "b"(a), "c"(b), "S"(c), "d"(PLATFORM_CALL_PORT)
                     : "memory");
    return rax;
}

static inline unsigned char inb(unsigned short port) {
    unsigned char v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outb(unsigned short port, unsigned char v) {
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

void serial_putc(char c);
void serial_puts(const char *s);
void serial_put_dec(long v);
void serial_put_hex(unsigned long v, int digits); /* 0x prefix, zero-padded, lowercase */

/* The number of cores the VM has: the first core id AFFINITY_INFO calls invalid. */
long count_cores(void);

/* Never return. */
void guest_power_off(void) __attribute__((noreturn));
void guest_reset(void) __attribute__((noreturn));
void guest_cpu_off(void) __attribute__((noreturn));

/* Entry points a guest defines (guest_secondary_main has a default that goes off). */
void guest_main(unsigned long core_id);
void guest_secondary_main(unsigned long context_id);
extern char secondary_entry[];

/*
 * A VMM that registers memory at the unaligned places real seL4 VMMs use: camkes-vm's low RAM
 * vm_ram_register_at(vm, 0x500, 0x80000 - 0x500) (main.c), libsel4vmmplatsupport's ACPI
 * reservation (0xE0000, 0xFFFF) (acpi.c) and its HPET (0xfed00000, 0x500) (hpet.c). The
 * unaligned guest touches each, inside and in the rest of their pages: a reservation's callback
 * sees only accesses that start in its own bytes; the rest of its pages reaches the
 * unhandled-memory callback, as in libsel4vm. Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_unaligned_vmm unaligned.elf
 */
#include <sel4vm/arch/ioports.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_memory.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vcpu_fault.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define ACPI_BASE 0xE0000u
#define ACPI_SIZE 0xFFFFu
#define HPET_BASE 0xfed00000u
#define HPET_SIZE 0x500u

/* One access a callback saw. */
struct access {
    uintptr_t addr;
    size_t len;
    int write;
    unsigned value;
};
struct log {
    struct access seen[16];
    int n;
};
static struct log acpi_log, hpet_log, unhandled_log;

static void note(struct log *log, vm_vcpu_t *vcpu, uintptr_t addr, size_t len) {
    if (log->n < 16) {
        int write = !is_vcpu_read_fault(vcpu);
        unsigned value = write ? (unsigned)get_vcpu_fault_data(vcpu) : 0;
        log->seen[log->n++] = (struct access){addr, len, write, value};
    }
}

static memory_fault_result_t acpi_fault(vm_t *vm, vm_vcpu_t *vcpu, uintptr_t addr, size_t len,
                                        void *cookie) {
    (void)vm;
    CHECK(cookie == &acpi_log, "cookie");
    note(&acpi_log, vcpu, addr, len);
    set_vcpu_fault_data(vcpu, (addr & 0xffff) + 0x1111);
    return FAULT_HANDLED;
}

static memory_fault_result_t hpet_fault(vm_t *vm, vm_vcpu_t *vcpu, uintptr_t addr, size_t len,
                                        void *cookie) {
    (void)vm, (void)cookie;
    note(&hpet_log, vcpu, addr, len);
    if (is_vcpu_read_fault(vcpu)) set_vcpu_fault_data(vcpu, 0x12345678);
    return FAULT_HANDLED;
}

static memory_fault_result_t unhandled_fault(vm_t *vm, vm_vcpu_t *vcpu, uintptr_t addr, size_t len,
                                             void *cookie) {
    (void)vm, (void)cookie;
    note(&unhandled_log, vcpu, addr, len);
    if (is_vcpu_read_fault(vcpu)) set_vcpu_fault_data(vcpu, 0x77);
    return FAULT_HANDLED;
}

static vm_t vm;
static unsigned values[16];
static int n_values;

static ioport_fault_result_t value_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port,
                                       unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port, (void)size;
    if (n_values < 16) values[n_values++] = value;
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t done_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port,
                                      unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port, (void)size, (void)value;
    guestvm_vm_stop(&vm);
    return IO_FAULT_HANDLED;
}

static void check_access(const struct log *log, int i, uintptr_t addr, size_t len, int write,
                         unsigned value, const char *what) {
    if (i >= log->n) {
        CHECK(0, "%s: access %d missing", what, i);
        return;
    }
    const struct access *a = &log->seen[i];
    CHECK(a->addr == addr && a->len == len && a->write == write && a->value == value,
          "%s %d: %#lx len %zu write %d value %#x", what, i, (unsigned long)a->addr, a->len,
          a->write, a->value);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    alarm(120);
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "unaligned") != 0) {
        fprintf(stderr, "vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 0);
    CHECK(vcpu != NULL, "%s", guestvm_last_error());
    if (vcpu == NULL) return 1;

    /* camkes-vm main.c: low RAM from 0x500; ram_regions keeps the range as given. */
    CHECK(vm_ram_register_at(&vm, 0x500, 0x80000 - 0x500, false) == 0, "%s", guestvm_last_error());
    CHECK(vm.mem.num_ram_regions == 1, "%d regions", vm.mem.num_ram_regions);
    CHECK(vm.mem.ram_regions[0].start == 0x500 && vm.mem.ram_regions[0].size == 0x7fb00,
          "[%#lx, +%#lx)", (unsigned long)vm.mem.ram_regions[0].start,
          (unsigned long)vm.mem.ram_regions[0].size);
    /* Its pages are taken: RAM or a reservation in page 0 or page 0x7f is refused. */
    CHECK(vm_ram_register_at(&vm, 0x80, 0x100, false) == -1, "RAM inside page 0 twice");
    CHECK(vm_reserve_memory_at(&vm, 0x7ff00, 0x10, acpi_fault, NULL) == NULL,
          "a reservation in RAM's last page");
    CHECK(vm_ram_register_at(&vm, 0x100000, 8u << 20, false) == 0, "%s", guestvm_last_error());
    CHECK(vm_ram_register_at(&vm, 0x2000000, 0, false) == -1, "empty RAM accepted");
    CHECK(vm_ram_register_at(&vm, UINTPTR_MAX - 0x10, 0x100, false) == -1, "wrapping RAM");

    /* acpi.c: the BIOS area, one byte short of 64 KiB. */
    vm_memory_reservation_t *acpi =
        vm_reserve_memory_at(&vm, ACPI_BASE, ACPI_SIZE, acpi_fault, &acpi_log);
    CHECK(acpi != NULL, "%s", guestvm_last_error());
    uintptr_t addr = 0;
    size_t size = 0;
    vm_get_reservation_memory_region(acpi, &addr, &size);
    CHECK(addr == ACPI_BASE && size == ACPI_SIZE, "region %#lx +%#zx", (unsigned long)addr, size);

    /* hpet.c: 0x500 bytes at 0xfed00000. Nothing else fits in its page, until it is freed. */
    vm_memory_reservation_t *hpet =
        vm_reserve_memory_at(&vm, HPET_BASE, HPET_SIZE, hpet_fault, NULL);
    CHECK(hpet != NULL, "%s", guestvm_last_error());
    CHECK(vm_reserve_memory_at(&vm, HPET_BASE + 0x800, 0x100, hpet_fault, NULL) == NULL,
          "a second reservation in the HPET's page");
    CHECK(vm_free_reserved_memory(&vm, hpet) == 0, "%s", guestvm_last_error());
    vm_memory_reservation_t *other =
        vm_reserve_memory_at(&vm, HPET_BASE + 0x800, 0x100, hpet_fault, NULL);
    CHECK(other != NULL, "after the free: %s", guestvm_last_error());
    CHECK(vm_free_reserved_memory(&vm, other) == 0, "%s", guestvm_last_error());
    hpet = vm_reserve_memory_at(&vm, HPET_BASE, HPET_SIZE, hpet_fault, NULL);
    CHECK(hpet != NULL, "again: %s", guestvm_last_error());

    CHECK(vm_register_unhandled_mem_fault_callback(&vm, unhandled_fault, NULL) == 0, "%s",
          guestvm_last_error());
    vm_ioport_interface_t value_iface = {NULL, NULL, value_out, "values"};
    vm_ioport_interface_t done_iface = {NULL, NULL, done_out, "done"};
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){0x5f0, 0x5f3}, value_iface) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){0x5f8, 0x5fb}, done_iface) == 0, "%s",
          guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, argv[1]) == 0, "%s", guestvm_last_error());
    CHECK(vcpu_start(vcpu) == 0, "%s", guestvm_last_error());
    char why[256];
    CHECK(vm_run(&vm) == 0, "vm_run: %s", guestvm_last_error());
    CHECK(guestvm_vm_stop_reason(&vm, why, sizeof why) == GUESTVM_STOP_REQUESTED, "%s", why);

    static const unsigned want[] = {
        0xdeadbeef, 0x55667788,        /* RAM at 0x100 (page 0) and 0x7fffc */
        0x11,       0x0f,       0x77,  /* 0xE0000, 0xEFFFE (its own), 0xEFFFF (the page's) */
        0x110f,                        /* 2 bytes from 0xEFFFE: starts inside, its callback */
        0x12345678, 0x77,       0x77}; /* HPET +0xf0, then +0x500 and +0xffc (the page's) */
    const int n_want = (int)(sizeof want / sizeof want[0]);
    CHECK(n_values == n_want, "%d values", n_values);
    for (int i = 0; i < n_values && i < n_want; ++i) {
        CHECK(values[i] == want[i], "value %d: %#x, want %#x", i, values[i], want[i]);
    }
    CHECK(acpi_log.n == 3, "%d ACPI accesses", acpi_log.n);
    check_access(&acpi_log, 0, 0xe0000, 1, 0, 0, "acpi");
    check_access(&acpi_log, 1, 0xefffe, 1, 0, 0, "acpi");
    check_access(&acpi_log, 2, 0xefffe, 2, 0, 0, "acpi");
    CHECK(hpet_log.n == 2, "%d HPET accesses", hpet_log.n);
    check_access(&hpet_log, 0, 0xfed000f0, 4, 0, 0, "hpet");
    check_access(&hpet_log, 1, 0xfed00010, 4, 1, 3, "hpet");
    CHECK(unhandled_log.n == 3, "%d unhandled accesses", unhandled_log.n);
    check_access(&unhandled_log, 0, 0xeffff, 1, 0, 0, "unhandled");
    check_access(&unhandled_log, 1, 0xfed00500, 4, 0, 0, "unhandled");
    check_access(&unhandled_log, 2, 0xfed00ffc, 4, 0, 0, "unhandled");

    CHECK(vm_free_reserved_memory(&vm, acpi) == 0, "%s", guestvm_last_error());
    CHECK(vm_free_reserved_memory(&vm, hpet) == 0, "%s", guestvm_last_error());
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());
    return checks_done();
}

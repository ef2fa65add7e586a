/*
 * A VMM that brings its own devices, as camkes-vm does: its own COM1 (main.c registers
 * 0x3f8-0x3ff and asserts it succeeded) and, as libsel4vmmplatsupport's FADT places them, the
 * ACPI PM1a event block at 0x600 and control block at 0x604. A VM made by vm_init has no
 * device of guestvm's, so every registration succeeds, the guest's bytes reach the VMM's COM1
 * and its PM1a writes reach the VMM with RAX intact. The platform call is there only when the
 * VMM adds it (guestvm_vm_add_platform_call): the guest is run once without it and once with
 * it. Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_own_devices_vmm own_devices.elf
 */
#include <sel4vm/arch/ioports.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define X86_IO_SERIAL_1_START 0x3f8
#define X86_IO_SERIAL_1_END 0x3ff
#define PM1A_EVT_BLK 0x600
#define PM1A_CNT_BLK 0x604

static vm_t vm;

/* The VMM's COM1: a transmitter that is always empty, and the bytes it was given. */
static char com1[1024];
static size_t com1_len;

static ioport_fault_result_t serial_port_in(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                            unsigned int size, unsigned int *result) {
    (void)vcpu, (void)cookie, (void)size;
    *result = port_no == X86_IO_SERIAL_1_START + 5 ? 0x60 : 0; /* LSR: THRE | TEMT */
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t serial_port_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                             unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)size;
    if (port_no == X86_IO_SERIAL_1_START && com1_len < sizeof com1 - 1) {
        com1[com1_len++] = (char)value;
    }
    return IO_FAULT_HANDLED;
}

/* The PM1a registers: what was written, where and how wide. */
struct write {
    unsigned port, size, value;
};
static struct write pm1a[8];
static int n_pm1a;

static ioport_fault_result_t pm1a_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                      unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie;
    if (n_pm1a < 8) pm1a[n_pm1a++] = (struct write){port_no, size, value};
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t pm1a_in(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                     unsigned int size, unsigned int *result) {
    (void)vcpu, (void)cookie, (void)port_no, (void)size;
    *result = 0;
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t done_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                      unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port_no, (void)size, (void)value;
    guestvm_vm_stop(&vm);
    return IO_FAULT_HANDLED;
}

static void add(uint16_t start, uint16_t end, vm_ioport_in_fn in, vm_ioport_out_fn out,
                const char *desc) {
    vm_ioport_range_t range = {start, end};
    vm_ioport_interface_t iface = {NULL, in, out, desc};
    int error = vm_io_port_add_handler(&vm, range, iface);
    CHECK(!error, "%s: %s", desc, guestvm_last_error());
}

/* One run of the guest; with_pcall: the VMM adds guestvm's platform call. */
static void run(const char *image, int with_pcall) {
    com1_len = 0;
    n_pm1a = 0;
    memset(com1, 0, sizeof com1);
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    CHECK(vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "own-devices") == 0, "%s",
          guestvm_last_error());
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 0);
    CHECK(vcpu != NULL, "%s", guestvm_last_error());
    add(X86_IO_SERIAL_1_START, X86_IO_SERIAL_1_END, serial_port_in, serial_port_out,
        "COM1 Serial Port");
    add(PM1A_EVT_BLK, PM1A_EVT_BLK + 3, pm1a_in, pm1a_out, "PM1a event block");
    add(PM1A_CNT_BLK, PM1A_CNT_BLK + 1, pm1a_in, pm1a_out, "PM1a control block");
    add(0x5f8, 0x5f8, NULL, done_out, "done");
    CHECK(vm.arch.ioport_list.num_ioports == 4, "%d handlers listed",
          vm.arch.ioport_list.num_ioports);
    /* guestvm's UART cannot join the VMM's COM1. */
    CHECK(guestvm_vm_add_serial(&vm, NULL, NULL) == -1, "a second COM1");
    if (with_pcall) {
        CHECK(guestvm_vm_add_platform_call(&vm) == 0, "%s", guestvm_last_error());
        CHECK(guestvm_vm_add_platform_call(&vm) == -1, "the platform call twice");
    }
    CHECK(vm_ram_register_at(&vm, 0, 16u << 20, false) == 0, "%s", guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, image) == 0, "%s", guestvm_last_error());
    CHECK(vcpu_start(vcpu) == 0, "%s", guestvm_last_error());
    char why[256];
    CHECK(vm_run(&vm) == 0, "vm_run: %s", guestvm_last_error());
    guestvm_stop_reason_t reason = guestvm_vm_stop_reason(&vm, why, sizeof why);
    CHECK(reason == (with_pcall ? GUESTVM_STOP_POWER_OFF : GUESTVM_STOP_REQUESTED),
          "stopped: %d %s", (int)reason, why);
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());

    CHECK(strstr(com1, "own-devices: hello through the VMM's COM1\n") != NULL, "COM1: %s", com1);
    CHECK(strstr(com1, "pm1a_evt: rax kept\n") != NULL, "COM1: %s", com1);
    CHECK(strstr(com1, "pm1a_cnt: rax kept\n") != NULL, "COM1: %s", com1);
    const char *version = with_pcall ? "psci version -> 0x00010000\n"
                                     : "psci version -> 0x84000000\n"; /* no answer: EAX kept */
    CHECK(strstr(com1, version) != NULL, "want %s in COM1: %s", version, com1);
    CHECK(n_pm1a == 2, "%d PM1a writes", n_pm1a);
    CHECK(pm1a[0].port == PM1A_EVT_BLK && pm1a[0].size == 2 && pm1a[0].value == 0x8001,
          "PM1a event write %#x %u %#x", pm1a[0].port, pm1a[0].size, pm1a[0].value);
    CHECK(pm1a[1].port == PM1A_CNT_BLK && pm1a[1].size == 2 && pm1a[1].value == 0x0001,
          "PM1a control write %#x %u %#x", pm1a[1].port, pm1a[1].size, pm1a[1].value);
}

static void unused_sink(int vcpu_id, const char *bytes, size_t len, void *cookie) {
    (void)vcpu_id, (void)bytes, (void)len, (void)cookie;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    alarm(120);
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "probe") != 0) {
        fprintf(stderr, "vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());

    /* A serial sink is guestvm's UART's: asking for one without the UART is an error. */
    guestvm_vm_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.serial = unused_sink;
    CHECK(guestvm_vm_init(&vm, "sink", &opts) == -1, "a sink without GUESTVM_DEVICE_SERIAL");
    opts.serial = NULL;
    opts.devices = 0x80;
    CHECK(guestvm_vm_init(&vm, "bits", &opts) == -1, "an unknown device bit");

    run(argv[1], 0);
    run(argv[1], 1);
    return checks_done();
}

/*
 * A VMM with its own 8254 PIT on ports 0x40-0x43 (camkes-vm's i8254.c registers them; main.c's
 * ioport_handlers) and the default interrupt controller on. The C API's controller is KVM's
 * irqchip without KVM's in-kernel PIT, so the guest's PIT accesses reach the VMM's model: the
 * pit_probe guest programs channel 0, latches and reads the count, and takes the IRQ 0 that the
 * model raises when the count is written. Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_own_pit_vmm pit_probe.elf
 */
#include <sel4vm/arch/ioports.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_irq_controller.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define X86_IO_PIT_START 0x40
#define X86_IO_PIT_END \
    0x43 /* libsel4vmmplatsupport's ioport_defs.h says 0x5f; 0x40-0x43 is the chip */

static vm_t vm;

/* A minimal channel-0 model: the count written (low, then high byte), a latch read back in the
 * same order, IRQ 0 raised once the count is complete. */
static struct {
    unsigned count, latch;
    int write_high, read_high, latched;
    unsigned writes[8][2]; /* port, value */
    int n_writes, n_reads;
} pit;

static ioport_fault_result_t i8254_port_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                            unsigned int size, unsigned int value) {
    (void)cookie;
    CHECK(size == 1, "PIT write of %u bytes", size);
    if (pit.n_writes < 8) {
        pit.writes[pit.n_writes][0] = port_no;
        pit.writes[pit.n_writes][1] = value;
        ++pit.n_writes;
    }
    if (port_no == 0x43) {
        if ((value & 0x30) == 0) {
            pit.latch = pit.count;
            pit.latched = 1;
            pit.read_high = 0;
        } else {
            pit.write_high = 0;
        }
    } else if (port_no == 0x40) {
        if (!pit.write_high) {
            pit.count = value & 0xff;
            pit.write_high = 1;
        } else {
            pit.count |= (value & 0xff) << 8;
            pit.write_high = 0;
            CHECK(vm_inject_irq(vcpu, 0) == 0, "%s", guestvm_last_error());
        }
    }
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t i8254_port_in(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                           unsigned int size, unsigned int *result) {
    (void)vcpu, (void)cookie, (void)size;
    ++pit.n_reads;
    *result = 0;
    if (port_no == 0x40 && pit.latched) {
        *result = pit.read_high ? pit.latch >> 8 : pit.latch & 0xff;
        if (pit.read_high) pit.latched = 0;
        pit.read_high = !pit.read_high;
    }
    return IO_FAULT_HANDLED;
}

static unsigned values[4];
static int n_values;

static ioport_fault_result_t value_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                       unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port_no, (void)size;
    if (n_values < 4) values[n_values++] = value;
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t done_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                      unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port_no, (void)size, (void)value;
    guestvm_vm_stop(&vm);
    return IO_FAULT_HANDLED;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    alarm(120);
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "own-pit") != 0) {
        fprintf(stderr, "vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 0);
    CHECK(vcpu != NULL, "%s", guestvm_last_error());
    if (vcpu == NULL) return 1;
    CHECK(vm_create_default_irq_controller(&vm) == 0, "%s", guestvm_last_error());
    vm_ioport_interface_t pit_iface = {NULL, i8254_port_in, i8254_port_out,
                                       "8253/8254 Programmable Interval Timer"};
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){X86_IO_PIT_START, X86_IO_PIT_END},
                                 pit_iface) == 0,
          "%s", guestvm_last_error());
    vm_ioport_interface_t value_iface = {NULL, NULL, value_out, "values"};
    vm_ioport_interface_t done_iface = {NULL, NULL, done_out, "done"};
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){0x5f0, 0x5f3}, value_iface) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){0x5f8, 0x5f8}, done_iface) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_ram_register_at(&vm, 0, 16u << 20, false) == 0, "%s", guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, argv[1]) == 0, "%s", guestvm_last_error());
    CHECK(vcpu_start(vcpu) == 0, "%s", guestvm_last_error());
    char why[256];
    CHECK(vm_run(&vm) == 0, "vm_run: %s", guestvm_last_error());
    CHECK(guestvm_vm_stop_reason(&vm, why, sizeof why) == GUESTVM_STOP_REQUESTED, "%s", why);
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());

    static const unsigned want_writes[][2] = {{0x43, 0x34}, {0x40, 0x9c}, {0x40, 0x2e}, {0x43, 0}};
    CHECK(pit.n_writes == 4, "%d PIT writes reached the VMM", pit.n_writes);
    for (int i = 0; i < pit.n_writes && i < 4; ++i) {
        CHECK(pit.writes[i][0] == want_writes[i][0] && pit.writes[i][1] == want_writes[i][1],
              "write %d: %#x <- %#x", i, pit.writes[i][0], pit.writes[i][1]);
    }
    CHECK(pit.n_reads == 2, "%d PIT reads reached the VMM", pit.n_reads);
    CHECK(n_values == 2, "%d values", n_values);
    CHECK(values[0] == 0x2e9c, "the guest read the count %#x", values[0]);
    CHECK(values[1] >= 1, "the guest took %u timer interrupts", values[1]);
    return checks_done();
}

/*
 * vm_enable_passthrough_ioport as camkes-vm calls it for configured non-PCI ports (main.c, then
 * assert(!error)): port 0x80, the POST diagnostic port, harmless to write. Where the host grants
 * ports (CAP_SYS_RAWIO and a kernel with CONFIG_X86_IOPL_IOPERM) the guest's OUT and IN reach the
 * host's port, and the guest reads what the VMM reads there itself; where it does not, the call
 * answers -1 naming what is missing and the port stays the unhandled-port callback's. Either way
 * the misuse cases are refused. Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_passthrough_vmm passthrough.elf
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sel4vm/arch/ioports.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <unistd.h>

#include "check.h"

#define POST_PORT 0x80

static vm_t vm;
static unsigned values[4];
static int n_values;
static int unhandled_out, unhandled_in; /* accesses to port 0x80 the callback saw */

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

static ioport_fault_result_t unhandled(vm_vcpu_t *vcpu, unsigned int port_no, bool is_in,
                                       unsigned int *value, size_t size, void *cookie) {
    (void)vcpu, (void)size, (void)cookie;
    if (port_no != POST_PORT) return IO_FAULT_UNHANDLED;
    if (is_in) {
        ++unhandled_in;
        *value = 0x33;
    } else {
        ++unhandled_out;
        CHECK(*value == 0x5a, "the guest wrote %#x", *value);
    }
    return IO_FAULT_HANDLED;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    alarm(120);
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "passthrough") != 0) {
        fprintf(stderr, "vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 0);
    CHECK(vcpu != NULL, "%s", guestvm_last_error());
    if (vcpu == NULL) return 1;
    CHECK(vm_enable_passthrough_ioport(NULL, POST_PORT, POST_PORT) == -1, "NULL vcpu");
    CHECK(vm_enable_passthrough_ioport(vcpu, 0x90, 0x80) == -1, "a backwards range");

    /* What the host allows this process, asked the way guestvm asks. */
    int host_grants = ioperm(POST_PORT, 1, 1) == 0;
    int host_errno = errno;
    int error = vm_enable_passthrough_ioport(vcpu, POST_PORT, POST_PORT);
    if (host_grants) {
        CHECK(error == 0, "%s", guestvm_last_error());
        vm_ioport_interface_t iface = {NULL, NULL, value_out, "over the passthrough"};
        CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){POST_PORT, POST_PORT}, iface) == -1,
              "a handler over a passed-through port");
    } else {
        CHECK(error == -1, "passthrough granted although ioperm fails here");
        const char *why = guestvm_last_error();
        CHECK(strstr(why, "ioperm") != NULL, "%s", why);
        if (host_errno == ENOSYS) CHECK(strstr(why, "CONFIG_X86_IOPL_IOPERM") != NULL, "%s", why);
        if (host_errno == EPERM) CHECK(strstr(why, "CAP_SYS_RAWIO") != NULL, "%s", why);
        printf("passthrough refused, as this host refuses ports: %s\n", why);
    }

    CHECK(vm_register_unhandled_ioport_callback(&vm, unhandled, NULL) == 0, "%s",
          guestvm_last_error());
    vm_ioport_interface_t value_iface = {NULL, NULL, value_out, "values"};
    vm_ioport_interface_t done_iface = {NULL, NULL, done_out, "done"};
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){0x5f0, 0x5f3}, value_iface) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){0x5f8, 0x5f8}, done_iface) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_ram_register_at(&vm, 0, 16u << 20, false) == 0, "%s", guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, argv[1]) == 0, "%s", guestvm_last_error());
    CHECK(vcpu_start(vcpu) == 0, "%s", guestvm_last_error());
    CHECK(vm_run(&vm) == 0, "vm_run: %s", guestvm_last_error());
    CHECK(n_values == 1, "%d values", n_values);
    if (host_grants) {
        /* The guest's accesses went to the host's port, not to the VMM. */
        CHECK(unhandled_out == 0 && unhandled_in == 0, "the callback saw %d OUT, %d IN",
              unhandled_out, unhandled_in);
        unsigned char here = inb(POST_PORT);
        CHECK(values[0] == here, "the guest read %#x, the VMM reads %#x", values[0], here);
        printf("passthrough granted: the guest read %#x from the host's port 0x80\n", values[0]);
    } else {
        CHECK(unhandled_out == 1 && unhandled_in == 1, "the callback saw %d OUT, %d IN",
              unhandled_out, unhandled_in);
        CHECK(values[0] == 0x33, "the guest read %#x", values[0]);
    }
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());
    return checks_done();
}

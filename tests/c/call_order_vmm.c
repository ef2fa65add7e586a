/*
 * A VMM in camkes-vm's call order (components/Init/src/main.c): vm_init, vm_create_vcpu for the
 * boot vCPU, the notification and unhandled-port callbacks, vm_register_irq for its lines, and
 * only then vm_create_default_irq_controller; RAM, the image, the port handlers, vcpu_start,
 * vm_run. The irq_order guest asks for IRQ 5 twice: the VMM raises it once as an edge
 * (vm_inject_irq) and once as a level (vm_set_irq_level, lowered again from the acknowledgement
 * callback registered before the controller existed), and the guest waits each time until the
 * VMM has seen its EOI. Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_call_order_vmm irq_order.elf
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sel4vm/arch/guest_x86_context.h>
#include <sel4vm/arch/ioports.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_irq_controller.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guest_vm_util.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BOOT_VCPU 0
#define GUEST_LINE 5
#define RAM_BYTES (16u << 20)

#include "check.h"

static vm_t vm;
static pthread_t vmm_thread; /* the thread that calls vm_run */
static int acks;             /* acknowledgements seen (atomic: the guest polls it) */
static int line_high;        /* round 2 holds the line high until the acknowledgement */
static unsigned done_taken;  /* what the guest reported at the end */
static const char ack_cookie[] = "ack cookie";

static void irq_ack(vm_vcpu_t *vcpu, int irq, void *cookie) {
    CHECK(pthread_equal(pthread_self(), vmm_thread), "acknowledgement off vm_run's thread");
    CHECK(vcpu == vm.vcpus[BOOT_VCPU], "vcpu %p", (void *)vcpu);
    CHECK(irq == GUEST_LINE, "irq %d", irq);
    CHECK(cookie == ack_cookie, "cookie %p", cookie);
    if (line_high) {
        CHECK(vm_set_irq_level(vcpu, irq, 0) == 0, "%s", guestvm_last_error());
        line_high = 0;
    }
    __atomic_add_fetch(&acks, 1, __ATOMIC_RELEASE);
}

static ioport_fault_result_t raise_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port,
                                       unsigned int size, unsigned int value) {
    (void)cookie, (void)port, (void)size;
    if (value == 1) {
        CHECK(vm_inject_irq(vcpu, GUEST_LINE) == 0, "%s", guestvm_last_error());
    } else if (value == 2) {
        line_high = 1;
        CHECK(vm_set_irq_level(vcpu, GUEST_LINE, 1) == 0, "%s", guestvm_last_error());
    } else {
        return IO_FAULT_ERROR;
    }
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t acks_in(vm_vcpu_t *vcpu, void *cookie, unsigned int port,
                                     unsigned int size, unsigned int *result) {
    (void)vcpu, (void)cookie, (void)port, (void)size;
    *result = (unsigned int)__atomic_load_n(&acks, __ATOMIC_ACQUIRE);
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t done_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port,
                                      unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port, (void)size;
    done_taken = value;
    guestvm_vm_stop(&vm);
    return IO_FAULT_HANDLED;
}

static int notified(vm_t *v, seL4_Word badge, seL4_MessageInfo_t tag, void *cookie) {
    (void)v, (void)badge, (void)tag, (void)cookie;
    return 0;
}

static ioport_fault_result_t unhandled_port(vm_vcpu_t *vcpu, unsigned int port_no, bool is_in,
                                            unsigned int *value, size_t size, void *cookie) {
    (void)vcpu, (void)port_no, (void)size, (void)cookie;
    if (is_in) *value = ~0u;
    return IO_FAULT_HANDLED;
}

typedef struct ioport_desc {
    uint16_t start_port;
    uint16_t end_port;
    vm_ioport_in_fn port_in;
    vm_ioport_out_fn port_out;
    const char *desc;
} ioport_desc_t;

static const ioport_desc_t ioport_handlers[] = {
    {0x5f0, 0x5f3, NULL, raise_out, "raise IRQ 5"},
    {0x5f4, 0x5f7, acks_in, NULL, "acknowledgements seen"},
    {0x5f8, 0x5fb, NULL, done_out, "done"},
};

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    alarm(120); /* a hang fails the test */
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "call-order") != 0) {
        fprintf(stderr, "vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    vmm_thread = pthread_self();

    /* main.c:684 — the boot vCPU first. */
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 0);
    CHECK(vcpu != NULL, "%s", guestvm_last_error());
    if (vcpu == NULL) return 1;
    CHECK(vm_register_notification_callback(&vm, notified, NULL) == 0, "%s", guestvm_last_error());
    CHECK(vm_register_unhandled_ioport_callback(&vm, unhandled_port, NULL) == 0, "%s",
          guestvm_last_error());

    /* Nothing can be raised before the controller, and that is an error, not a crash. */
    CHECK(vm_inject_irq(vcpu, GUEST_LINE) == -1, "injected without a controller");
    CHECK(strstr(guestvm_last_error(), "interrupt controller") != NULL, "%s", guestvm_last_error());
    CHECK(vm_set_irq_level(vcpu, GUEST_LINE, 1) == -1, "raised without a controller");

    /* main.c:587 (init_irqs) — registrations before the controller are recorded. */
    CHECK(vm_register_irq(vcpu, GUEST_LINE, irq_ack, (void *)ack_cookie) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_register_irq(vcpu, 3, irq_ack, NULL) == 0, "%s", guestvm_last_error());
    CHECK(vm_register_irq(vcpu, 3, NULL, NULL) == 0, "%s", guestvm_last_error()); /* removed */
    CHECK(vm_register_irq(vcpu, 24, irq_ack, NULL) == -1, "line 24 accepted");
    CHECK(vm_register_irq(vcpu, -1, irq_ack, NULL) == -1, "line -1 accepted");

    /* main.c:703 — the controller, after the vCPU. */
    CHECK(vm_create_default_irq_controller(&vm) == 0, "%s", guestvm_last_error());
    CHECK(vm_create_default_irq_controller(&vm) == 0, "again: %s", guestvm_last_error());

    for (size_t i = 0; i < sizeof ioport_handlers / sizeof ioport_handlers[0]; ++i) {
        const ioport_desc_t *d = &ioport_handlers[i];
        vm_ioport_range_t range = {d->start_port, d->end_port};
        vm_ioport_interface_t iface = {NULL, d->port_in, d->port_out, d->desc};
        CHECK(vm_io_port_add_handler(&vm, range, iface) == 0, "%s: %s", d->desc,
              guestvm_last_error());
    }
    CHECK(vm_ram_register_at(&vm, 0, RAM_BYTES, false) == 0, "%s", guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, argv[1]) == 0, "%s", guestvm_last_error());
    CHECK(vcpu_start(vcpu) == 0, "%s", guestvm_last_error());

    /* Once a vCPU runs, KVM takes no irqchip: a VM without one says why. */
    vm_t late;
    CHECK(vm_init(&late, NULL, NULL, host_vspace, NULL, 0, "late") == 0, "%s",
          guestvm_last_error());
    vm_vcpu_t *late_vcpu = vm_create_vcpu(&late, 0);
    CHECK(late_vcpu != NULL, "%s", guestvm_last_error());
    CHECK(vm_ram_register_at(&late, 0, RAM_BYTES, false) == 0, "%s", guestvm_last_error());
    CHECK(vm_set_thread_context_reg(late_vcpu, VCPU_CONTEXT_EAX, 1) == 0, "%s",
          guestvm_last_error());
    CHECK(vm_create_default_irq_controller(&late) == -1, "a controller after register use");
    CHECK(strstr(guestvm_last_error(), "before any vCPU is started") != NULL, "%s",
          guestvm_last_error());
    CHECK(vm_destroy(&late) == 0, "%s", guestvm_last_error());

    char why[256];
    int run = vm_run(&vm);
    guestvm_stop_reason_t reason = guestvm_vm_stop_reason(&vm, why, sizeof why);
    CHECK(run == 0, "vm_run: %s (%s)", guestvm_last_error(), why);
    CHECK(reason == GUESTVM_STOP_REQUESTED, "stopped: %d %s", (int)reason, why);
    CHECK(done_taken == 2, "the guest took %u interrupts", done_taken);
    CHECK(__atomic_load_n(&acks, __ATOMIC_ACQUIRE) == 2, "%d acknowledgements", acks);
    CHECK(!line_high, "the level was never lowered");
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());

    return checks_done();
}

/*
 * A small VMM in C written against libsel4vm's x86 API, plus one guestvm call: it adds
 * guestvm's platform call (guestvm_vm_add_platform_call), through which the guest powers off
 * (a libsel4vm VM has no device of guestvm's unless asked). It registers RAM, copies a flat 32-bit
 * guest in with vm_ram_touch, serves a console port and an MMIO device (a reservation whose fault
 * callback uses the vCPU fault accessors), enters the guest by writing VMCS fields, and runs it.
 *
 *   example_c_vmm hello32.bin
 *
 * Exit status 0 when the guest ran and stopped cleanly, 1 on an error, 77 when the machine has
 * no usable /dev/kvm (vm_init fails).
 */
#include <sel4vm/arch/guest_x86_context.h>
#include <sel4vm/arch/ioports.h>
#include <sel4vm/arch/vmcs_fields.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_memory.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vcpu_fault.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guest_vm_util.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>

#define LOAD_ADDR 0x100000u
#define DEVICE_ADDR 0xd0000000u

/* The guest's console: port 0xe9, one byte per OUT. */
static ioport_fault_result_t console_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port,
                                         unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)port, (void)size;
    putchar((int)(value & 0xff));
    return IO_FAULT_HANDLED;
}

/* A device with a counter register at +0 (read) and a result register at +4 (write). */
struct device {
    seL4_Word counter;
    seL4_Word result;
};

static memory_fault_result_t device_access(vm_t *vm, vm_vcpu_t *vcpu, uintptr_t addr, size_t length,
                                           void *cookie) {
    (void)vm;
    struct device *dev = cookie;
    if (is_vcpu_read_fault(vcpu) && addr == DEVICE_ADDR && length == 4) {
        set_vcpu_fault_data(vcpu, dev->counter);
    } else if (!is_vcpu_read_fault(vcpu) && addr == DEVICE_ADDR + 4 && length == 4) {
        dev->result = get_vcpu_fault_data(vcpu) & get_vcpu_fault_data_mask(vcpu);
    } else {
        fprintf(stderr, "device: unexpected %zu-byte access at %#lx\n", length,
                (unsigned long)addr);
        return FAULT_ERROR;
    }
    advance_vcpu_fault(vcpu);
    return FAULT_HANDLED;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s GUEST.bin\n", argv[0]);
        return 2;
    }
    static unsigned char image[64 * 1024];
    FILE *file = fopen(argv[1], "rb");
    if (file == NULL) {
        perror(argv[1]);
        return 1;
    }
    size_t image_size = fread(image, 1, sizeof image, file);
    fclose(file);

    static vm_t vm; /* caller-allocated, as in libsel4vm */
    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "c-vmm") != 0) {
        fprintf(stderr, "c-vmm: vm_init failed (no usable /dev/kvm?)\n");
        return 77;
    }
    struct device dev = {41, 0};
    vm_ioport_range_t console = {0xe9, 0xe9};
    vm_ioport_interface_t console_if = {NULL, NULL, console_out, "console"};
    if (vm_ram_register_at(&vm, 0, 2u << 20, false) != 0 ||
        vm_ram_touch(&vm, LOAD_ADDR, image_size, vm_guest_ram_write_callback, image) != 0 ||
        vm_io_port_add_handler(&vm, console, console_if) != 0 ||
        guestvm_vm_add_platform_call(&vm) != 0 || /* the guest powers off through it */
        vm_reserve_memory_at(&vm, DEVICE_ADDR, 0x1000, device_access, &dev) == NULL) {
        fprintf(stderr, "c-vmm: setting up the VM failed\n");
        return 1;
    }
    vm_ram_mark_allocated(&vm, LOAD_ADDR, image_size);

    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    if (vcpu == NULL || vm_set_vmcs_field(vcpu, VMX_GUEST_RIP, LOAD_ADDR) != 0 ||
        vm_assign_vcpu_target(vcpu, 0) != 0) {
        fprintf(stderr, "c-vmm: creating the vCPU failed\n");
        return 1;
    }
    /* Said before the start: from then on the guest's console (this stdout) may speak. */
    printf("c-vmm: core 0 is vCPU %u\n", vm_vcpu_for_target_cpu(&vm, 0)->vcpu_id);
    fflush(stdout);
    if (vcpu_start(vcpu) != 0) {
        fprintf(stderr, "c-vmm: starting the vCPU failed\n");
        return 1;
    }
    int err = vm_run(&vm);
    seL4_Word rip = 0;
    vm_get_vmcs_field(vcpu, VMX_GUEST_RIP, &rip);
    printf("c-vmm: vm_run -> %d, exit_reason %d; device counter %lu, guest wrote %lu; rip %#lx\n",
           err, vm.run.exit_reason, (unsigned long)dev.counter, (unsigned long)dev.result,
           (unsigned long)rip);
    printf("c-vmm: vCPU 0 online after the run: %s\n", is_vcpu_online(vcpu) ? "yes" : "no");
    return err == 0 && dev.result == dev.counter + 1 ? 0 : 1;
}

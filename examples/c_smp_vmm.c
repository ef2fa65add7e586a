/*
 * A VMM in C written against libsel4vm's names (plus <sel4vm/guestvm.h> for what a
 * Linux process needs: loading an image, serial output, teardown).
 *
 *   example_c_smp_vmm GUEST.elf [VCPUS]
 *
 * It creates VCPUS vCPUs, starts core 0 on vCPU 0, lets the guest bring up the rest through the
 * platform call, and prints the util interface's view of every core when the guest stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_vm_util.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serial_out(int vcpu_id, const char *bytes, size_t len, void *cookie) {
    (void)vcpu_id;
    (void)cookie;
    fwrite(bytes, 1, len, stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s GUEST.elf [VCPUS]\n", argv[0]);
        return 2;
    }
    int vcpus = argc > 2 ? atoi(argv[2]) : 2;
    if (vcpus < 1 || vcpus > GUESTVM_MAX_VCPUS) {
        fprintf(stderr, "VCPUS must be 1..%d\n", GUESTVM_MAX_VCPUS);
        return 2;
    }
    if (access("/dev/kvm", R_OK | W_OK) != 0) {
        fprintf(stderr, "skipping: /dev/kvm: %s\n", strerror(errno));
        return 77;
    }
    static vm_t vm; /* caller-allocated, as in libsel4vm */
    guestvm_vm_options_t options = {0};
    options.ram_bytes = 64u << 20;
    options.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    options.serial = serial_out;
    if (guestvm_vm_init(&vm, "c-vmm", &options) != 0 || guestvm_vm_load_elf(&vm, argv[1]) != 0) {
        fprintf(stderr, "c-vmm: %s\n", guestvm_last_error());
        return 1;
    }
    for (int i = 0; i < vcpus; i++) {
        if (vm_create_vcpu(&vm, 100) == NULL) {
            fprintf(stderr, "c-vmm: vm_create_vcpu: %s\n", guestvm_last_error());
            return 1;
        }
    }
    vm_vcpu_t *boot = vm.vcpus[BOOT_VCPU];
    if (vm_assign_vcpu_target(boot, 0) != 0 || vcpu_start(boot) != 0) {
        fprintf(stderr, "c-vmm: starting the boot vCPU: %s\n", guestvm_last_error());
        return 1;
    }
    int err = vm_run(&vm);
    char why[256];
    guestvm_vm_stop_reason(&vm, why, sizeof why);
    printf("vm_run -> %d (%s)\n", err, why);
    for (int core = 0; core < vcpus; core++) {
        vm_vcpu_t *v = vm_vcpu_for_target_cpu(&vm, core);
        if (v == NULL) {
            printf("core %d -> no vCPU\n", core);
            continue;
        }
        printf("core %d -> vCPU %u, online %s, tcb %#llx, vcpu cap %#llx\n", core, v->vcpu_id,
               is_vcpu_online(v) ? "yes" : "no", (unsigned long long)vm_get_vcpu_tcb(v),
               (unsigned long long)vm_get_vcpu(&vm, (int)v->vcpu_id));
    }
    vm_destroy(&vm);
    return err == 0 ? 0 : 1;
}

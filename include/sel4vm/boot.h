/*
 * guestvm — libsel4vm's boot.h: creating a VM and its vCPUs.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BOOT_VCPU 0

/**
 * Initialises a caller-allocated VM. As in libsel4vm, a port no handler claims reads all ones
 * and ignores writes.
 * @param vm             the VM to initialise (its previous contents are ignored)
 * @param vka            NULL: guestvm's own allocation (a non-NULL vka is accepted and unused)
 * @param host_simple    likewise
 * @param host_vspace    the host vspace (may be zeroed); guestvm fills vm->mem.vmm_vspace itself
 * @param io_ops         likewise
 * @param host_endpoint  unused on guestvm
 * @param name           the VM's name (copied); NULL is refused
 * @return 0 on success, -1 on error (NULL vm or name, no usable /dev/kvm: see
 *         guestvm_last_error())
 */
int vm_init(vm_t *vm, vka_t *vka, simple_t *host_simple, vspace_t host_vspace, ps_io_ops_t *io_ops,
            seL4_CPtr host_endpoint, const char *name);

/**
 * Creates the VM's next vCPU (logical ids are per VM, from 0), with a TCB and a VCPU capability.
 * @param vm        an initialised VM
 * @param priority  the seL4 priority of its thread (0..255)
 * @return the vCPU, or NULL on error (NULL/uninitialised vm, bad priority, KVM's vCPU limit)
 */
vm_vcpu_t *vm_create_vcpu(vm_t *vm, int priority);

/**
 * Assigns a guest core id to a vCPU.
 * @param vcpu        the vCPU
 * @param target_cpu  a core id in 0..GUESTVM_MAX_VCPUS-1 not yet taken in this VM
 * @return 0 on success, -1 on error (NULL vcpu, core out of range or taken, vCPU already assigned)
 */
int vm_assign_vcpu_target(vm_vcpu_t *vcpu, int target_cpu);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

/*
 * guestvm — libsel4vm's guest VM util interface: seven queries over a live VM.
 *
 * Unlike libsel4vm's inline versions, these are safe on any input: NULL handles and negative or
 * out-of-range ids give NULL / seL4_CapNull. Each is O(1) and may be called from any thread
 * while the VM's vCPUs run.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @param vcpu  a vCPU handle (may be NULL)
 * @return the capability to the vCPU's TCB object (its host thread); seL4_CapNull for NULL
 */
seL4_CPtr vm_get_vcpu_tcb(vm_vcpu_t *vcpu);

/**
 * @param vm       a VM handle (may be NULL)
 * @param vcpu_id  a logical vCPU id
 * @return the capability to that vCPU's VCPU object; seL4_CapNull when the VM has no vCPU with
 *         that id (negative ids included)
 */
seL4_CPtr vm_get_vcpu(vm_t *vm, int vcpu_id);

/**
 * @param vm          a VM handle (may be NULL)
 * @param target_cpu  a guest core id
 * @return the vCPU assigned to that core, or NULL (negative cores match nothing)
 */
vm_vcpu_t *vm_vcpu_for_target_cpu(vm_t *vm, int target_cpu);

/**
 * @param vm  a VM handle (may be NULL)
 * @return the lowest-id vCPU with no target core, or NULL. To claim one race-free, use
 *         guestvm_vm_claim_vcpu_for_target() from <sel4vm/guestvm.h>.
 */
vm_vcpu_t *vm_find_free_unassigned_vcpu(vm_t *vm);

/**
 * @param vcpu  a vCPU handle (may be NULL)
 * @return true from a successful start until the vCPU stops (CPU_OFF, VM stop, fatal exit);
 *         a suspended vCPU is online. false for NULL.
 */
bool is_vcpu_online(vm_vcpu_t *vcpu);

/**
 * @param vm  a VM handle (may be NULL)
 * @return the guest's address space (guest-physical), or NULL
 */
vspace_t *vm_get_vspace(vm_t *vm);

/**
 * @param vm  a VM handle (may be NULL)
 * @return the host VMM's address space as it concerns this VM, or NULL
 */
vspace_t *vm_get_vmm_vspace(vm_t *vm);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

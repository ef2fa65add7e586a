/*
 * guestvm — libsel4vm's guest_vcpu_fault.h: the memory access a vCPU is faulting on.
 *
 * Valid inside a memory fault callback (vm_reserve_memory_at, the unhandled-memory callback),
 * on the faulting vCPU's thread, for that vCPU. Elsewhere they answer 0 / false / -1.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Guest-physical address of the access. */
seL4_Word get_vcpu_fault_address(vm_vcpu_t *vcpu);
/** The guest's RIP at the faulting instruction. */
seL4_Word get_vcpu_fault_ip(vm_vcpu_t *vcpu);
/** For a write, the value written; for a read, the value set so far (0 initially). */
seL4_Word get_vcpu_fault_data(vm_vcpu_t *vcpu);
/** All ones over the access's size (0xff, 0xffff, 0xffffffff or all 64 bits). */
seL4_Word get_vcpu_fault_data_mask(vm_vcpu_t *vcpu);
/** Access size in bytes: 1, 2, 4 or 8. */
size_t get_vcpu_fault_size(vm_vcpu_t *vcpu);
/** True for a read. */
bool is_vcpu_read_fault(vm_vcpu_t *vcpu);
/** Sets the value a read returns to the guest. @return 0, or -1 outside a fault */
int set_vcpu_fault_data(vm_vcpu_t *vcpu, seL4_Word data);
/**
 * For a write: merges the written bytes into `data` and returns the result; for a read: makes
 * `data` (masked to the access size) what the guest reads and returns it.
 */
seL4_Word emulate_vcpu_fault(vm_vcpu_t *vcpu, seL4_Word data);
/** Continue past the access. On KVM the instruction completes when the vCPU re-enters, so
 *  this only documents intent. */
void advance_vcpu_fault(vm_vcpu_t *vcpu);
/** Likewise on KVM: the access completes with the data set by then. */
void restart_vcpu_fault(vm_vcpu_t *vcpu);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

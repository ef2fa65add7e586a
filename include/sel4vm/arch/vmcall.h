/*
 * guestvm — libsel4vm's VMCALL handlers. KVM handles a guest's VMCALL in the kernel (its own
 * hypercalls; others return an error to the guest). It forwards VMCALLs to the VMM only through
 * its Xen emulation (KVM_XEN_HVM_CONFIG with INTERCEPT_HCALL, which also turns KVM's own
 * hypercalls off), which needs a host kernel built with CONFIG_KVM_XEN; guestvm does not use it
 * (the development host has none), so vm_reg_new_vmcall_handler returns -1. Guests call the VMM
 * with a port access instead (vm_io_port_add_handler; guestvm's platform call uses port 0xff0).
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @return -1 always on guestvm (see above); guestvm_last_error() says why. */
int vm_reg_new_vmcall_handler(vm_t *vm, vmcall_handler func, int token);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

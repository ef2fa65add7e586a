/*
 * guestvm — libsel4vm's VMCALL handlers. On KVM a guest's VMCALL is handled inside the kernel
 * (KVM's own hypercalls; others return an error to the guest) and never reaches the VMM, so a
 * handler can never run: vm_reg_new_vmcall_handler always returns -1. Guests call the VMM with
 * a port access instead (vm_io_port_add_handler; guestvm's platform call uses port 0x600).
 */
#pragma once

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A handler for the VMCALL whose EAX matches its token. */
typedef int (*vmcall_handler)(vm_vcpu_t *vcpu);

/** @return -1 always on guestvm (see above); guestvm_last_error() says why. */
int vm_reg_new_vmcall_handler(vm_t *vm, vmcall_handler func, int token);

#ifdef __cplusplus
}
#endif

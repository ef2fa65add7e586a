/*
 * guestvm — libsel4vm's guest_memory_helpers.h.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_memory.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A memory fault callback that reports every access as an error (FAULT_ERROR). */
memory_fault_result_t default_error_fault_callback(vm_t *vm, vm_vcpu_t *vcpu, uintptr_t fault_addr,
                                                   size_t fault_length, void *cookie);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

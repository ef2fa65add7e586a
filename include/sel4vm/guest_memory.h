/*
 * guestvm — libsel4vm's guest_memory.h: memory fault results and callbacks.
 */
#pragma once

#include <sel4vm/sel4_compat.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vm vm_t;
typedef struct vm_vcpu vm_vcpu_t;

/** What a memory fault handler did with an access. */
typedef enum memory_fault_result {
    FAULT_HANDLED,   /**< handled: advance the guest past the access */
    FAULT_UNHANDLED, /**< left unhandled */
    FAULT_RESTART,   /**< restart the faulting access */
    FAULT_IGNORE,    /**< ignore the access and advance */
    FAULT_ERROR      /**< handling failed */
} memory_fault_result_t;

typedef memory_fault_result_t (*memory_fault_callback_fn)(vm_t *vm, vm_vcpu_t *vcpu,
                                                          uintptr_t fault_addr, size_t fault_length,
                                                          void *cookie);

typedef struct vm_memory_reservation vm_memory_reservation_t;
typedef struct vm_memory_reservation_cookie vm_memory_reservation_cookie_t;

#ifdef __cplusplus
}
#endif

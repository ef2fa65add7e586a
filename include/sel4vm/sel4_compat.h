/*
 * guestvm — the seL4-world types libsel4vm's headers use, defined by guestvm so that a C file
 * needs nothing but guestvm's headers. On guestvm a capability pointer names an object in the
 * Host's capability space (see include/guestvm/cspace.hpp); 0 is the null capability.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t seL4_Word;
typedef seL4_Word seL4_CPtr;

/** The null capability. */
#define seL4_CapNull ((seL4_CPtr)0)

typedef struct seL4_MessageInfo {
    seL4_Word words[1];
} seL4_MessageInfo_t;

/** An object allocated from a vka: its capability and what it was made from. */
typedef struct vka_object {
    seL4_CPtr cptr;
    seL4_Word ut;
    seL4_Word type;
    seL4_Word size_bits;
} vka_object_t;

/** Allocator and environment handles. guestvm never dereferences them; NULL selects guestvm's
 *  own resources (the process-wide default Host). */
typedef struct vka vka_t;
typedef struct simple simple_t;
typedef struct ps_io_ops ps_io_ops_t;

/** Which address space a vspace_t describes. */
typedef enum guestvm_vspace_kind {
    GUESTVM_VSPACE_NONE = 0,  /**< not (yet) bound to guestvm */
    GUESTVM_VSPACE_GUEST = 1, /**< a VM's guest-physical address space */
    GUESTVM_VSPACE_VMM = 2    /**< the VMM's host address space as it concerns a VM */
} guestvm_vspace_kind_t;

/** An address space. Callers may pass a zeroed one to vm_init as the host vspace; guestvm fills
 *  the VM's two vspaces (vm_get_vspace, vm_get_vmm_vspace) and keeps them valid until the VM is
 *  destroyed. Use the guestvm_vspace_* functions in <sel4vm/guestvm.h> to inspect one. */
typedef struct vspace {
    void *data;                 /**< guestvm: the C++ address-space object (opaque) */
    guestvm_vspace_kind_t kind; /**< guestvm: what `data` is */
} vspace_t;

#ifdef __cplusplus
}
#endif

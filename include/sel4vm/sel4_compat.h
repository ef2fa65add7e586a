/*
 * guestvm — the seL4-world types libsel4vm's headers use, defined by guestvm so that a C file
 * needs nothing but guestvm's headers. On guestvm a capability pointer names an object in the
 * Host's capability space (see include/guestvm/cspace.hpp); 0 is the null capability.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t seL4_Word;
typedef seL4_Word seL4_CPtr;
typedef uint8_t seL4_Uint8;
typedef int8_t seL4_Bool;

/** The null capability. */
#define seL4_CapNull ((seL4_CPtr)0)

/** Access rights on a capability, laid out as seL4's: bit 0 write, 1 read, 2 grant,
 *  3 grant-reply. */
typedef struct seL4_CapRights {
    seL4_Word words[1];
} seL4_CapRights_t;

static inline seL4_CapRights_t seL4_CapRights_new(seL4_Word grant_reply, seL4_Word grant,
                                                  seL4_Word read, seL4_Word write) {
    seL4_CapRights_t r;
    r.words[0] =
        ((grant_reply & 1u) << 3) | ((grant & 1u) << 2) | ((read & 1u) << 1) | (write & 1u);
    return r;
}
static inline seL4_Word seL4_CapRights_get_capAllowWrite(seL4_CapRights_t r) {
    return r.words[0] & 1u;
}
static inline seL4_Word seL4_CapRights_get_capAllowRead(seL4_CapRights_t r) {
    return (r.words[0] >> 1) & 1u;
}
static inline seL4_Word seL4_CapRights_get_capAllowGrant(seL4_CapRights_t r) {
    return (r.words[0] >> 2) & 1u;
}
static inline seL4_Word seL4_CapRights_get_capAllowGrantReply(seL4_CapRights_t r) {
    return (r.words[0] >> 3) & 1u;
}
#define seL4_AllRights seL4_CapRights_new(1, 1, 1, 1)
#define seL4_CanRead seL4_CapRights_new(0, 0, 1, 0)
#define seL4_CanWrite seL4_CapRights_new(0, 0, 0, 1)
#define seL4_ReadWrite seL4_CapRights_new(0, 0, 1, 1)
#define seL4_NoRights seL4_CapRights_new(0, 0, 0, 0)

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

/** seL4's error codes, as its invocations return them. */
typedef enum {
    seL4_NoError = 0,
    seL4_InvalidArgument,
    seL4_InvalidCapability,
    seL4_IllegalOperation,
    seL4_RangeError,
    seL4_AlignmentError,
    seL4_FailedLookup,
    seL4_TruncatedMessage,
    seL4_DeleteFirst,
    seL4_RevokeFirst,
    seL4_NotEnoughMemory,
    seL4_NumErrors
} seL4_Error;

/** x86-64 user context, as seL4_TCB_ReadRegisters / seL4_TCB_WriteRegisters transfer it: the
 *  frame registers, then fs_base and gs_base (which guestvm reads as 0 and ignores on write). */
typedef struct seL4_UserContext_ {
    seL4_Word rip, rsp, rflags, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14,
        r15;
    seL4_Word fs_base, gs_base;
} seL4_UserContext;

/** The general-purpose registers of a VT-x guest, as seL4 keeps them for a VCPU (libsel4vm's
 *  thread context). guestvm always has the 64-bit registers (seL4 only with
 *  CONFIG_X86_64_VTX_64BIT_GUESTS). */
typedef struct seL4_VCPUContext_ {
    seL4_Word eax, ebx, ecx, edx, esi, edi, ebp;
    seL4_Word r8, r9, r10, r11, r12, r13, r14, r15;
} seL4_VCPUContext;

/*
 * Invocations on the TCB capability of a vCPU (vm_get_vcpu_tcb). The capability is looked up in
 * the capability space of the process-wide Host that C-API VMs use. A null or deleted capability
 * gives seL4_InvalidCapability; a capability to another kind of object seL4_IllegalOperation.
 */

/** Pauses the vCPU's guest execution; returns once it is paused. seL4_IllegalOperation when
 *  the vCPU is not running (never started, off or stopped). */
seL4_Error seL4_TCB_Suspend(seL4_CPtr service);
/** Continues a suspended vCPU (a running one: no effect). */
seL4_Error seL4_TCB_Resume(seL4_CPtr service);
/** Reads the first `count` words of the user context (rip first). `suspend_source` suspends the
 *  vCPU first. seL4_RangeError when count exceeds the context; seL4_InvalidArgument for NULL. */
seL4_Error seL4_TCB_ReadRegisters(seL4_CPtr service, seL4_Bool suspend_source,
                                  seL4_Uint8 arch_flags, seL4_Word count, seL4_UserContext *regs);
/** Writes the first `count` words of the user context; `resume_target` resumes it after. */
seL4_Error seL4_TCB_WriteRegisters(seL4_CPtr service, seL4_Bool resume_target,
                                   seL4_Uint8 arch_flags, seL4_Word count, seL4_UserContext *regs);
/** Sets the thread's priority (0..255; mapped onto the host thread's nice value). `authority`
 *  is accepted and unused. seL4_RangeError above 255. */
seL4_Error seL4_TCB_SetPriority(seL4_CPtr service, seL4_CPtr authority, seL4_Word priority);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

/*
 * guestvm — libsel4vm's guest_vm.h: the VM and vCPU structures and the run interface.
 *
 * vm_t is allocated by the caller (`vm_t vm; vm_init(&vm, ...)`), as in libsel4vm. The public
 * fields VMM code reads (num_vcpus, vcpus[], run.exit_reason and the callbacks, mem.vm_vspace,
 * mem.vmm_vspace, mem.ram_regions, arch.ioport_list, arch.unhandled_ioport_callback, vm_name,
 * vcpu->vm, vcpu->vcpu_id, vcpu->target_cpu, vcpu->vcpu_online, vcpu->tcb.tcb.cptr,
 * vcpu->vcpu.cptr) are mirrors that only guestvm writes; the C++ objects are the truth, and the
 * functions of guest_vm_util.h read those. Treat every field as read-only.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/arch/guest_vm_arch.h>
#include <sel4vm/guest_memory.h>
#include <sel4vm/sel4_compat.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most vCPUs one guestvm VM has through the C API (libsel4vm's CONFIG_MAX_NUM_NODES). */
#define GUESTVM_MAX_VCPUS 1024
#ifndef CONFIG_MAX_NUM_NODES
#define CONFIG_MAX_NUM_NODES GUESTVM_MAX_VCPUS
#endif

typedef struct vm vm_t;
typedef struct vm_vcpu vm_vcpu_t;
typedef struct vm_mem vm_mem_t;
typedef struct vm_ram_region vm_ram_region_t;
typedef struct vm_run vm_run_t;
typedef struct vm_arch vm_arch_t;

typedef memory_fault_result_t (*unhandled_mem_fault_callback_fn)(vm_t *vm, vm_vcpu_t *vcpu,
                                                                 uintptr_t paddr, size_t len,
                                                                 void *cookie);
typedef int (*notification_callback_fn)(vm_t *vm, seL4_Word badge, seL4_MessageInfo_t tag,
                                        void *cookie);

struct vm_ram_region {
    uintptr_t start;
    size_t size;
    int allocated;
};

struct vm_mem {
    vspace_t vm_vspace; /**< the guest's address space (guest-physical) */
    vka_object_t vm_vspace_root;
    vspace_t vmm_vspace; /**< the VMM's address space as it concerns this VM */
    int num_ram_regions;
    struct vm_ram_region *ram_regions;
    vm_memory_reservation_cookie_t *reservation_cookie;
    unhandled_mem_fault_callback_fn unhandled_mem_fault_handler;
    void *unhandled_mem_fault_cookie;
    int clean_cache;
    int map_one_to_one;
};

struct vm_tcb {
    vka_object_t tcb; /**< tcb.cptr: capability to the TCB object (the vCPU's host thread) */
    vka_object_t sc;
    vka_object_t sched_ctrl;
    int priority;
};

struct vm_vcpu {
    struct vm *vm;     /**< parent VM */
    vka_object_t vcpu; /**< vcpu.cptr: capability to the VCPU object (the KVM vCPU) */
    struct vm_tcb tcb;
    unsigned int vcpu_id; /**< logical id, per VM, 0..num_vcpus-1 */
    int target_cpu;       /**< guest core id, -1 while unassigned */
    bool vcpu_online;
    struct vm_vcpu_arch vcpu_arch;
    void *guestvm; /**< guestvm: the C++ vCPU (opaque) */
};

struct vm_run {
    int exit_reason;
    notification_callback_fn notification_callback;
    void *notification_callback_cookie;
};

struct vm_cspace {
    vka_object_t cspace_obj;
    seL4_Word cspace_root_data;
};

struct vm {
    struct vm_arch arch;
    unsigned int num_vcpus;
    struct vm_vcpu *vcpus[GUESTVM_MAX_VCPUS];
    struct vm_mem mem;
    struct vm_run run;
    struct vm_cspace cspace;
    seL4_CPtr host_endpoint;
    vka_t *vka;
    ps_io_ops_t *io_ops;
    simple_t *simple;
    seL4_Word entry; /**< where vcpu_start starts a vCPU (set by the loader or caller) */
    char *vm_name;
    unsigned int vm_id;
    bool vm_initialised;
    struct guestvm_vm_state *guestvm; /**< guestvm: private state (opaque) */
};

/**
 * Teardown, which libsel4vm does not have and a Linux process needs: stops the VM if it runs
 * and waits for a vm_run on another thread to return, then joins its threads, closes its
 * descriptors, unmaps all guest and VMM memory and deletes its capabilities. The vm_t may be
 * initialised again afterwards. Refused (the VM is untouched) from an exit handler (port
 * handler, memory fault callback) and from a callback vm_run calls (ack or notification
 * callback) of the same VM: it would wait for its own thread. No other call on the VM may
 * start once vm_destroy has begun.
 * @return 0 on success, -1 on error (NULL or uninitialised vm, called from a handler or a
 *         callback as above); guestvm_last_error() says which
 */
int vm_destroy(vm_t *vm);

/**
 * Runs the VM until it stops: the guest powers off or resets, every vCPU goes off, an exit
 * nobody handles, a guest fault, a handler error, or guestvm_vm_stop() from another thread.
 * Joins every vCPU thread before it returns. Callbacks still queued when the VM stops are
 * dropped. Refused from an exit handler, from a callback vm_run calls (a second run loop on
 * that thread), and once vm_destroy has begun.
 * @param vm  an initialised VM with at least one started vCPU
 * @return 0 when the guest stopped normally (power-off, reset, all vCPUs off, stop request,
 *         vm_destroy from another thread); -1 on error (NULL or uninitialised vm, unhandled
 *         exit, guest fault, handler error), with vm->run.exit_reason = VM_GUEST_ERROR_EXIT
 *         (guestvm_vm_stop_reason() says why), or refused as above, with vm->run untouched
 *         (guestvm_last_error() says why).
 */
int vm_run(vm_t *vm);

/**
 * Starts a vCPU at vm->entry in the VM's boot mode, with its core id (or its vCPU id when it has
 * no core yet) in RDI/EDI.
 * @param vcpu  a vCPU from vm_create_vcpu
 * @return 0 on success, -1 on error (NULL vcpu, already online, VM stopped, bad entry)
 */
int vcpu_start(vm_vcpu_t *vcpu);

/**
 * Registers the callback for guest accesses to memory nobody owns.
 * @return 0 on success, -1 on error (NULL vm). (Faults are routed to it by the memory layer.)
 */
int vm_register_unhandled_mem_fault_callback(vm_t *vm,
                                             unhandled_mem_fault_callback_fn fault_handler,
                                             void *cookie);

/**
 * Registers the callback vm_run calls, on its own thread, for each notification sent to the VM
 * (on guestvm: guestvm_vm_notify() from any thread, with a badge). A callback returning
 * non-zero makes vm_run return -1 with exit_reason VM_GUEST_ERROR_EXIT.
 * @return 0 on success, -1 on error (NULL vm).
 */
int vm_register_notification_callback(vm_t *vm, notification_callback_fn notification_callback,
                                      void *cookie);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

/*
 * guestvm — libsel4vm's x86 I/O ports: handlers for port ranges, a callback for ports nobody
 * handles, and (not on KVM) passthrough of host ports.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/sel4_compat.h> /* also <stdbool.h>, <stddef.h>, <stdint.h> */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vm vm_t;
typedef struct vm_vcpu vm_vcpu_t;

/** What a port handler did with an access. */
typedef enum ioport_fault_result {
    IO_FAULT_HANDLED,   /**< done; the guest continues */
    IO_FAULT_UNHANDLED, /**< not this handler's: an IN reads all ones, an OUT is dropped */
    IO_FAULT_ERROR      /**< the VMM failed: vm_run returns -1, exit_reason VM_GUEST_ERROR_EXIT */
} ioport_fault_result_t;

/** An IN of `size` bytes (1, 2 or 4) from `port_no`: the handler stores the value in *result. */
typedef ioport_fault_result_t (*vm_ioport_in_fn)(vm_vcpu_t *vcpu, void *cookie,
                                                 unsigned int port_no, unsigned int size,
                                                 unsigned int *result);
/** An OUT of `size` bytes of `value` to `port_no`. */
typedef ioport_fault_result_t (*vm_ioport_out_fn)(vm_vcpu_t *vcpu, void *cookie,
                                                  unsigned int port_no, unsigned int size,
                                                  unsigned int value);
/** A port no handler covers; for an IN (`is_in`) the callback stores the value in *value. */
typedef ioport_fault_result_t (*unhandled_ioport_callback_fn)(vm_vcpu_t *vcpu, unsigned int port_no,
                                                              bool is_in, unsigned int *value,
                                                              size_t size, void *cookie);

/** Ports start..end, both included. */
typedef struct vm_ioport_range {
    uint16_t start;
    uint16_t end;
} vm_ioport_range_t;

typedef struct vm_ioport_interface {
    void *cookie;
    vm_ioport_in_fn port_in;   /**< NULL: INs read all ones */
    vm_ioport_out_fn port_out; /**< NULL: OUTs are dropped */
    const char *desc;          /**< a name for messages (may be NULL) */
} vm_ioport_interface_t;

typedef struct vm_ioport_entry {
    vm_ioport_range_t range;
    vm_ioport_interface_t interface;
} vm_ioport_entry_t;

typedef struct vm_io_list {
    int num_ioports;
    vm_ioport_entry_t *ioports;
} vm_io_port_list_t;

/**
 * Handles ports range.start..range.end with `ioport_interface`. Handlers run on the vCPU's
 * thread that made the access, one at a time with every other callback of the VM (libsel4vm's
 * one-thread semantics) unless the VMM chose GUESTVM_HANDLERS_PARALLEL (<sel4vm/guestvm.h>).
 * @return 0, or -1 (NULL/uninitialised vm, start > end, overlap with a range already handled —
 *         guestvm's UART (0x3f8-0x3ff) and platform call (0xff0-0xff3) included when the VMM
 *         added them; a VM from vm_init has neither)
 */
int vm_io_port_add_handler(vm_t *vm, vm_ioport_range_t ioport_range,
                           vm_ioport_interface_t ioport_interface);

/**
 * Receives accesses to ports no handler covers (replacing any earlier callback; NULL removes
 * it). Without one, an IN reads all ones and an OUT is dropped, as in libsel4vm.
 * @return 0, or -1 (NULL/uninitialised vm)
 */
int vm_register_unhandled_ioport_callback(vm_t *vm, unhandled_ioport_callback_fn ioport_callback,
                                          void *cookie);

/**
 * Gives the guest the host's ports port_start..port_end (both included). seL4 opens them in
 * the vCPU's I/O bitmap; KVM exits on every port, so guestvm carries each access out on the
 * host with an IN or OUT of the same width, on the vCPU's thread, for every vCPU of the VM.
 * Linux allows that only with ioperm(2): the VMM process needs CAP_SYS_RAWIO and a kernel
 * built with CONFIG_X86_IOPL_IOPERM; otherwise the call is refused and says which is missing
 * (emulate the device with vm_io_port_add_handler instead).
 * @return 0, or -1 (NULL vcpu, start > end, the host refuses the ports, the range overlaps a
 *         port handler)
 */
int vm_enable_passthrough_ioport(vm_vcpu_t *vcpu, uint16_t port_start, uint16_t port_end);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

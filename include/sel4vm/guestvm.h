/*
 * guestvm — C functions beyond libsel4vm's interface: what a Linux-hosted VMM needs that seL4
 * provides by other means (errors as text, stopping, loading, serial output, teardown) and
 * the race-free "claim a vCPU for a core" step.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The message of the last error a guestvm C function reported on this thread ("" if none). */
const char *guestvm_last_error(void);

/** How vCPUs of a VM start (set before the first vcpu_start). */
typedef enum guestvm_boot_mode {
    GUESTVM_BOOT_LONG64 = 0,      /**< 64-bit long mode, identity paging (the default) */
    GUESTVM_BOOT_PROTECTED32 = 1, /**< 32-bit protected mode, paging off */
    GUESTVM_BOOT_REAL16 = 2       /**< real mode */
} guestvm_boot_mode_t;

/** Receives guest serial output: the vCPU that wrote it, the bytes and their count. */
typedef void (*guestvm_serial_fn)(int vcpu_id, const char *bytes, size_t len, void *cookie);

/*
 * guestvm's own devices, which a libsel4vm VM has only when the VMM asks (libsel4vm has none;
 * real VMMs bring their own COM1, PIT, RTC and ACPI): bits of guestvm_vm_options_t.devices.
 */
/** guestvm's 8250 UART on COM1's ports 0x3f8-0x3ff (IRQ 4), writing to the serial sink. */
#define GUESTVM_DEVICE_SERIAL 0x1u
/** The platform call (PSCI semantics, docs/platform-call.md) on ports 0xff0-0xff3. */
#define GUESTVM_DEVICE_PLATFORM_CALL 0x2u

/**
 * How the VMM's callbacks run. libsel4vm runs every exit handler, fault callback, IRQ
 * acknowledgement and notification callback on the one thread in vm_run, so device models need
 * no locks; guestvm's default does the same for a VM's callbacks: one at a time, in one VM-wide
 * order (port handlers run on the vCPU's thread, acknowledgements and notifications on
 * vm_run's). A VMM whose devices lock for themselves can let port and memory handlers of
 * different vCPUs run at once.
 */
typedef enum guestvm_handler_mode {
    GUESTVM_HANDLERS_SERIALIZED = 0, /**< libsel4vm's semantics (the default) */
    GUESTVM_HANDLERS_PARALLEL = 1    /**< concurrent on the vCPU threads and vm_run's thread */
} guestvm_handler_mode_t;

/** Options for guestvm_vm_init(); zero-initialise and set what you need. */
typedef struct guestvm_vm_options {
    size_t ram_bytes; /**< RAM at 0 (and above 4 GiB past 3 GiB); 0: none */
    guestvm_boot_mode_t boot_mode;
    guestvm_serial_fn
        serial; /**< the UART's output (NULL: discarded); needs GUESTVM_DEVICE_SERIAL */
    void *serial_cookie;
    unsigned devices;                    /**< GUESTVM_DEVICE_* bits; 0: none of guestvm's devices */
    guestvm_handler_mode_t handler_mode; /**< 0: serialized, as libsel4vm */
} guestvm_vm_options_t;

/**
 * vm_init with guestvm options (RAM, boot mode, guestvm's devices). vm_init(...) equals this
 * with zeroed options: no RAM and no device of guestvm's.
 * @return 0 on success, -1 on error (see guestvm_last_error(); a serial sink without
 *         GUESTVM_DEVICE_SERIAL, an unknown device bit, no usable /dev/kvm)
 */
int guestvm_vm_init(vm_t *vm, const char *name, const guestvm_vm_options_t *options);

/**
 * Sets how the VM's callbacks run (guestvm_handler_mode_t); before the first vcpu_start.
 * @return 0, or -1 (NULL/uninitialised vm, an unknown mode, a vCPU has started)
 */
int guestvm_vm_set_handler_mode(vm_t *vm, guestvm_handler_mode_t mode);

/**
 * Adds guestvm's 8250 UART on ports 0x3f8-0x3ff to a VM (one made by vm_init, for instance);
 * the guest's output goes to `serial` (NULL: discarded).
 * @return 0, or -1 (NULL/uninitialised vm, the ports are handled already, from an exit handler)
 */
int guestvm_vm_add_serial(vm_t *vm, guestvm_serial_fn serial, void *cookie);

/**
 * Adds the platform call (PSCI semantics over ports 0xff0-0xff3, docs/platform-call.md) to a
 * VM: CPU_ON, CPU_OFF, AFFINITY_INFO, SYSTEM_OFF, SYSTEM_RESET for its guest.
 * @return 0, or -1 (NULL/uninitialised vm, the ports are handled already, from an exit handler)
 */
int guestvm_vm_add_platform_call(vm_t *vm);

/**
 * Loads an ELF executable into guest RAM and sets vm->entry to its entry point: ELF64 x86-64
 * (the VM's boot mode becomes 64-bit long mode) or ELF32 i386 (32-bit protected mode).
 * @return 0 on success, -1 on error (NULL arguments, unreadable or malformed image, segments
 *         outside RAM); guest memory is untouched on error.
 */
int guestvm_vm_load_elf(vm_t *vm, const char *path);

/**
 * The vCPU assigned to core `target_cpu`; if none, claims the lowest unassigned vCPU and assigns
 * it the core, in one atomic step (two callers never claim the same vCPU).
 * @return the vCPU, or NULL (NULL vm, core out of range, no free vCPU)
 */
vm_vcpu_t *guestvm_vm_claim_vcpu_for_target(vm_t *vm, int target_cpu);

/** Asks a running VM to stop; returns at once (vm_run then returns). Any thread. */
int guestvm_vm_stop(vm_t *vm);

/** Why the VM stopped. */
typedef enum guestvm_stop_reason {
    GUESTVM_STOP_NONE = -1, /**< still running (or never ran) */
    GUESTVM_STOP_POWER_OFF = 0,
    GUESTVM_STOP_RESET,
    GUESTVM_STOP_ALL_VCPUS_OFF,
    GUESTVM_STOP_UNHANDLED_EXIT,
    GUESTVM_STOP_GUEST_FAULT,
    GUESTVM_STOP_ERROR,
    GUESTVM_STOP_REQUESTED
} guestvm_stop_reason_t;

/**
 * @param message  if non-NULL, receives a NUL-terminated description (truncated to `size`)
 * @return why the VM stopped, or GUESTVM_STOP_NONE
 */
guestvm_stop_reason_t guestvm_vm_stop_reason(vm_t *vm, char *message, size_t size);

/* vm_destroy() is declared in <sel4vm/guest_vm.h>. */

/**
 * Sends the VM a notification with `badge`, as another seL4 component would signal the VMM's
 * endpoint: vm_run's thread calls the notification callback with it (in sending order; sent
 * before vm_run, it is delivered when vm_run starts).
 * @return 0, or -1 (NULL/uninitialised vm, the VM has stopped)
 */
int guestvm_vm_notify(vm_t *vm, seL4_Word badge);

/** One region of a vspace. For the guest vspace `start` is guest-physical and `host` is where
 *  the VMM sees it; for the VMM vspace `start` is a host address and `guest` what it backs. */
typedef struct guestvm_region {
    uint64_t start;
    uint64_t size;
    uint64_t host;  /**< guest vspace: host address of start */
    uint64_t guest; /**< VMM vspace: guest-physical address backed (UINT64_MAX: none) */
    int writable;
} guestvm_region_t;

/**
 * Lists a vspace's regions in address order.
 * @param out  array of `max` entries (may be NULL when max is 0)
 * @return the number of regions the vspace holds (may exceed max), or -1 (NULL/unbound vspace)
 */
int guestvm_vspace_regions(vspace_t *vspace, guestvm_region_t *out, size_t max);

/**
 * Translates an address through a vspace: guest vspace, guest-physical → host address;
 * VMM vspace, host address → guest-physical.
 * @return 0 and *out on success, -1 when no region holds [addr, addr+len) (or bad arguments)
 */
int guestvm_vspace_translate(vspace_t *vspace, uint64_t addr, size_t len, uint64_t *out);

/*
 * Frames: what libsel4vm VMMs get from a vka (vka_alloc_frame) and map with vm_frame_t,
 * vm_map_reservation, vm_map_reservation_frames or vm_ram_register_at_custom_iterator.
 */

/**
 * Makes a frame of 2^size_bits zeroed bytes (12, 21 or 30: 4 KiB, 2 MiB, 1 GiB; memory is
 * committed on first touch), named by a new capability in guestvm's capability space.
 * @return the capability, or seL4_CapNull on error (another size, no /dev/kvm)
 */
seL4_CPtr guestvm_frame_alloc(size_t size_bits);

/**
 * The VMM's own mapping of a frame: what the guest sees wherever the frame is mapped.
 * @param size  receives the frame's size in bytes (may be NULL)
 * @return the address (valid until guestvm_frame_free), or NULL (not a live frame capability)
 */
void *guestvm_frame_data(seL4_CPtr frame, size_t *size);

/**
 * Deletes a frame's capability. Reservations that map the frame keep its memory until they
 * are freed; the address from guestvm_frame_data is invalid from now on.
 * @return 0, or -1 (not a live frame capability)
 */
int guestvm_frame_free(seL4_CPtr frame);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

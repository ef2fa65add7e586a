/*
 * The raw-KVM baseline: the least a program must do to run one of guestvm's test guests on
 * KVM (one vCPU, RAM at 0, long mode, identity paging), written directly against the ioctls,
 * so guestvm's overhead can be measured against it. Plain C11.
 */
#pragma once

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rawkvm {
    int kvm_fd, vm_fd, vcpu_fd;
    uint8_t *ram;
    size_t ram_size;
    struct kvm_run *run;
    size_t run_size;
    uint64_t entry;
};

/** Opens KVM, creates a VM with `ram_bytes` of RAM at 0 and one vCPU. 0 or -1 (errno set). */
int rawkvm_open(struct rawkvm *vm, size_t ram_bytes);
/** The same with KVM's in-kernel irqchip (PICs, IOAPIC, local APIC), created before the vCPU. */
int rawkvm_open_with_irqchip(struct rawkvm *vm, size_t ram_bytes);
/** Loads an ELF64 executable's PT_LOAD segments; sets vm->entry. 0 or -1 (malformed). */
int rawkvm_load_elf(struct rawkvm *vm, const void *image, size_t size);
/** Long mode at `entry`: GDT at 0x500, page tables at 0x1000.., 2 MiB pages over 4 GiB. */
int rawkvm_setup_long_mode(struct rawkvm *vm, uint64_t entry);
/** One KVM_RUN; returns the exit reason, or -1 on error. */
int rawkvm_run_once(struct rawkvm *vm);
/** Sets RAX (used to answer a platform call). */
int rawkvm_set_rax(struct rawkvm *vm, uint64_t value);
void rawkvm_close(struct rawkvm *vm);

#ifdef __cplusplus
}
#endif

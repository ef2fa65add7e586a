// guestvm::kvm — a KVM VM descriptor.
#pragma once

#include <cstddef>
#include <cstdint>

#include "guestvm/error.hpp"
#include "kvm/unique_fd.hpp"

namespace guestvm::kvm {

class VcpuFd;

/// A new non-blocking, close-on-exec eventfd (counter 0).
Result<UniqueFd> make_eventfd();

/// Owns one VM descriptor. Methods are thread-safe as far as the kernel's VM ioctls are.
class VmFd {
  public:
    VmFd(UniqueFd fd, std::size_t vcpu_mmap_size)
        : fd_(std::move(fd)), mmap_size_(vcpu_mmap_size) {}
    VmFd(VmFd &&) noexcept = default;
    VmFd &operator=(VmFd &&) noexcept = default;

    /// KVM_CREATE_VCPU with `id` (also the vCPU's initial APIC id), plus its kvm_run mapping.
    /// KVM keeps a vCPU until the VM is destroyed (closing its descriptor does not remove it;
    /// creating the id again fails with EEXIST), so a vCPU whose setup failed is handed back
    /// with give_back and the next create_vcpu of its id reuses it. Not thread-safe: one
    /// caller at a time creates vCPUs.
    Result<VcpuFd> create_vcpu(int id);
    void give_back(VcpuFd &&vcpu) noexcept;

    /// KVM_SET_USER_MEMORY_REGION: map `size` bytes at host `host` as guest-physical `gpa`.
    /// `size` 0 deletes the slot. `read_only` makes guest writes exit as MMIO.
    Status set_memory_region(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, void *host,
                             bool read_only) const;

    /// KVM_SET_TSS_ADDR: three pages of guest-physical space KVM needs on Intel hosts.
    Status set_tss_addr(std::uint64_t gpa) const;
    /// KVM_SET_IDENTITY_MAP_ADDR: one page for KVM's real-mode identity map (Intel hosts).
    Status set_identity_map_addr(std::uint64_t gpa) const;

    /// KVM_CREATE_IRQCHIP (8259 PICs on ports 0x20-0x21, 0xa0-0xa1 and ELCR 0x4d0-0x4d1, the
    /// IOAPIC, a local APIC per vCPU created afterwards); done once (a second call after
    /// success does nothing).
    Status create_irqchip();
    /// KVM_CREATE_PIT2 (8254 timer on ports 0x40-0x43, speaker port 0x61 answered in the
    /// kernel). Needs the irqchip.
    Status create_pit() const;
    /// KVM_IRQ_LINE: drives GSI `irq` (PIC and IOAPIC pin) to `level`.
    Status irq_line(std::uint32_t irq, bool level) const;

    /// KVM_IRQFD in resample mode on GSI `gsi`: a write to `trigger` asserts the line until the
    /// guest acknowledges it; every acknowledgement (EOI at the PIC or IOAPIC) of that GSI,
    /// whoever raised it, signals `resample`. Needs the in-kernel irqchip.
    Status assign_resample_irqfd(std::uint32_t gsi, int trigger, int resample) const;
    /// Undoes assign_resample_irqfd.
    Status deassign_irqfd(std::uint32_t gsi, int trigger) const;

    /// KVM_ENABLE_CAP on this VM with args[0] = `arg`.
    Status enable_cap(std::uint32_t cap, std::uint64_t arg) const;

    /// KVM_CHECK_EXTENSION on this VM; 0 when absent.
    int check_extension(int cap) const noexcept;

    int get() const noexcept { return fd_.get(); }

  private:
    UniqueFd fd_;
    std::size_t mmap_size_;
    int spare_id_ = -1;  // a vCPU KVM created whose setup failed: its id and descriptor
    UniqueFd spare_;
    bool irqchip_ = false;  // KVM_CREATE_IRQCHIP succeeded
};

}  // namespace guestvm::kvm

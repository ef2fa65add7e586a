#include "kvm/vm_fd.hpp"

#include <fmt/format.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include <algorithm>

#include "kvm/fault_injection.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm::kvm {

Result<VcpuFd> VmFd::create_vcpu(int id) {
    UniqueFd owned;
    if (spare_.valid() && spare_id_ == id) {
        owned = std::move(spare_);
    } else {
        // api.rst 4.7: returns a vCPU fd; the id must be below KVM_CAP_MAX_VCPU_ID.
        int fd = fault::ioctl(fd_.get(), KVM_CREATE_VCPU, id);
        if (fd < 0) {
            return errno_error(fmt::format("KVM_CREATE_VCPU {}", id));
        }
        owned.reset(fd);
    }
    // api.rst 4.10/5: the kvm_run area is mmap()ed from the vCPU fd at offset 0.
    auto run = Mapping::shared_file(owned.get(), mmap_size_, "kvm_run");
    if (!run) {
        spare_id_ = id;
        spare_ = std::move(owned);
        return std::unexpected(std::move(run).error());
    }
    // KVM_CHECK_EXTENSION on the VM fd answers for this VM (api.rst 4.4).
    const int sync = check_extension(KVM_CAP_SYNC_REGS);
    const bool sync_regs = sync > 0 && (sync & KVM_SYNC_X86_REGS) != 0;
    // api.rst (KVM_CAP_XSAVE2): the XSAVE area's size for this VM, larger than struct
    // kvm_xsave once the host has dynamic features (AMX); 0 when the capability is absent.
    const int xsave = check_extension(KVM_CAP_XSAVE2);
    return VcpuFd(std::move(owned), std::move(*run), id, sync_regs,
                  static_cast<std::size_t>(std::max(xsave, 0)));
}

void VmFd::give_back(VcpuFd &&vcpu) noexcept {
    spare_id_ = vcpu.id();
    spare_ = std::move(vcpu).release_fd();
}

Status VmFd::set_memory_region(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size,
                               void *host, bool read_only) const {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = read_only ? KVM_MEM_READONLY : 0;
    region.guest_phys_addr = gpa;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<std::uint64_t>(host);
    // api.rst 4.35: host memory must stay mapped while the slot exists; the caller owns it.
    if (fault::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        return errno_error(
            fmt::format("KVM_SET_USER_MEMORY_REGION slot {} [{:#x}, +{:#x})", slot, gpa, size));
    }
    return {};
}

Status VmFd::enable_cap(std::uint32_t cap, std::uint64_t arg) const {
    kvm_enable_cap c{};
    c.cap = cap;
    c.args[0] = arg;
    if (fault::ioctl(fd_.get(), KVM_ENABLE_CAP, &c) < 0) {
        return errno_error(
            fmt::format("KVM_ENABLE_CAP {}", cap == KVM_CAP_EXIT_ON_EMULATION_FAILURE
                                                 ? "KVM_CAP_EXIT_ON_EMULATION_FAILURE"
                                                 : std::to_string(cap)));
    }
    return {};
}

int VmFd::check_extension(int cap) const noexcept {
    int r = fault::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

Status VmFd::create_irqchip() {
    if (irqchip_) return {};
    if (fault::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) {
        return errno_error("KVM_CREATE_IRQCHIP");
    }
    irqchip_ = true;
    return {};
}

Status VmFd::create_pit() const {
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (fault::ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) < 0) return errno_error("KVM_CREATE_PIT2");
    return {};
}

Status VmFd::irq_line(std::uint32_t irq, bool level) const {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = level ? 1 : 0;
    if (fault::ioctl(fd_.get(), KVM_IRQ_LINE, &line) < 0) {
        return errno_error(fmt::format("KVM_IRQ_LINE {} level {}", irq, line.level));
    }
    return {};
}

Result<UniqueFd> make_eventfd() {
    int fd = fault::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return errno_error("eventfd");
    return UniqueFd(fd);
}

Status VmFd::assign_resample_irqfd(std::uint32_t gsi, int trigger, int resample) const {
    // api.rst 4.75: with KVM_IRQFD_FLAG_RESAMPLE the GSI is asserted by `fd` until resampled
    // (an EOI), which de-asserts it and signals `resamplefd`.
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<std::uint32_t>(trigger);
    irqfd.gsi = gsi;
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<std::uint32_t>(resample);
    if (fault::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
        return errno_error(fmt::format("KVM_IRQFD (resample) GSI {}", gsi));
    }
    return {};
}

Status VmFd::deassign_irqfd(std::uint32_t gsi, int trigger) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<std::uint32_t>(trigger);
    irqfd.gsi = gsi;
    irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
    if (fault::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
        return errno_error(fmt::format("KVM_IRQFD (deassign) GSI {}", gsi));
    }
    return {};
}

Status VmFd::set_tss_addr(std::uint64_t gpa) const {
    if (fault::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(gpa)) < 0) {
        return errno_error(fmt::format("KVM_SET_TSS_ADDR {:#x}", gpa));
    }
    return {};
}

Status VmFd::set_identity_map_addr(std::uint64_t gpa) const {
    std::uint64_t addr = gpa;
    if (fault::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
        return errno_error(fmt::format("KVM_SET_IDENTITY_MAP_ADDR {:#x}", gpa));
    }
    return {};
}

}  // namespace guestvm::kvm

#include "kvm/system.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "kvm/cpuid_abi.hpp"
#include "kvm/fault_injection.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm::kvm {

namespace {

// KVM_GET_SUPPORTED_CPUID wants a buffer sized by the caller and answers E2BIG when it is too
// small; start near what x86 hosts report and grow.
Result<std::vector<kvm_cpuid_entry2>> read_supported_cpuid(int fd) {
    for (std::size_t n = 128; n <= 4096; n *= 2) {
        std::vector<std::uint8_t> buf(kCpuidEntriesOffset + n * sizeof(kvm_cpuid_entry2));
        CpuidHeader header{static_cast<std::uint32_t>(n), 0};
        std::memcpy(buf.data(), &header, sizeof(header));
        // api.rst 4.46: fills at most nent entries; E2BIG if more exist.
        if (fault::ioctl(fd, kIoctlGetSupportedCpuid, buf.data()) == 0) {
            std::memcpy(&header, buf.data(), sizeof(header));
            std::vector<kvm_cpuid_entry2> out(std::min<std::size_t>(header.nent, n));
            std::memcpy(out.data(), buf.data() + kCpuidEntriesOffset,
                        out.size() * sizeof(kvm_cpuid_entry2));
            return out;
        }
        if (errno != E2BIG) {
            return errno_error("KVM_GET_SUPPORTED_CPUID");
        }
    }
    return make_error(Errc::kKvmUnavailable, "KVM_GET_SUPPORTED_CPUID: too many entries");
}

}  // namespace

Result<System> System::open(const char *path) {
    System sys;
    sys.fd_.reset(fault::open(path, O_RDWR | O_CLOEXEC));
    if (!sys.fd_.valid()) {
        int err = errno;
        const char *hint = err == ENOENT   ? " (no KVM on this host: is the kvm module loaded?)"
                           : err == EACCES ? " (no permission: run as root or join group kvm)"
                                           : "";
        auto e = errno_error(fmt::format("open {}", path), err);
        return make_error(Errc::kKvmUnavailable, e.error().message() + hint);
    }
    // api.rst 4.1: KVM_GET_API_VERSION must return 12.
    int version = fault::ioctl(sys.fd_.get(), KVM_GET_API_VERSION, 0);
    if (version < 0) {
        auto e = errno_error(fmt::format("KVM_GET_API_VERSION on {}", path));
        return make_error(Errc::kKvmUnavailable, e.error().message());
    }
    if (version != KVM_API_VERSION) {
        return make_error(Errc::kKvmUnavailable, fmt::format("{}: KVM API version {}, need {}",
                                                             path, version, KVM_API_VERSION));
    }
    for (auto [cap, name] : {std::pair{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
                             std::pair{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
                             std::pair{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
                             std::pair{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"}}) {
        if (sys.check_extension(cap) <= 0) {
            return make_error(Errc::kKvmUnavailable,
                              fmt::format("{}: {} missing (KVM_CHECK_EXTENSION)", path, name));
        }
    }
    int mmap_size = fault::ioctl(sys.fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size <= 0) {
        return errno_error("KVM_GET_VCPU_MMAP_SIZE");
    }
    sys.vcpu_mmap_size_ = static_cast<std::size_t>(mmap_size);
    // api.rst 4.4: without KVM_CAP_MAX_VCPUS use KVM_CAP_NR_VCPUS; without that, 4.
    sys.max_vcpus_ = sys.check_extension(KVM_CAP_MAX_VCPUS);
    if (sys.max_vcpus_ <= 0) sys.max_vcpus_ = sys.check_extension(KVM_CAP_NR_VCPUS);
    if (sys.max_vcpus_ <= 0) sys.max_vcpus_ = 4;
    sys.max_vcpu_id_ = std::max(sys.check_extension(KVM_CAP_MAX_VCPU_ID), sys.max_vcpus_);
    sys.memory_slots_ = std::max(sys.check_extension(KVM_CAP_NR_MEMSLOTS), 32);
    auto cpuid = read_supported_cpuid(sys.fd_.get());
    if (!cpuid) return std::unexpected(std::move(cpuid).error());
    sys.cpuid_ = std::move(*cpuid);
    return sys;
}

int System::check_extension(int cap) const noexcept {
    int r = fault::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

Result<VmFd> System::create_vm() const {
    // api.rst 4.2: machine type 0 is the default x86 VM.
    int fd = fault::ioctl(fd_.get(), KVM_CREATE_VM, 0);
    if (fd < 0) {
        return errno_error("KVM_CREATE_VM");
    }
    return VmFd(UniqueFd(fd), vcpu_mmap_size_);
}

}  // namespace guestvm::kvm

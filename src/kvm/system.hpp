// guestvm::kvm — the /dev/kvm system descriptor.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "guestvm/error.hpp"
#include "kvm/unique_fd.hpp"

namespace guestvm::kvm {

class VmFd;

/// Owns the /dev/kvm descriptor and what was learned from it at open time.
/// Immutable after open(): any thread may call its const methods.
class System {
  public:
    /// Opens `path` (normally /dev/kvm), checks the API version and required capabilities.
    static Result<System> open(const char *path = "/dev/kvm");

    System(System &&) noexcept = default;
    System &operator=(System &&) noexcept = default;

    /// KVM_CREATE_VM.
    Result<VmFd> create_vm() const;
    /// KVM_CHECK_EXTENSION on the system fd; 0 when absent.
    int check_extension(int cap) const noexcept;

    /// Size of each vCPU's kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE).
    std::size_t vcpu_mmap_size() const noexcept { return vcpu_mmap_size_; }
    /// Most vCPUs one VM may have (KVM_CAP_MAX_VCPUS).
    int max_vcpus() const noexcept { return max_vcpus_; }
    /// Highest vCPU id + 1 KVM accepts (KVM_CAP_MAX_VCPU_ID).
    int max_vcpu_id() const noexcept { return max_vcpu_id_; }
    /// Number of user memory slots (KVM_CAP_NR_MEMSLOTS).
    int memory_slots() const noexcept { return memory_slots_; }
    /// CPUID leaves KVM can present to a guest (KVM_GET_SUPPORTED_CPUID).
    const std::vector<kvm_cpuid_entry2> &supported_cpuid() const noexcept { return cpuid_; }

  private:
    System() = default;
    UniqueFd fd_;
    std::size_t vcpu_mmap_size_ = 0;
    int max_vcpus_ = 0;
    int max_vcpu_id_ = 0;
    int memory_slots_ = 0;
    std::vector<kvm_cpuid_entry2> cpuid_;
};

}  // namespace guestvm::kvm

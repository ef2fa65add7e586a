// guestvm — what a GuestVSpace needs of its VM: the KVM descriptor and its memory slots
// (internal to src/memory and src/core).
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <vector>

#include "guestvm/vspace.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm {

/// The KVM VM whose memory slots back the guest address space, which slots are free, and the
/// lock that guards the address space (areas included).
struct GuestVSpace::State {
    State(const kvm::VmFd &vm, int max_slots, bool readonly_supported)
        : vm_(vm), max_slots_(max_slots), readonly_supported_(readonly_supported) {}

    const kvm::VmFd &vm_;
    const int max_slots_;
    const bool readonly_supported_;
    mutable std::shared_mutex mutex_;
    std::vector<std::uint32_t> free_slots_;
    std::uint32_t next_slot_ = 0;
};

}  // namespace guestvm

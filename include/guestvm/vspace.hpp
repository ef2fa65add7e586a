// guestvm — the guest's address space (guest-physical) and the VMM's view of it (host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/types.hpp"

namespace guestvm {

namespace kvm {
class VmFd;
class Mapping;
}  // namespace kvm

class VmmVSpace;

/// One region of guest-physical space backed by host memory and a KVM memory slot.
struct GuestRegion {
    GuestPhysAddr base;
    std::uint64_t size = 0;
    std::uint8_t *host = nullptr;  ///< host address of `base`
    bool read_only = false;
    std::uint32_t slot = 0;
    std::string name;

    std::uint64_t end() const noexcept { return base.value() + size; }
    bool contains(std::uint64_t gpa, std::uint64_t len) const noexcept {
        return gpa >= base.value() && len <= size && gpa - base.value() <= size - len;
    }
};

/// The guest-physical address space of one VM: sorted, non-overlapping RAM regions, each
/// backed by host memory it owns and a KVM slot. Lookups are O(log n). Thread-safe.
class GuestVSpace {
  public:
    GuestVSpace(const kvm::VmFd &vm, VmmVSpace &vmm, int max_slots);
    ~GuestVSpace();
    GuestVSpace(const GuestVSpace &) = delete;
    GuestVSpace &operator=(const GuestVSpace &) = delete;

    /// Allocates `size` bytes of RAM (page multiple) at `base` and maps it into the guest.
    /// Refuses a range that overlaps a region, wraps, or is not page-aligned.
    Status add_ram(GuestPhysAddr base, std::uint64_t size, std::string name);

    /// Copy of the regions, sorted by base.
    std::vector<GuestRegion> regions() const;
    /// The region holding [gpa, gpa+len), if one region holds all of it.
    std::optional<GuestRegion> find(GuestPhysAddr gpa, std::uint64_t len = 1) const;
    /// Host pointer for [gpa, gpa+len); error unless one region holds the whole range.
    Result<std::uint8_t *> translate(GuestPhysAddr gpa, std::uint64_t len = 1) const;
    /// Bounds-checked copies; a range crossing a region's end is refused, nothing copied.
    Status read(GuestPhysAddr gpa, std::span<std::uint8_t> out) const;
    Status write(GuestPhysAddr gpa, std::span<const std::uint8_t> in);
    /// Total RAM bytes.
    std::uint64_t ram_bytes() const;

  private:
    struct Backed;
    const kvm::VmFd &vm_;
    VmmVSpace &vmm_;
    int max_slots_;
    mutable std::shared_mutex mutex_;
    std::vector<Backed> regions_;  // sorted by base
    std::uint32_t next_slot_ = 0;
};

/// A host mapping that backs or views guest memory.
struct HostMapping {
    HostVirtAddr addr;
    std::uint64_t size = 0;
    int prot = 0;                        ///< PROT_READ | PROT_WRITE ...
    std::optional<GuestPhysAddr> guest;  ///< the guest-physical address it backs, if any
    std::string name;

    bool contains(std::uintptr_t a, std::uint64_t len = 1) const noexcept {
        return a >= addr.value() && len <= size && a - addr.value() <= size - len;
    }
};

/// The VMM's own address space as it concerns one VM: every host mapping that backs or views
/// the guest. Sorted by host address; lookups O(log n). Thread-safe.
class VmmVSpace {
  public:
    /// Records a mapping; refuses one that overlaps a recorded mapping.
    Status record(HostMapping mapping);
    /// Forgets the mapping starting at `addr`.
    Status forget(HostVirtAddr addr);

    std::vector<HostMapping> mappings() const;
    std::optional<HostMapping> find(HostVirtAddr addr, std::uint64_t len = 1) const;
    /// Host address → the guest-physical address it backs.
    Result<GuestPhysAddr> to_guest(HostVirtAddr addr) const;

  private:
    mutable std::shared_mutex mutex_;
    std::vector<HostMapping> mappings_;  // sorted by addr
};

}  // namespace guestvm

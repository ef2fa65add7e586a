// guestvm — the guest's address space (guest-physical) and the VMM's view of it (host).
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/exits.hpp"
#include "guestvm/types.hpp"

namespace guestvm {

namespace kvm {
class VmFd;
}  // namespace kvm

class VmmVSpace;
class Frame;

/// What occupies a range of guest-physical space.
enum class AreaKind : std::uint8_t {
    kRam,          ///< host memory the guest reads and writes directly
    kReadOnlyRam,  ///< host memory the guest reads; its writes exit to the area's handler
    kReservation,  ///< no memory: every access exits to the area's handler
};

/// One area of guest-physical space.
struct GuestRegion {
    GuestPhysAddr base;
    std::uint64_t size = 0;
    std::uint8_t *host = nullptr;  ///< host address of `base` (null for a reservation)
    AreaKind kind = AreaKind::kRam;
    std::uint32_t slot = 0;  ///< KVM memory slot (RAM only)
    std::string name;

    bool read_only() const noexcept { return kind == AreaKind::kReadOnlyRam; }
    bool is_ram() const noexcept { return kind != AreaKind::kReservation; }
    std::uint64_t end() const noexcept { return base.value() + size; }
    bool contains(std::uint64_t gpa, std::uint64_t len) const noexcept {
        return gpa >= base.value() && len <= size && gpa - base.value() <= size - len;
    }
};

/// The guest-physical address space of one VM: sorted, non-overlapping areas — RAM backed by
/// host memory it owns and a KVM slot, read-only RAM, and reservations whose accesses go to a
/// handler. Lookups are O(log n). Thread-safe. Pointers from translate() stay valid until the
/// area is removed; prefer read()/write()/copy(), which check bounds under the lock.
class GuestVSpace {
  public:
    /// One past the highest guest-physical address an area may cover: guestvm's bound on
    /// guest-physical space (2^46, 64 TiB). The C layer's anonymous pools lie below it too.
    static constexpr std::uint64_t kAddressLimit = std::uint64_t{1} << 46;

    /// The KVM VM's memory slots behind it (internal: src/memory/guest_vspace_state.hpp).
    struct State;
    /// Made by the VM that owns it (the State names the VM's KVM descriptor).
    GuestVSpace(std::unique_ptr<State> state, VmmVSpace &vmm);
    ~GuestVSpace();
    GuestVSpace(const GuestVSpace &) = delete;
    GuestVSpace &operator=(const GuestVSpace &) = delete;

    /// Allocates `size` bytes of RAM (page multiple) at `base` (page-aligned) and maps it into
    /// the guest. Refuses a range that overlaps any area, wraps, or is misaligned.
    Status add_ram(GuestPhysAddr base, std::uint64_t size, std::string name);
    /// RAM the guest can only read; a guest write does not change it and reaches `on_write`
    /// (no handler: the write is an unhandled memory fault).
    Status add_readonly_ram(GuestPhysAddr base, std::uint64_t size, std::string name,
                            MmioHandler on_write = {});
    /// RAM at the lowest free `align`-aligned address at or above `from`, below 3 GiB or above
    /// 4 GiB (the MMIO hole is skipped). Returns where it went.
    Result<GuestPhysAddr> add_ram_anywhere(std::uint64_t size, std::string name,
                                           std::uint64_t align = 4096,
                                           GuestPhysAddr from = GuestPhysAddr(1 << 20));
    /// The lowest `align`-aligned address x in [from, last] (align a power of two) such that
    /// [x, x+size) touches no area and ends at or below `last`; nullopt when there is none.
    /// Only a hint: another thread may take the range before the caller does.
    std::optional<GuestPhysAddr> find_free(std::uint64_t size, std::uint64_t align,
                                           GuestPhysAddr from, GuestPhysAddr last) const;
    /// Reserves [base, base+size) with no memory behind it: every guest access (1, 2, 4 or 8
    /// bytes, read or write) reaches `handler`. Refuses overlap like add_ram.
    Status reserve(GuestPhysAddr base, std::uint64_t size, std::string name, MmioHandler handler);
    /// Backs the reservation that starts at `base` with `frames`, laid end to end from `base`
    /// and covering it exactly, each at an address aligned to its size. From then on the guest
    /// uses that memory directly: it reads and writes it (`writable`), or only reads it and its
    /// writes still reach the reservation's handler. kBadState if it is mapped already;
    /// remove(base) unmaps it with the reservation. The frames stay alive while mapped.
    Status map_frames(GuestPhysAddr base, std::span<const std::shared_ptr<Frame>> frames,
                      bool writable);
    /// Removes the area that starts at `base`; refused while a VMM view of it exists.
    Status remove(GuestPhysAddr base);

    /// Copy of the areas, sorted by base.
    std::vector<GuestRegion> regions() const;
    /// The RAM area holding all of [gpa, gpa+len), if one does.
    std::optional<GuestRegion> find(GuestPhysAddr gpa, std::uint64_t len = 1) const;
    /// Host pointer for [gpa, gpa+len); error unless one RAM area holds the whole range.
    Result<std::uint8_t *> translate(GuestPhysAddr gpa, std::uint64_t len = 1) const;
    /// Bounds-checked copies; a range that is not inside one RAM area is refused whole.
    Status read(GuestPhysAddr gpa, std::span<std::uint8_t> out) const;
    Status write(GuestPhysAddr gpa, std::span<const std::uint8_t> in);
    /// Guest-to-guest copy (ranges may overlap), with the same checks on both ranges.
    Status copy(GuestPhysAddr dst, GuestPhysAddr src, std::uint64_t len);
    /// Total RAM bytes.
    std::uint64_t ram_bytes() const;

    /// Routes a faulting access to the handler of the area that holds it (a reservation, or a
    /// write to read-only RAM); kUnhandled when none does. Called by the vCPU run loop.
    ExitAction dispatch_fault(ExitContext &ctx, MmioAccess &access) const;

    /// Where the memory behind [gpa, gpa+len) lives: a memory file and the offset in it.
    struct Backing {
        int fd;
        std::uint64_t offset;
    };
    Result<Backing> backing(GuestPhysAddr gpa, std::uint64_t len) const;

  private:
    struct Area;
    struct Areas;
    Status insert(GuestPhysAddr base, std::uint64_t size, std::string name, AreaKind kind,
                  MmioHandler handler);
    Status check_slot_left_locked(const std::string &name) const;
    /// Gives `region` a KVM slot over `host` and records the host mapping (region.slot/host).
    Status attach_locked(GuestRegion &region, std::uint8_t *host);
    /// Takes the KVM slot of RAM `region` away and forgets its host mapping.
    Status detach_locked(const GuestRegion &region);

    std::unique_ptr<State> s_;  // the KVM VM, its slots and the lock that guards everything
    VmmVSpace &vmm_;
    std::unique_ptr<Areas> areas_;  // sorted by base, disjoint
};

/// A host mapping that backs or views guest memory.
struct HostMapping {
    HostVirtAddr addr;
    std::uint64_t size = 0;
    int prot = 0;                        ///< PROT_READ | PROT_WRITE ...
    std::optional<GuestPhysAddr> guest;  ///< the guest-physical address it backs, if any
    std::string name;
    bool view = false;  ///< a view mapped with map_view (else the guest's own backing)

    bool contains(std::uintptr_t a, std::uint64_t len = 1) const noexcept {
        return a >= addr.value() && len <= size && a - addr.value() <= size - len;
    }
};

/// The VMM's own address space as it concerns one VM: every host mapping that backs or views
/// the guest, sorted by host address, lookups O(log n). The VMM can map extra views of guest
/// RAM (the same memory at another host address) and unmap them; views go away with the VM.
/// Thread-safe.
class VmmVSpace {
  public:
    VmmVSpace();
    ~VmmVSpace();
    VmmVSpace(const VmmVSpace &) = delete;
    VmmVSpace &operator=(const VmmVSpace &) = delete;

    /// Records a mapping; refuses one that overlaps a recorded mapping.
    Status record(HostMapping mapping);
    /// Forgets the mapping starting at `addr`.
    Status forget(HostVirtAddr addr);

    /// Maps a view of guest RAM [gpa, gpa+len) (page-aligned) into the VMM: reads and writes
    /// through it are the guest's memory. Needs the guest vspace this VMM vspace serves.
    Result<HostVirtAddr> map_view(GuestPhysAddr gpa, std::uint64_t len, bool writable,
                                  std::string name);
    /// Unmaps a view made by map_view.
    Status unmap_view(HostVirtAddr addr);
    /// True if a view covers any part of guest [gpa, gpa+len).
    bool has_view_of(GuestPhysAddr gpa, std::uint64_t len) const;

    std::vector<HostMapping> mappings() const;
    std::optional<HostMapping> find(HostVirtAddr addr, std::uint64_t len = 1) const;
    /// Host address → the guest-physical address it backs or views.
    Result<GuestPhysAddr> to_guest(HostVirtAddr addr) const;

    /// Which guest vspace views come from (set once by the Vm).
    void attach(const GuestVSpace *guest) noexcept { guest_ = guest; }

  private:
    struct Mappings;
    const GuestVSpace *guest_ = nullptr;
    std::unique_ptr<Mappings> mappings_;  // sorted by host address; owns the views; its lock
};

}  // namespace guestvm

#pragma GCC visibility pop

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/handler_scope.hpp"
#include "common/range_map.hpp"
#include "guestvm/frame.hpp"
#include "guestvm/vspace.hpp"
#include "kvm/mapping.hpp"
#include "kvm/vm_fd.hpp"
#include "memory/guest_vspace_state.hpp"

namespace guestvm {

namespace {
constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kHoleStart = 3ull << 30, kHoleEnd = 4ull << 30;

// The map checks wrapping, the limit and overlap; guest memory also wants whole pages.
Status check_pages(std::uint64_t base, std::uint64_t size, const std::string &name) {
    if (size == 0 || size % kPage != 0 || base % kPage != 0) {
        return make_error(Errc::kInvalidArgument, fmt::format("{} is empty or not page-aligned",
                                                              describe_range(name, base, size)));
    }
    return {};
}

const char *kind_name(AreaKind kind) {
    switch (kind) {
        case AreaKind::kRam:
            return "RAM";
        case AreaKind::kReadOnlyRam:
            return "read-only RAM";
        case AreaKind::kReservation:
            return "reservation";
    }
    return "area";
}

Status check_not_in_exit_handler() {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot change guest memory");
    }
    return {};
}
}  // namespace

// What an area holds besides its bounds and name (those are the map's).
struct GuestVSpace::Area {
    AreaKind kind = AreaKind::kRam;
    std::uint8_t *host = nullptr;                // host address of the base (RAM only)
    std::uint32_t slot = 0;                      // KVM memory slot (RAM only)
    kvm::SharedMemory memory;                    // RAM only (frames: no fd, their aliases)
    std::shared_ptr<const MmioHandler> handler;  // reservations; writes to read-only RAM
    std::vector<std::shared_ptr<Frame>> frames;  // a reservation backed by map_frames
};

// The areas by guest-physical address; guarded by GuestVSpace::s_->mutex_.
struct GuestVSpace::Areas {
    using Entry = RangeMap<Area>::Entry;
    RangeMap<Area> map{kAddressLimit - 1};

    static GuestRegion region(const Entry &e) {
        return GuestRegion{
            GuestPhysAddr(e.base()), e.size(), e.value.host, e.value.kind, e.value.slot, e.name()};
    }
    /// The RAM area holding all of [gpa, gpa+len), or null.
    const Entry *ram(std::uint64_t gpa, std::uint64_t len) const {
        const Entry *e = map.find_covering(gpa, len);
        return e != nullptr && e->value.kind != AreaKind::kReservation ? e : nullptr;
    }
    /// Host address of `gpa` inside RAM area `e`.
    static std::uint8_t *host_of(const Entry &e, std::uint64_t gpa) {
        return e.value.host + (gpa - e.base());
    }
};

GuestVSpace::GuestVSpace(std::unique_ptr<State> state, VmmVSpace &vmm)
    : s_(std::move(state)), vmm_(vmm), areas_(std::make_unique<Areas>()) {}

GuestVSpace::~GuestVSpace() {
    // Slots first, then the host memory behind them (members), then the VMM's records.
    for (const auto &e : areas_->map) {
        if (e.value.kind != AreaKind::kReservation) (void)detach_locked(Areas::region(e));
    }
}

Status GuestVSpace::check_slot_left_locked(const std::string &name) const {
    if (s_->free_slots_.empty() && s_->next_slot_ >= static_cast<std::uint32_t>(s_->max_slots_)) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("no KVM memory slot left for {}", name));
    }
    return {};
}

Status GuestVSpace::attach_locked(GuestRegion &region, std::uint8_t *host) {
    const std::uint32_t slot = s_->free_slots_.empty() ? s_->next_slot_ : s_->free_slots_.back();
    const std::uint64_t gpa = region.base.value();
    GUESTVM_TRY(s_->vm_.set_memory_region(slot, gpa, region.size, host, region.read_only()));
    auto recorded =
        vmm_.record(HostMapping{HostVirtAddr(reinterpret_cast<std::uintptr_t>(host)), region.size,
                                PROT_READ | PROT_WRITE, region.base, region.name, false});
    if (!recorded) {
        (void)s_->vm_.set_memory_region(slot, gpa, 0, nullptr, false);
        return std::unexpected(std::move(recorded).error());
    }
    if (s_->free_slots_.empty())
        ++s_->next_slot_;
    else
        s_->free_slots_.pop_back();
    region.slot = slot;
    region.host = host;
    return {};
}

Status GuestVSpace::detach_locked(const GuestRegion &region) {
    GUESTVM_TRY(s_->vm_.set_memory_region(region.slot, region.base.value(), 0, nullptr, false));
    (void)vmm_.forget(HostVirtAddr(reinterpret_cast<std::uintptr_t>(region.host)));
    s_->free_slots_.push_back(region.slot);
    return {};
}

Status GuestVSpace::insert(GuestPhysAddr base, std::uint64_t size, std::string name, AreaKind kind,
                           MmioHandler handler) {
    GUESTVM_TRY(check_not_in_exit_handler());
    const std::uint64_t b = base.value();
    GUESTVM_TRY(check_pages(b, size, name));
    if (kind == AreaKind::kReservation && !handler) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("reservation {}: null handler", name));
    }
    if (kind == AreaKind::kReadOnlyRam && !s_->readonly_supported_) {
        return make_error(Errc::kSystem, "this KVM has no read-only memory (KVM_CAP_READONLY_MEM)");
    }
    std::unique_lock lock(s_->mutex_);
    if (auto free = areas_->map.check(b, size, name); !free) {
        return std::unexpected(std::move(free).error().context(kind_name(kind)));
    }
    GuestRegion region{base, size, nullptr, kind, 0, name};
    Area area{kind,
              nullptr,
              0,
              {},
              handler ? std::make_shared<const MmioHandler>(std::move(handler)) : nullptr,
              {}};
    if (region.is_ram()) {
        GUESTVM_TRY(check_slot_left_locked(name));
        auto memory = kvm::create_shared_memory(size, name.c_str());
        if (!memory) return std::unexpected(std::move(memory).error());
        GUESTVM_TRY(attach_locked(region, memory->mapping.data()));
        area.memory = std::move(*memory);
        area.host = region.host;
        area.slot = region.slot;
    }
    auto inserted = areas_->map.insert(b, size, std::move(name), std::move(area));
    if (!inserted && region.is_ram()) (void)detach_locked(region);  // checked above: not reached
    return inserted;
}

Status GuestVSpace::add_ram(GuestPhysAddr base, std::uint64_t size, std::string name) {
    return insert(base, size, std::move(name), AreaKind::kRam, {});
}

Status GuestVSpace::add_readonly_ram(GuestPhysAddr base, std::uint64_t size, std::string name,
                                     MmioHandler on_write) {
    return insert(base, size, std::move(name), AreaKind::kReadOnlyRam, std::move(on_write));
}

Status GuestVSpace::reserve(GuestPhysAddr base, std::uint64_t size, std::string name,
                            MmioHandler handler) {
    return insert(base, size, std::move(name), AreaKind::kReservation, std::move(handler));
}

Result<GuestPhysAddr> GuestVSpace::add_ram_anywhere(std::uint64_t size, std::string name,
                                                    std::uint64_t align, GuestPhysAddr from) {
    if (align < kPage || (align & (align - 1)) != 0) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("alignment {:#x} is not a power of two >= 4 KiB", align));
    }
    GUESTVM_TRY(check_pages(0, size, name));
    if (size > kAddressLimit) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("{} is larger than guest-physical space", describe_range(name, 0, size)));
    }
    // Below the MMIO hole, else above it.
    auto at = find_free(size, align, from, GuestPhysAddr(kHoleStart - 1));
    if (!at) {
        at = find_free(size, align, GuestPhysAddr(std::max(from.value(), kHoleEnd)),
                       GuestPhysAddr(kAddressLimit - 1));
    }
    if (!at) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("no free guest-physical range of {:#x} bytes", size));
    }
    // Another thread may take the range between the search and the insert: insert re-checks.
    GUESTVM_TRY(add_ram(*at, size, std::move(name)));
    return *at;
}

std::optional<GuestPhysAddr> GuestVSpace::find_free(std::uint64_t size, std::uint64_t align,
                                                    GuestPhysAddr from, GuestPhysAddr last) const {
    std::shared_lock lock(s_->mutex_);
    auto at = areas_->map.first_fit(size, align, from.value(), last.value());
    if (!at) return std::nullopt;
    return GuestPhysAddr(*at);
}

Status GuestVSpace::map_frames(GuestPhysAddr base, std::span<const std::shared_ptr<Frame>> frames,
                               bool writable) {
    GUESTVM_TRY(check_not_in_exit_handler());
    if (!writable && !s_->readonly_supported_) {
        return make_error(Errc::kSystem, "this KVM has no read-only memory (KVM_CAP_READONLY_MEM)");
    }
    std::unique_lock lock(s_->mutex_);
    Areas::Entry *entry = areas_->map.starting_at(base.value());
    if (entry == nullptr) {
        return make_error(Errc::kNotFound,
                          fmt::format("no reservation starts at {:#x}", base.value()));
    }
    Area &area = entry->value;
    const std::string &name = entry->name();
    const std::uint64_t size = entry->size();
    if (!area.frames.empty()) {
        return make_error(Errc::kBadState, fmt::format("reservation {} at {:#x} is mapped already",
                                                       name, base.value()));
    }
    if (area.kind != AreaKind::kReservation) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("{} at {:#x} is RAM, not a reservation", name, base.value()));
    }
    std::uint64_t offset = 0;
    for (const auto &frame : frames) {
        if (!frame) return make_error(Errc::kInvalidArgument, "map_frames: null frame");
        const std::uint64_t gpa = base.value() + offset;
        if (gpa % frame->size() != 0 || offset >= size || frame->size() > size - offset) {
            return make_error(
                Errc::kInvalidArgument,
                fmt::format("reservation {}: a {:#x}-byte frame "
                            "does not fit at {:#x} (aligned, inside)",
                            describe_range(name, base.value(), size), frame->size(), gpa));
        }
        offset += frame->size();
    }
    if (offset != size) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("reservation {} is {:#x} bytes; the frames cover {:#x}", name,
                                      size, offset));
    }
    GUESTVM_TRY(check_slot_left_locked(name));
    // One host range holding every frame's pages in order, so one KVM slot covers it.
    auto range = kvm::Mapping::address_range(size);
    if (!range) return std::unexpected(std::move(range).error());
    offset = 0;
    for (const auto &frame : frames) {
        GUESTVM_TRY(range->alias_at(offset, frame->bytes().data(), frame->size()));
        offset += frame->size();
    }
    GuestRegion mapped = Areas::region(*entry);
    mapped.kind = writable ? AreaKind::kRam : AreaKind::kReadOnlyRam;
    GUESTVM_TRY(attach_locked(mapped, range->data()));
    area.kind = mapped.kind;
    area.host = mapped.host;
    area.slot = mapped.slot;
    area.memory.mapping = std::move(*range);
    area.frames.assign(frames.begin(), frames.end());
    return {};
}

Status GuestVSpace::remove(GuestPhysAddr base) {
    GUESTVM_TRY(check_not_in_exit_handler());
    std::unique_lock lock(s_->mutex_);
    const Areas::Entry *entry = areas_->map.starting_at(base.value());
    if (entry == nullptr) {
        return make_error(Errc::kNotFound,
                          fmt::format("no guest area starts at {:#x}", base.value()));
    }
    const GuestRegion region = Areas::region(*entry);
    if (region.is_ram()) {
        if (vmm_.has_view_of(base, region.size)) {
            return make_error(
                Errc::kBadState,
                fmt::format("{} is still mapped into the VMM: unmap its views first", region.name));
        }
        GUESTVM_TRY(detach_locked(region));
    }
    return areas_->map.erase(base.value());  // unmaps the host memory
}

std::vector<GuestRegion> GuestVSpace::regions() const {
    std::shared_lock lock(s_->mutex_);
    std::vector<GuestRegion> out;
    out.reserve(areas_->map.size());
    for (const auto &e : areas_->map) out.push_back(Areas::region(e));
    return out;
}

std::optional<GuestRegion> GuestVSpace::find(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(s_->mutex_);
    const Areas::Entry *e = areas_->ram(gpa.value(), len);
    if (e == nullptr) return std::nullopt;
    return Areas::region(*e);
}

namespace {
std::unexpected<Error> not_in_ram(std::string_view what, std::uint64_t gpa, std::uint64_t len) {
    return make_error(
        Errc::kNotFound,
        fmt::format("{}guest-physical [{:#x}, +{:#x}) is not inside one RAM area", what, gpa, len));
}
}  // namespace

Result<std::uint8_t *> GuestVSpace::translate(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(s_->mutex_);
    const Areas::Entry *e = areas_->ram(gpa.value(), len);
    if (e == nullptr) return not_in_ram("", gpa.value(), len);
    return Areas::host_of(*e, gpa.value());
}

Status GuestVSpace::read(GuestPhysAddr gpa, std::span<std::uint8_t> out) const {
    if (out.empty()) return {};
    std::shared_lock lock(s_->mutex_);  // held across the copy: the area cannot go away meanwhile
    const Areas::Entry *e = areas_->ram(gpa.value(), out.size());
    if (e == nullptr) return not_in_ram("read of ", gpa.value(), out.size());
    std::memcpy(out.data(), Areas::host_of(*e, gpa.value()), out.size());
    return {};
}

Status GuestVSpace::write(GuestPhysAddr gpa, std::span<const std::uint8_t> in) {
    if (in.empty()) return {};
    std::shared_lock lock(s_->mutex_);
    const Areas::Entry *e = areas_->ram(gpa.value(), in.size());
    if (e == nullptr) return not_in_ram("write of ", gpa.value(), in.size());
    // The VMM may write read-only RAM: only the guest's writes are refused.
    std::memcpy(Areas::host_of(*e, gpa.value()), in.data(), in.size());
    return {};
}

Status GuestVSpace::copy(GuestPhysAddr dst, GuestPhysAddr src, std::uint64_t len) {
    if (len == 0) return {};
    std::shared_lock lock(s_->mutex_);
    const Areas::Entry *s = areas_->ram(src.value(), len);
    if (s == nullptr) return not_in_ram("copy from ", src.value(), len);
    const Areas::Entry *d = areas_->ram(dst.value(), len);
    if (d == nullptr) return not_in_ram("copy to ", dst.value(), len);
    std::memmove(Areas::host_of(*d, dst.value()), Areas::host_of(*s, src.value()), len);
    return {};
}

std::uint64_t GuestVSpace::ram_bytes() const {
    std::shared_lock lock(s_->mutex_);
    std::uint64_t total = 0;
    for (const auto &e : areas_->map) {
        if (e.value.kind != AreaKind::kReservation) total += e.size();
    }
    return total;
}

ExitAction GuestVSpace::dispatch_fault(ExitContext &ctx, MmioAccess &access) const {
    std::shared_ptr<const MmioHandler> handler;
    {
        std::shared_lock lock(s_->mutex_);
        const Areas::Entry *e = areas_->map.find(access.addr);
        if (e == nullptr || !e->value.handler) return ExitAction::kUnhandled;
        if (e->value.kind == AreaKind::kReadOnlyRam && !access.is_write) {
            return ExitAction::kUnhandled;
        }
        handler = e->value.handler;
    }
    // Called without the lock: the handler may use this vspace, and an area removed meanwhile
    // keeps its handler alive until this call returns.
    return (*handler)(ctx, access);
}

Result<GuestVSpace::Backing> GuestVSpace::backing(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(s_->mutex_);
    const Areas::Entry *e = areas_->ram(gpa.value(), len);
    if (e == nullptr) return not_in_ram("", gpa.value(), len);
    if (!e->value.memory.fd.valid()) {
        return make_error(Errc::kBadState,
                          fmt::format("{} is backed by frames, not by one memory file: map the "
                                      "frames themselves",
                                      e->name()));
    }
    return Backing{e->value.memory.fd.get(), gpa.value() - e->base()};
}

}  // namespace guestvm

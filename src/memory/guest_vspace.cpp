#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/handler_scope.hpp"
#include "guestvm/frame.hpp"
#include "guestvm/vspace.hpp"
#include "kvm/mapping.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm {

namespace {
constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kHoleStart = 3ull << 30, kHoleEnd = 4ull << 30;
constexpr std::uint64_t kGuestPhysLimit = 1ull << 46;  // well inside x86's physical-address width

Status check_range(std::uint64_t base, std::uint64_t size, const std::string &name) {
    if (size == 0 || size % kPage != 0 || base % kPage != 0) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("{} [{:#x}, +{:#x}) is empty or not page-aligned", name, base, size));
    }
    if (base + size < base || base + size > kGuestPhysLimit) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("{} [{:#x}, +{:#x}) wraps or exceeds guest-physical space",
                                      name, base, size));
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
}  // namespace

struct GuestVSpace::Area {
    GuestRegion region;
    kvm::SharedMemory memory;                    // RAM only (frames: no fd, their aliases)
    std::shared_ptr<const MmioHandler> handler;  // reservations; writes to read-only RAM
    std::vector<std::shared_ptr<Frame>> frames;  // a reservation backed by map_frames
};

GuestVSpace::GuestVSpace(const kvm::VmFd &vm, VmmVSpace &vmm, int max_slots,
                         bool readonly_supported)
    : vm_(vm), vmm_(vmm), max_slots_(max_slots), readonly_supported_(readonly_supported) {}

GuestVSpace::~GuestVSpace() {
    // Slots first, then the host memory behind them (members), then the VMM's records.
    for (auto &a : areas_) {
        if (!a.region.is_ram()) continue;
        (void)vm_.set_memory_region(a.region.slot, a.region.base.value(), 0, nullptr, false);
        (void)vmm_.forget(HostVirtAddr(reinterpret_cast<std::uintptr_t>(a.region.host)));
    }
}

bool GuestVSpace::overlaps_locked(std::uint64_t base, std::uint64_t size) const {
    auto it =
        std::upper_bound(areas_.begin(), areas_.end(), base,
                         [](std::uint64_t a, const Area &r) { return a < r.region.base.value(); });
    if (it != areas_.end() && it->region.base.value() < base + size) return true;
    return it != areas_.begin() && std::prev(it)->region.end() > base;
}

const GuestVSpace::Area *GuestVSpace::find_locked(std::uint64_t gpa) const {
    auto it =
        std::upper_bound(areas_.begin(), areas_.end(), gpa,
                         [](std::uint64_t a, const Area &r) { return a < r.region.base.value(); });
    if (it == areas_.begin()) return nullptr;
    const Area &a = *std::prev(it);
    return a.region.contains(gpa, 1) ? &a : nullptr;
}

namespace {
Status check_not_in_exit_handler() {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot change guest memory");
    }
    return {};
}
}  // namespace

Status GuestVSpace::check_slot_left_locked(const std::string &name) const {
    if (free_slots_.empty() && next_slot_ >= static_cast<std::uint32_t>(max_slots_)) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("no KVM memory slot left for {}", name));
    }
    return {};
}

Status GuestVSpace::attach_locked(GuestRegion &region, std::uint8_t *host) {
    const std::uint32_t slot = free_slots_.empty() ? next_slot_ : free_slots_.back();
    const std::uint64_t gpa = region.base.value();
    GUESTVM_TRY(vm_.set_memory_region(slot, gpa, region.size, host, region.read_only()));
    auto recorded =
        vmm_.record(HostMapping{HostVirtAddr(reinterpret_cast<std::uintptr_t>(host)), region.size,
                                PROT_READ | PROT_WRITE, region.base, region.name, false});
    if (!recorded) {
        (void)vm_.set_memory_region(slot, gpa, 0, nullptr, false);
        return std::unexpected(std::move(recorded).error());
    }
    if (free_slots_.empty())
        ++next_slot_;
    else
        free_slots_.pop_back();
    region.slot = slot;
    region.host = host;
    return {};
}

Status GuestVSpace::insert(GuestPhysAddr base, std::uint64_t size, std::string name, AreaKind kind,
                           MmioHandler handler) {
    GUESTVM_TRY(check_not_in_exit_handler());
    const std::uint64_t b = base.value();
    GUESTVM_TRY(check_range(b, size, name));
    if (kind == AreaKind::kReservation && !handler) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("reservation {}: null handler", name));
    }
    if (kind == AreaKind::kReadOnlyRam && !readonly_supported_) {
        return make_error(Errc::kSystem, "this KVM has no read-only memory (KVM_CAP_READONLY_MEM)");
    }
    std::unique_lock lock(mutex_);
    if (overlaps_locked(b, size)) {
        const Area *other = find_locked(b);
        if (other == nullptr) {
            auto it = std::upper_bound(
                areas_.begin(), areas_.end(), b,
                [](std::uint64_t a, const Area &r) { return a < r.region.base.value(); });
            other = &*it;
        }
        return make_error(
            Errc::kAlreadyExists,
            fmt::format("{} {} [{:#x}, +{:#x}) overlaps {} {} [{:#x}, +{:#x})", kind_name(kind),
                        name, b, size, kind_name(other->region.kind), other->region.name,
                        other->region.base.value(), other->region.size));
    }
    Area area{GuestRegion{base, size, nullptr, kind, 0, std::move(name)},
              {},
              handler ? std::make_shared<const MmioHandler>(std::move(handler)) : nullptr,
              {}};
    if (area.region.is_ram()) {
        GUESTVM_TRY(check_slot_left_locked(area.region.name));
        auto memory = kvm::create_shared_memory(size, area.region.name.c_str());
        if (!memory) return std::unexpected(std::move(memory).error());
        GUESTVM_TRY(attach_locked(area.region, memory->mapping.data()));
        area.memory = std::move(*memory);
    }
    auto it = std::upper_bound(areas_.begin(), areas_.end(), b, [](std::uint64_t a, const Area &r) {
        return a < r.region.base.value();
    });
    areas_.insert(it, std::move(area));
    return {};
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
    GUESTVM_TRY(check_range(0, size, name));
    auto round_up = [&](std::uint64_t v) { return (v + align - 1) & ~(align - 1); };
    std::uint64_t candidate = 0;
    {
        std::shared_lock lock(mutex_);
        candidate = round_up(from.value());
        for (;;) {
            if (candidate < kHoleEnd && candidate + size > kHoleStart)
                candidate = round_up(kHoleEnd);
            if (candidate + size > kGuestPhysLimit) {
                return make_error(Errc::kResourceExhausted,
                                  fmt::format("no free guest-physical range of {:#x} bytes", size));
            }
            const Area *blocking = nullptr;
            for (const Area &a : areas_) {  // O(n): allocation is rare, lookups are not
                if (a.region.base.value() < candidate + size && a.region.end() > candidate) {
                    blocking = &a;
                    break;
                }
            }
            if (blocking == nullptr) break;
            candidate = round_up(blocking->region.end());
        }
    }
    // Another thread may take the range between the search and the insert: insert re-checks.
    GUESTVM_TRY(add_ram(GuestPhysAddr(candidate), size, std::move(name)));
    return GuestPhysAddr(candidate);
}

Status GuestVSpace::map_frames(GuestPhysAddr base, std::span<const std::shared_ptr<Frame>> frames,
                               bool writable) {
    GUESTVM_TRY(check_not_in_exit_handler());
    if (!writable && !readonly_supported_) {
        return make_error(Errc::kSystem, "this KVM has no read-only memory (KVM_CAP_READONLY_MEM)");
    }
    std::unique_lock lock(mutex_);
    auto it = std::find_if(areas_.begin(), areas_.end(),
                           [&](const Area &a) { return a.region.base == base; });
    if (it == areas_.end()) {
        return make_error(Errc::kNotFound,
                          fmt::format("no reservation starts at {:#x}", base.value()));
    }
    if (!it->frames.empty()) {
        return make_error(Errc::kBadState, fmt::format("reservation {} at {:#x} is mapped already",
                                                       it->region.name, base.value()));
    }
    if (it->region.kind != AreaKind::kReservation) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("{} at {:#x} is RAM, not a reservation", it->region.name, base.value()));
    }
    Area &area = *it;
    std::uint64_t offset = 0;
    for (const auto &frame : frames) {
        if (!frame) return make_error(Errc::kInvalidArgument, "map_frames: null frame");
        const std::uint64_t gpa = base.value() + offset;
        if (gpa % frame->size() != 0 || offset >= area.region.size ||
            frame->size() > area.region.size - offset) {
            return make_error(
                Errc::kInvalidArgument,
                fmt::format("reservation {} [{:#x}, +{:#x}): a {:#x}-byte frame "
                            "does not fit at {:#x} (aligned, inside)",
                            area.region.name, base.value(), area.region.size, frame->size(), gpa));
        }
        offset += frame->size();
    }
    if (offset != area.region.size) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("reservation {} is {:#x} bytes; the frames cover {:#x}",
                                      area.region.name, area.region.size, offset));
    }
    GUESTVM_TRY(check_slot_left_locked(area.region.name));
    // One host range holding every frame's pages in order, so one KVM slot covers it.
    auto range = kvm::Mapping::address_range(area.region.size);
    if (!range) return std::unexpected(std::move(range).error());
    offset = 0;
    for (const auto &frame : frames) {
        GUESTVM_TRY(range->alias_at(offset, frame->bytes().data(), frame->size()));
        offset += frame->size();
    }
    GuestRegion mapped = area.region;
    mapped.kind = writable ? AreaKind::kRam : AreaKind::kReadOnlyRam;
    GUESTVM_TRY(attach_locked(mapped, range->data()));
    area.region = std::move(mapped);
    area.memory.mapping = std::move(*range);
    area.frames.assign(frames.begin(), frames.end());
    return {};
}

Status GuestVSpace::remove(GuestPhysAddr base) {
    GUESTVM_TRY(check_not_in_exit_handler());
    std::unique_lock lock(mutex_);
    auto it = std::find_if(areas_.begin(), areas_.end(),
                           [&](const Area &a) { return a.region.base == base; });
    if (it == areas_.end()) {
        return make_error(Errc::kNotFound,
                          fmt::format("no guest area starts at {:#x}", base.value()));
    }
    if (it->region.is_ram()) {
        if (vmm_.has_view_of(base, it->region.size)) {
            return make_error(Errc::kBadState,
                              fmt::format("{} is still mapped into the VMM: unmap its views first",
                                          it->region.name));
        }
        GUESTVM_TRY(vm_.set_memory_region(it->region.slot, base.value(), 0, nullptr, false));
        (void)vmm_.forget(HostVirtAddr(reinterpret_cast<std::uintptr_t>(it->region.host)));
        free_slots_.push_back(it->region.slot);
    }
    areas_.erase(it);  // unmaps the host memory
    return {};
}

std::vector<GuestRegion> GuestVSpace::regions() const {
    std::shared_lock lock(mutex_);
    std::vector<GuestRegion> out;
    out.reserve(areas_.size());
    for (const auto &a : areas_) out.push_back(a.region);
    return out;
}

std::optional<GuestRegion> GuestVSpace::find(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(mutex_);
    const Area *a = find_locked(gpa.value());
    if (a == nullptr || !a->region.is_ram() ||
        !a->region.contains(gpa.value(), len == 0 ? 1 : len)) {
        return std::nullopt;
    }
    return a->region;
}

Result<std::uint8_t *> GuestVSpace::translate(GuestPhysAddr gpa, std::uint64_t len) const {
    auto r = find(gpa, len);
    if (!r) {
        return make_error(Errc::kNotFound,
                          fmt::format("guest-physical [{:#x}, +{:#x}) is not inside one RAM area",
                                      gpa.value(), len));
    }
    return r->host + (gpa.value() - r->base.value());
}

Status GuestVSpace::read(GuestPhysAddr gpa, std::span<std::uint8_t> out) const {
    if (out.empty()) return {};
    std::shared_lock lock(mutex_);  // held across the copy: the area cannot go away meanwhile
    const Area *a = find_locked(gpa.value());
    if (a == nullptr || !a->region.is_ram() || !a->region.contains(gpa.value(), out.size())) {
        return make_error(
            Errc::kNotFound,
            fmt::format("read of guest-physical [{:#x}, +{:#x}): not inside one RAM area",
                        gpa.value(), out.size()));
    }
    std::memcpy(out.data(), a->region.host + (gpa.value() - a->region.base.value()), out.size());
    return {};
}

Status GuestVSpace::write(GuestPhysAddr gpa, std::span<const std::uint8_t> in) {
    if (in.empty()) return {};
    std::shared_lock lock(mutex_);
    const Area *a = find_locked(gpa.value());
    if (a == nullptr || !a->region.is_ram() || !a->region.contains(gpa.value(), in.size())) {
        return make_error(
            Errc::kNotFound,
            fmt::format("write of guest-physical [{:#x}, +{:#x}): not inside one RAM area",
                        gpa.value(), in.size()));
    }
    // The VMM may write read-only RAM: only the guest's writes are refused.
    std::memcpy(a->region.host + (gpa.value() - a->region.base.value()), in.data(), in.size());
    return {};
}

Status GuestVSpace::copy(GuestPhysAddr dst, GuestPhysAddr src, std::uint64_t len) {
    if (len == 0) return {};
    std::shared_lock lock(mutex_);
    const Area *s = find_locked(src.value());
    const Area *d = find_locked(dst.value());
    if (s == nullptr || d == nullptr || !s->region.is_ram() || !d->region.is_ram() ||
        !s->region.contains(src.value(), len) || !d->region.contains(dst.value(), len)) {
        return make_error(Errc::kNotFound,
                          fmt::format("copy [{:#x}, +{:#x}) -> [{:#x}, +{:#x}): a range is not "
                                      "inside one RAM area",
                                      src.value(), len, dst.value(), len));
    }
    std::memmove(d->region.host + (dst.value() - d->region.base.value()),
                 s->region.host + (src.value() - s->region.base.value()), len);
    return {};
}

std::uint64_t GuestVSpace::ram_bytes() const {
    std::shared_lock lock(mutex_);
    std::uint64_t total = 0;
    for (const auto &a : areas_) {
        if (a.region.is_ram()) total += a.region.size;
    }
    return total;
}

ExitAction GuestVSpace::dispatch_fault(ExitContext &ctx, MmioAccess &access) const {
    std::shared_ptr<const MmioHandler> handler;
    {
        std::shared_lock lock(mutex_);
        const Area *a = find_locked(access.addr);
        if (a == nullptr || !a->handler) return ExitAction::kUnhandled;
        if (a->region.kind == AreaKind::kReadOnlyRam && !access.is_write) {
            return ExitAction::kUnhandled;
        }
        handler = a->handler;
    }
    // Called without the lock: the handler may use this vspace, and an area removed meanwhile
    // keeps its handler alive until this call returns.
    return (*handler)(ctx, access);
}

Result<GuestVSpace::Backing> GuestVSpace::backing(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(mutex_);
    const Area *a = find_locked(gpa.value());
    if (a == nullptr || !a->region.is_ram() || !a->region.contains(gpa.value(), len)) {
        return make_error(Errc::kNotFound,
                          fmt::format("guest-physical [{:#x}, +{:#x}) is not inside one RAM area",
                                      gpa.value(), len));
    }
    if (!a->memory.fd.valid()) {
        return make_error(Errc::kBadState,
                          fmt::format("{} is backed by frames, not by one memory file: map the "
                                      "frames themselves",
                                      a->region.name));
    }
    return Backing{a->memory.fd.get(), gpa.value() - a->region.base.value()};
}

}  // namespace guestvm

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "common/range_map.hpp"
#include "guestvm/vspace.hpp"
#include "kvm/mapping.hpp"

namespace guestvm {

namespace {
// What a host mapping records besides its address range and name (those are the map's).
struct MappingInfo {
    int prot = 0;
    std::optional<GuestPhysAddr> guest;
    bool view = false;
    kvm::Mapping owned;  // a view's own mapping (map_view); empty for the guest's backing
};
using MappingEntry = RangeMap<MappingInfo>::Entry;

HostMapping to_mapping(const MappingEntry &e) {
    return HostMapping{HostVirtAddr(static_cast<std::uintptr_t>(e.base())),
                       e.size(),
                       e.value.prot,
                       e.value.guest,
                       e.name(),
                       e.value.view};
}
}  // namespace

// The host mappings by host address, and the lock that guards them.
struct VmmVSpace::Mappings {
    RangeMap<MappingInfo> map{std::numeric_limits<std::uintptr_t>::max()};
    mutable std::shared_mutex mutex;
};

VmmVSpace::VmmVSpace() : mappings_(std::make_unique<Mappings>()) {}
VmmVSpace::~VmmVSpace() = default;

namespace {
Status record_in(RangeMap<MappingInfo> &map, HostMapping mapping, kvm::Mapping owned) {
    auto recorded =
        map.insert(mapping.addr.value(), mapping.size, std::move(mapping.name),
                   MappingInfo{mapping.prot, mapping.guest, mapping.view, std::move(owned)});
    if (!recorded) return std::unexpected(std::move(recorded).error().context("host mapping"));
    return {};
}
}  // namespace

Status VmmVSpace::record(HostMapping mapping) {
    std::unique_lock lock(mappings_->mutex);
    return record_in(mappings_->map, std::move(mapping), {});
}

Status VmmVSpace::forget(HostVirtAddr addr) {
    std::unique_lock lock(mappings_->mutex);
    if (!mappings_->map.starting_at(addr.value())) {
        return make_error(Errc::kNotFound,
                          fmt::format("no host mapping starts at {:#x}", addr.value()));
    }
    return mappings_->map.erase(addr.value());
}

Result<HostVirtAddr> VmmVSpace::map_view(GuestPhysAddr gpa, std::uint64_t len, bool writable,
                                         std::string name) {
    if (guest_ == nullptr) return make_error(Errc::kBadState, "VMM vspace serves no guest");
    if (len == 0 || gpa.value() % 4096 != 0 || len % 4096 != 0) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("view [{:#x}, +{:#x}) is empty or not page-aligned", gpa.value(), len));
    }
    auto backing = guest_->backing(gpa, len);
    if (!backing) return std::unexpected(std::move(backing).error());
    const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    auto view = kvm::Mapping::shared_view(backing->fd, backing->offset, len, prot);
    if (!view) return std::unexpected(std::move(view).error());
    auto addr = HostVirtAddr(reinterpret_cast<std::uintptr_t>(view->data()));
    std::unique_lock lock(mappings_->mutex);
    GUESTVM_TRY(record_in(mappings_->map, HostMapping{addr, len, prot, gpa, std::move(name), true},
                          std::move(*view)));
    return addr;
}

Status VmmVSpace::unmap_view(HostVirtAddr addr) {
    kvm::Mapping doomed;
    {
        std::unique_lock lock(mappings_->mutex);
        auto *entry = mappings_->map.starting_at(addr.value());
        if (entry == nullptr || !entry->value.view) {
            return make_error(Errc::kNotFound,
                              fmt::format("no view starts at {:#x}", addr.value()));
        }
        doomed = std::move(entry->value.owned);
        GUESTVM_TRY(mappings_->map.erase(addr.value()));
    }
    return {};  // `doomed` unmaps here, outside the lock
}

bool VmmVSpace::has_view_of(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(mappings_->mutex);
    return std::any_of(mappings_->map.begin(), mappings_->map.end(), [&](const MappingEntry &e) {
        return e.value.view && e.value.guest && e.value.guest->value() < gpa.value() + len &&
               gpa.value() < e.value.guest->value() + e.size();
    });
}

std::vector<HostMapping> VmmVSpace::mappings() const {
    std::shared_lock lock(mappings_->mutex);
    std::vector<HostMapping> out;
    out.reserve(mappings_->map.size());
    for (const auto &e : mappings_->map) out.push_back(to_mapping(e));
    return out;
}

std::optional<HostMapping> VmmVSpace::find(HostVirtAddr addr, std::uint64_t len) const {
    std::shared_lock lock(mappings_->mutex);
    const MappingEntry *e = mappings_->map.find_covering(addr.value(), len);
    if (e == nullptr) return std::nullopt;
    return to_mapping(*e);
}

Result<GuestPhysAddr> VmmVSpace::to_guest(HostVirtAddr addr) const {
    auto m = find(addr);
    if (!m || !m->guest) {
        return make_error(Errc::kNotFound,
                          fmt::format("host address {:#x} backs no guest memory", addr.value()));
    }
    return GuestPhysAddr(m->guest->value() + (addr.value() - m->addr.value()));
}

}  // namespace guestvm

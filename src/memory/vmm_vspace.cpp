#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "guestvm/vspace.hpp"
#include "kvm/mapping.hpp"

namespace guestvm {

namespace {
auto by_addr = [](std::uintptr_t a, const HostMapping &m) { return a < m.addr.value(); };
}

struct VmmVSpace::Views {
    std::map<std::uintptr_t, kvm::Mapping> by_addr;
};

VmmVSpace::VmmVSpace() : views_(std::make_unique<Views>()) {}
VmmVSpace::~VmmVSpace() = default;

Status VmmVSpace::record(HostMapping mapping) {
    std::uintptr_t a = mapping.addr.value();
    if (mapping.size == 0 || a + mapping.size < a) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("host mapping {:#x} +{:#x} is empty or wraps", a, mapping.size));
    }
    std::unique_lock lock(mutex_);
    auto it = std::upper_bound(mappings_.begin(), mappings_.end(), a, by_addr);
    auto overlaps = [&](const HostMapping &m) {
        return a < m.addr.value() + m.size && m.addr.value() < a + mapping.size;
    };
    if ((it != mappings_.end() && overlaps(*it)) ||
        (it != mappings_.begin() && overlaps(*std::prev(it)))) {
        return make_error(
            Errc::kAlreadyExists,
            fmt::format("host mapping {:#x} +{:#x} overlaps a recorded mapping", a, mapping.size));
    }
    mappings_.insert(it, std::move(mapping));
    return {};
}

Status VmmVSpace::forget(HostVirtAddr addr) {
    std::unique_lock lock(mutex_);
    auto it = std::find_if(mappings_.begin(), mappings_.end(),
                           [&](const HostMapping &m) { return m.addr == addr; });
    if (it == mappings_.end()) {
        return make_error(Errc::kNotFound,
                          fmt::format("no host mapping starts at {:#x}", addr.value()));
    }
    mappings_.erase(it);
    return {};
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
    GUESTVM_TRY(record(HostMapping{addr, len, prot, gpa, std::move(name), true}));
    std::unique_lock lock(mutex_);
    views_->by_addr.emplace(addr.value(), std::move(*view));
    return addr;
}

Status VmmVSpace::unmap_view(HostVirtAddr addr) {
    kvm::Mapping doomed;
    {
        std::unique_lock lock(mutex_);
        auto it = views_->by_addr.find(addr.value());
        if (it == views_->by_addr.end()) {
            return make_error(Errc::kNotFound,
                              fmt::format("no view starts at {:#x}", addr.value()));
        }
        doomed = std::move(it->second);
        views_->by_addr.erase(it);
    }
    GUESTVM_TRY(forget(addr));
    return {};  // `doomed` unmaps here
}

bool VmmVSpace::has_view_of(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(mutex_);
    return std::any_of(mappings_.begin(), mappings_.end(), [&](const HostMapping &m) {
        return m.view && m.guest && m.guest->value() < gpa.value() + len &&
               gpa.value() < m.guest->value() + m.size;
    });
}

std::vector<HostMapping> VmmVSpace::mappings() const {
    std::shared_lock lock(mutex_);
    return mappings_;
}

std::optional<HostMapping> VmmVSpace::find(HostVirtAddr addr, std::uint64_t len) const {
    std::shared_lock lock(mutex_);
    auto it = std::upper_bound(mappings_.begin(), mappings_.end(), addr.value(), by_addr);
    if (it == mappings_.begin()) return std::nullopt;
    const HostMapping &m = *std::prev(it);
    if (!m.contains(addr.value(), len == 0 ? 1 : len)) return std::nullopt;
    return m;
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

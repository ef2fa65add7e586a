#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "guestvm/vspace.hpp"

namespace guestvm {

namespace {
auto by_addr = [](std::uintptr_t a, const HostMapping &m) { return a < m.addr.value(); };
}

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

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "guestvm/vspace.hpp"
#include "kvm/mapping.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm {

namespace {
constexpr std::uint64_t kPage = 4096;
}

struct GuestVSpace::Backed {
    GuestRegion region;
    kvm::Mapping memory;
};

GuestVSpace::GuestVSpace(const kvm::VmFd &vm, VmmVSpace &vmm, int max_slots)
    : vm_(vm), vmm_(vmm), max_slots_(max_slots) {}

GuestVSpace::~GuestVSpace() {
    // Slots first, then the host memory behind them (members), then the VMM's records.
    for (auto &b : regions_) {
        (void)vm_.set_memory_region(b.region.slot, b.region.base.value(), 0, nullptr, false);
        (void)vmm_.forget(HostVirtAddr(reinterpret_cast<std::uintptr_t>(b.region.host)));
    }
}

Status GuestVSpace::add_ram(GuestPhysAddr base, std::uint64_t size, std::string name) {
    std::uint64_t b = base.value();
    if (size == 0 || size % kPage != 0 || b % kPage != 0) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("RAM region [{:#x}, +{:#x}) is empty or not page-aligned", b, size));
    }
    if (b + size < b) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("RAM region [{:#x}, +{:#x}) wraps around", b, size));
    }
    std::unique_lock lock(mutex_);
    auto it = std::upper_bound(
        regions_.begin(), regions_.end(), b,
        [](std::uint64_t a, const Backed &r) { return a < r.region.base.value(); });
    auto overlaps = [&](const Backed &r) {
        return b < r.region.end() && r.region.base.value() < b + size;
    };
    if ((it != regions_.end() && overlaps(*it)) ||
        (it != regions_.begin() && overlaps(*std::prev(it)))) {
        const Backed &other = (it != regions_.end() && overlaps(*it)) ? *it : *std::prev(it);
        return make_error(
            Errc::kAlreadyExists,
            fmt::format("RAM region {} [{:#x}, +{:#x}) overlaps region {} [{:#x}, +{:#x})", name, b,
                        size, other.region.name, other.region.base.value(), other.region.size));
    }
    if (next_slot_ >= static_cast<std::uint32_t>(max_slots_)) {
        return make_error(
            Errc::kResourceExhausted,
            fmt::format("no KVM memory slot left for region {} ({} in use)", name, next_slot_));
    }
    auto memory = kvm::Mapping::anonymous(size);
    if (!memory) return std::unexpected(std::move(memory).error());
    std::uint32_t slot = next_slot_;
    GUESTVM_TRY(vm_.set_memory_region(slot, b, size, memory->data(), false));
    auto host_addr = HostVirtAddr(reinterpret_cast<std::uintptr_t>(memory->data()));
    auto recorded = vmm_.record(HostMapping{host_addr, size, PROT_READ | PROT_WRITE, base, name});
    if (!recorded) {
        (void)vm_.set_memory_region(slot, b, 0, nullptr, false);
        return std::unexpected(std::move(recorded).error());
    }
    ++next_slot_;
    GuestRegion region{base, size, memory->data(), false, slot, std::move(name)};
    regions_.insert(it, Backed{std::move(region), std::move(*memory)});
    return {};
}

std::vector<GuestRegion> GuestVSpace::regions() const {
    std::shared_lock lock(mutex_);
    std::vector<GuestRegion> out;
    out.reserve(regions_.size());
    for (const auto &b : regions_) out.push_back(b.region);
    return out;
}

std::optional<GuestRegion> GuestVSpace::find(GuestPhysAddr gpa, std::uint64_t len) const {
    std::shared_lock lock(mutex_);
    auto it = std::upper_bound(
        regions_.begin(), regions_.end(), gpa.value(),
        [](std::uint64_t a, const Backed &r) { return a < r.region.base.value(); });
    if (it == regions_.begin()) return std::nullopt;
    const GuestRegion &r = std::prev(it)->region;
    if (!r.contains(gpa.value(), len)) return std::nullopt;
    return r;
}

Result<std::uint8_t *> GuestVSpace::translate(GuestPhysAddr gpa, std::uint64_t len) const {
    auto r = find(gpa, len == 0 ? 1 : len);
    if (!r) {
        return make_error(Errc::kNotFound,
                          fmt::format("guest-physical [{:#x}, +{:#x}) is not inside one RAM region",
                                      gpa.value(), len));
    }
    return r->host + (gpa.value() - r->base.value());
}

Status GuestVSpace::read(GuestPhysAddr gpa, std::span<std::uint8_t> out) const {
    if (out.empty()) return {};
    auto host = translate(gpa, out.size());
    if (!host) return std::unexpected(std::move(host).error());
    std::memcpy(out.data(), *host, out.size());
    return {};
}

Status GuestVSpace::write(GuestPhysAddr gpa, std::span<const std::uint8_t> in) {
    if (in.empty()) return {};
    auto host = translate(gpa, in.size());
    if (!host) return std::unexpected(std::move(host).error());
    std::memcpy(*host, in.data(), in.size());
    return {};
}

std::uint64_t GuestVSpace::ram_bytes() const {
    std::shared_lock lock(mutex_);
    std::uint64_t total = 0;
    for (const auto &b : regions_) total += b.region.size;
    return total;
}

}  // namespace guestvm

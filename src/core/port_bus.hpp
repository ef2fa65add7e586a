// guestvm — sorted, non-overlapping ranges of ports or addresses, each with a value (internal).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "guestvm/error.hpp"

namespace guestvm {

/// Sorted, non-overlapping address ranges → values; lookup by binary search. Insertion
/// refuses overlap, empty ranges and overflow. Not thread-safe (the Vm guards it).
template <typename Value>
class RangeBus {
  public:
    struct Entry {
        std::uint64_t base;
        std::uint64_t size;
        std::string name;
        Value value;
        bool contains(std::uint64_t a) const noexcept { return a >= base && a - base < size; }
    };

    explicit RangeBus(std::uint64_t limit) : limit_(limit) {}

    Status insert(std::uint64_t base, std::uint64_t size, std::string name, Value value) {
        if (size == 0 || base > limit_ || size - 1 > limit_ - base) {
            return make_error(
                Errc::kInvalidArgument,
                fmt::format("{} range [{:#x}, +{:#x}) is empty or out of range", name, base, size));
        }
        if (!value) {
            return make_error(Errc::kInvalidArgument, fmt::format("{}: null handler", name));
        }
        auto it = std::upper_bound(entries_.begin(), entries_.end(), base,
                                   [](std::uint64_t a, const Entry &e) { return a < e.base; });
        auto overlaps = [&](const Entry &e) {
            return base <= e.base + (e.size - 1) && e.base <= base + (size - 1);
        };
        for (auto c : {it, it == entries_.begin() ? entries_.end() : std::prev(it)}) {
            if (c != entries_.end() && overlaps(*c)) {
                return make_error(Errc::kAlreadyExists,
                                  fmt::format("{} [{:#x}, +{:#x}) overlaps {} [{:#x}, +{:#x})",
                                              name, base, size, c->name, c->base, c->size));
            }
        }
        entries_.insert(it, Entry{base, size, std::move(name), std::move(value)});
        return {};
    }

    Status remove(std::uint64_t base) {
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const Entry &e) { return e.base == base; });
        if (it == entries_.end()) {
            return make_error(Errc::kNotFound, fmt::format("no range starts at {:#x}", base));
        }
        entries_.erase(it);
        return {};
    }

    const Entry *find(std::uint64_t addr) const noexcept {
        auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                                   [](std::uint64_t a, const Entry &e) { return a < e.base; });
        if (it == entries_.begin()) return nullptr;
        const Entry &e = *std::prev(it);
        return e.contains(addr) ? &e : nullptr;
    }

    std::size_t size() const noexcept { return entries_.size(); }
    std::span<const Entry> entries() const noexcept { return entries_; }

  private:
    std::uint64_t limit_;
    std::vector<Entry> entries_;
};

}  // namespace guestvm

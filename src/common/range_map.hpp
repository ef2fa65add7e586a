// guestvm — sorted, non-overlapping half-open address ranges, each holding a value (internal).
//
// One implementation for every "what occupies this address" table: guest-physical areas, the
// VMM's host mappings, the C layer's anonymous pools and RAM bookkeeping, the port bus.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guestvm/error.hpp"

namespace guestvm {

/// `v` as "0x…" in lower-case hex.
inline std::string hex_string(std::uint64_t v) {
    char digits[16];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v, 16);
    (void)ec;  // 16 hex digits always fit
    return "0x" + std::string(digits, end);
}

/// "name [0xbase, +0xsize)", or "range [0xbase, +0xsize)" when `name` is empty.
inline std::string describe_range(std::string_view name, std::uint64_t base, std::uint64_t size) {
    std::string out(name.empty() ? std::string_view("range") : name);
    out += " [" + hex_string(base) + ", +" + hex_string(size) + ")";
    return out;
}

/// Sorted, non-overlapping ranges [base, base+size) of one address space whose addresses run
/// from 0 to an inclusive `last` address, each with an optional name and a value of type V
/// (which only needs to be movable: a struct, a std::function handler, ...). Owns the values.
/// Point lookups are binary searches, O(log n); insert and erase shift the array, O(n).
/// Not thread-safe: the owner locks around it (or confines it to one thread).
template <typename V>
class RangeMap {
  public:
    /// One range and its value. Its bounds and name are fixed; its value may change.
    class Entry {
      public:
        std::uint64_t base() const noexcept { return base_; }
        std::uint64_t size() const noexcept { return size_; }
        /// The last address inside the range (never wraps).
        std::uint64_t last() const noexcept { return base_ + (size_ - 1); }
        /// One past the last address; 0 for a range that ends exactly at 2^64.
        std::uint64_t end() const noexcept { return base_ + size_; }
        const std::string &name() const noexcept { return name_; }

        /// Whether `addr` lies inside the range.
        bool contains(std::uint64_t addr) const noexcept {
            return addr >= base_ && addr - base_ < size_;
        }
        /// Whether all of [addr, addr+len) lies inside the range; len 0 asks about `addr` alone.
        bool contains(std::uint64_t addr, std::uint64_t len) const noexcept {
            if (len == 0) return contains(addr);
            return addr >= base_ && len <= size_ && addr - base_ <= size_ - len;
        }
        /// Whether the range shares an address with [a, a+n) (n 0: none; a wrap is cut at 2^64).
        bool intersects(std::uint64_t a, std::uint64_t n) const noexcept {
            return n != 0 && base_ <= query_last(a, n) && a <= last();
        }

        V value;

      private:
        friend class RangeMap;
        Entry(std::uint64_t base, std::uint64_t size, std::string name, V v)
            : value(std::move(v)), base_(base), size_(size), name_(std::move(name)) {}

        std::uint64_t base_;
        std::uint64_t size_;
        std::string name_;
    };

    using iterator = typename std::vector<Entry>::iterator;
    using const_iterator = typename std::vector<Entry>::const_iterator;

    /// A map over addresses 0..`last` inclusive (0xffff for I/O ports, 2^64-1 for all).
    explicit RangeMap(std::uint64_t last = std::numeric_limits<std::uint64_t>::max()) noexcept
        : last_(last) {}

    /// The highest address a range may cover.
    std::uint64_t limit() const noexcept { return last_; }

    /// What insert(base, size, name, ...) would answer, without inserting: kInvalidArgument
    /// for an empty range or one that wraps or passes the limit, kAlreadyExists (naming both
    /// ranges) for one that overlaps a range already here.
    Status check(std::uint64_t base, std::uint64_t size, std::string_view name) const {
        if (size == 0) {
            return make_error(Errc::kInvalidArgument,
                              describe_range(name, base, size) + " is empty");
        }
        if (base > last_ || size - 1 > last_ - base) {
            return make_error(Errc::kInvalidArgument, describe_range(name, base, size) +
                                                          " wraps or passes the limit " +
                                                          hex_string(last_));
        }
        if (const Entry *other = first_overlap(base, size)) {
            return make_error(Errc::kAlreadyExists,
                              describe_range(name, base, size) + " overlaps " +
                                  describe_range(other->name(), other->base(), other->size()));
        }
        return {};
    }

    /// Adds [base, base+size) with `value`; refused (nothing changes) as check() describes.
    Status insert(std::uint64_t base, std::uint64_t size, std::string name, V value) {
        GUESTVM_TRY(check(base, size, name));
        entries_.insert(after(base), Entry(base, size, std::move(name), std::move(value)));
        return {};
    }

    /// Removes the range that starts at `base`; kNotFound when none does.
    Status erase(std::uint64_t base) {
        auto it = exact(base);
        if (it == entries_.end()) {
            return make_error(Errc::kNotFound, "no range starts at " + hex_string(base));
        }
        entries_.erase(it);
        return {};
    }
    /// Removes every range.
    void clear() noexcept { entries_.clear(); }

    /// The range holding `addr`, or null.
    const Entry *find(std::uint64_t addr) const noexcept {
        auto it = after(addr);
        if (it == entries_.begin()) return nullptr;
        const Entry &e = *std::prev(it);
        return e.contains(addr) ? &e : nullptr;
    }
    Entry *find(std::uint64_t addr) noexcept {
        return const_cast<Entry *>(std::as_const(*this).find(addr));
    }

    /// The range holding all of [addr, addr+len), or null (also when the span crosses a
    /// range's end or wraps). len 0 is find(addr).
    const Entry *find_covering(std::uint64_t addr, std::uint64_t len) const noexcept {
        const Entry *e = find(addr);
        return e != nullptr && e->contains(addr, len) ? e : nullptr;
    }
    Entry *find_covering(std::uint64_t addr, std::uint64_t len) noexcept {
        return const_cast<Entry *>(std::as_const(*this).find_covering(addr, len));
    }

    /// The range that starts exactly at `base`, or null.
    const Entry *starting_at(std::uint64_t base) const noexcept {
        auto it = exact(base);
        return it == entries_.end() ? nullptr : &*it;
    }
    Entry *starting_at(std::uint64_t base) noexcept {
        return const_cast<Entry *>(std::as_const(*this).starting_at(base));
    }

    /// The lowest range that shares an address with [a, a+n), or null (n 0: null; a span
    /// that wraps is cut at 2^64).
    const Entry *first_overlap(std::uint64_t a, std::uint64_t n) const noexcept {
        auto span = overlapping(a, n);
        return span.empty() ? nullptr : &span.front();
    }

    /// Every range that shares an address with [a, a+n), in order (contiguous, as the ranges
    /// are sorted and disjoint).
    std::span<const Entry> overlapping(std::uint64_t a, std::uint64_t n) const noexcept {
        if (n == 0) return {};
        auto first = after(a);
        if (first != entries_.begin() && std::prev(first)->last() >= a) --first;
        auto stop = after(query_last(a, n));
        return {first, stop};
    }

    /// The lowest `align`-aligned address x >= `from` such that [x, x+size) touches no range
    /// and ends at or below both `last` and the map's limit; nullopt when there is none (or
    /// size is 0, or align is not a power of two; align 0 means 1).
    std::optional<std::uint64_t> first_fit(std::uint64_t size, std::uint64_t align,
                                           std::uint64_t from,
                                           std::uint64_t last = kMax) const noexcept {
        if (align == 0) align = 1;
        if (size == 0 || (align & (align - 1)) != 0) return std::nullopt;
        const std::uint64_t hi = std::min(last, last_);
        auto align_up = [&](std::uint64_t v) -> std::optional<std::uint64_t> {
            if (v > kMax - (align - 1)) return std::nullopt;
            return (v + (align - 1)) & ~(align - 1);
        };
        std::optional<std::uint64_t> x = align_up(from);
        auto it = entries_.cbegin();
        for (;;) {
            if (!x || *x > hi || size - 1 > hi - *x) return std::nullopt;
            // Skip ranges wholly below x; the first one left may block [x, x+size).
            it = std::partition_point(it, entries_.cend(),
                                      [&](const Entry &e) { return e.last() < *x; });
            if (it == entries_.cend() || it->base() > *x + (size - 1)) return x;
            if (it->last() == kMax) return std::nullopt;
            x = align_up(it->last() + 1);
        }
    }

    std::size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }
    /// The ranges in address order.
    std::span<const Entry> entries() const noexcept { return entries_; }
    const_iterator begin() const noexcept { return entries_.begin(); }
    const_iterator end() const noexcept { return entries_.end(); }
    iterator begin() noexcept { return entries_.begin(); }
    iterator end() noexcept { return entries_.end(); }

  private:
    static constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

    static std::uint64_t query_last(std::uint64_t a, std::uint64_t n) noexcept {
        return n - 1 > kMax - a ? kMax : a + (n - 1);
    }

    /// The first range that starts above `addr`.
    const_iterator after(std::uint64_t addr) const noexcept {
        return std::upper_bound(entries_.begin(), entries_.end(), addr,
                                [](std::uint64_t a, const Entry &e) { return a < e.base(); });
    }
    iterator after(std::uint64_t addr) noexcept {
        return entries_.begin() + (std::as_const(*this).after(addr) - entries_.cbegin());
    }
    const_iterator exact(std::uint64_t base) const noexcept {
        auto it = after(base);
        if (it == entries_.begin() || std::prev(it)->base() != base) return entries_.end();
        return std::prev(it);
    }
    iterator exact(std::uint64_t base) noexcept {
        return entries_.begin() + (std::as_const(*this).exact(base) - entries_.cbegin());
    }

    std::uint64_t last_;
    std::vector<Entry> entries_;  // sorted by base, disjoint
};

}  // namespace guestvm

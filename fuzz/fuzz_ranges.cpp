// libFuzzer: RangeMap driven by the input bytes. The first byte picks the map's limit; then
// each operation is an opcode byte and its operands (addresses drawn small, near the limit,
// near 2^64 or raw, so the edges come up often). After every operation the map must be sorted,
// disjoint and inside its limit, and every answer must agree with a linear scan of its ranges.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/range_map.hpp"

namespace {

using guestvm::RangeMap;
using Map = RangeMap<std::uint32_t>;
using Entry = Map::Entry;
constexpr std::uint64_t kMax = ~std::uint64_t{0};
constexpr int kMaxOps = 256;  // keeps the quadratic first_fit check cheap

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// Reads operands from the input; past its end every read is 0.
class Input {
  public:
    Input(const std::uint8_t *data, std::size_t size) : data_(data), size_(size) {}
    bool done() const { return pos_ >= size_; }
    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    std::uint64_t raw(int bytes) {
        std::uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= std::uint64_t{byte()} << (8 * i);
        return v;
    }
    /// An address or size: small, a multiple of 16, just below `limit`, or any.
    std::uint64_t number(std::uint64_t limit) {
        switch (byte() % 4) {
            case 0:
                return byte();
            case 1:
                return raw(2) << 4;
            case 2:
                return limit - byte();
            default:
                return raw(8);
        }
    }

  private:
    const std::uint8_t *data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

bool intersects(const Entry &e, std::uint64_t a, std::uint64_t n) {
    if (n == 0) return false;
    const std::uint64_t last = n - 1 > kMax - a ? kMax : a + (n - 1);
    return e.base() <= last && a <= e.last();
}

bool free_at(const Map &map, std::uint64_t x, std::uint64_t size) {
    for (const Entry &e : map) {
        if (intersects(e, x, size)) return false;
    }
    return true;
}

const Entry *linear_find(const Map &map, std::uint64_t addr) {
    for (const Entry &e : map) {
        if (addr >= e.base() && addr <= e.last()) return &e;
    }
    return nullptr;
}

void check_invariants(const Map &map) {
    const Entry *previous = nullptr;
    for (const Entry &e : map) {
        check(e.size() != 0);
        check(e.base() <= map.limit() && e.size() - 1 <= map.limit() - e.base());
        if (previous != nullptr) check(previous->last() < e.base());
        previous = &e;
    }
}

// first_fit's answer must be feasible, and no lower candidate may be: the lowest feasible
// address is `from` aligned up or some range's end aligned up.
void check_first_fit(const Map &map, std::uint64_t size, std::uint64_t align, std::uint64_t from,
                     std::uint64_t last, std::optional<std::uint64_t> got) {
    if (align == 0) align = 1;
    const bool usable = size != 0 && (align & (align - 1)) == 0;
    if (!usable) return check(!got);
    const std::uint64_t hi = last < map.limit() ? last : map.limit();
    auto feasible = [&](std::uint64_t x) {
        return x >= from && x % align == 0 && x <= hi && size - 1 <= hi - x &&
               free_at(map, x, size);
    };
    auto align_up = [&](std::uint64_t v) -> std::optional<std::uint64_t> {
        if (v > kMax - (align - 1)) return std::nullopt;
        return (v + (align - 1)) & ~(align - 1);
    };
    std::vector<std::uint64_t> candidates;
    if (auto c = align_up(from)) candidates.push_back(*c);
    for (const Entry &e : map) {
        if (e.last() == kMax) continue;
        if (auto c = align_up(e.last() + 1)) candidates.push_back(*c);
    }
    if (got) check(feasible(*got));
    for (std::uint64_t c : candidates) {
        if (!got || c < *got) check(!feasible(c));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    Input in(data, size);
    static constexpr std::uint64_t kLimits[] = {kMax, 0xffff, 0xfff, (std::uint64_t{1} << 46) - 1};
    Map map(kLimits[in.byte() % 4]);
    const std::uint64_t limit = map.limit();
    std::vector<std::uint64_t> bases;  // of the ranges inserted, for erase to pick from
    for (int op = 0; op < kMaxOps && !in.done(); ++op) {
        switch (in.byte() % 6) {
            case 0: {  // insert
                const std::uint64_t base = in.number(limit), n = in.number(limit);
                const bool valid = n != 0 && base <= limit && n - 1 <= limit - base;
                const bool expect = valid && free_at(map, base, n);
                auto inserted = map.insert(base, n, {}, static_cast<std::uint32_t>(op));
                check(inserted.has_value() == expect);
                if (expect) {
                    bases.push_back(base);
                    check(map.starting_at(base) != nullptr && map.starting_at(base)->value == op);
                } else {
                    check(inserted.error().code() == (valid ? guestvm::Errc::kAlreadyExists
                                                            : guestvm::Errc::kInvalidArgument));
                }
                break;
            }
            case 1: {  // erase: a base inserted before (maybe erased since) or any address
                std::uint64_t base = in.number(limit);
                if (!bases.empty() && in.byte() % 2 == 0) base = bases[base % bases.size()];
                bool present = false;
                for (const Entry &e : map) present = present || e.base() == base;
                const std::size_t before = map.size();
                check(map.erase(base).has_value() == present);
                check(map.size() == before - (present ? 1 : 0));
                break;
            }
            case 2: {  // find, find_covering
                const std::uint64_t addr = in.number(limit), n = in.number(limit);
                const Entry *linear = linear_find(map, addr);
                check(map.find(addr) == linear);
                const bool covers =
                    linear != nullptr &&
                    (n == 0 || (n - 1 <= kMax - addr && addr + (n - 1) <= linear->last()));
                check(map.find_covering(addr, n) == (covers ? linear : nullptr));
                break;
            }
            case 3: {  // first_overlap, overlapping
                const std::uint64_t a = in.number(limit), n = in.number(limit);
                std::vector<const Entry *> linear;
                for (const Entry &e : map) {
                    if (intersects(e, a, n)) linear.push_back(&e);
                    check(e.intersects(a, n) == intersects(e, a, n));
                }
                auto span = map.overlapping(a, n);
                check(span.size() == linear.size());
                for (std::size_t i = 0; i < span.size(); ++i) check(&span[i] == linear[i]);
                check(map.first_overlap(a, n) == (linear.empty() ? nullptr : linear.front()));
                break;
            }
            case 4: {  // first_fit
                const std::uint64_t n = in.number(limit);
                const std::uint64_t align =
                    in.byte() % 2 == 0 ? std::uint64_t{1} << (in.byte() % 64) : in.byte();
                const std::uint64_t from = in.number(limit), last = in.number(limit);
                check_first_fit(map, n, align, from, last, map.first_fit(n, align, from, last));
                break;
            }
            default: {  // check(): the same answer as a failed or successful insert would give
                const std::uint64_t base = in.number(limit), n = in.number(limit);
                const bool valid = n != 0 && base <= limit && n - 1 <= limit - base;
                check(map.check(base, n, "probe").has_value() == (valid && free_at(map, base, n)));
                break;
            }
        }
        check_invariants(map);
    }
    return 0;
}

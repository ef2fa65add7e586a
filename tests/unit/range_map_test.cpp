#include "common/range_map.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <random>

namespace guestvm {
namespace {

constexpr std::uint64_t kMax = ~std::uint64_t{0};

std::vector<std::uint64_t> bases(const RangeMap<int> &map) {
    std::vector<std::uint64_t> out;
    for (const auto &e : map) out.push_back(e.base());
    return out;
}

TEST(RangeMap, AdjacentRangesAreAllowed) {
    RangeMap<int> map;
    ASSERT_TRUE(map.insert(0x2000, 0x1000, "mid", 2));
    ASSERT_TRUE(map.insert(0x1000, 0x1000, "below", 1));
    ASSERT_TRUE(map.insert(0x3000, 0x1000, "above", 3));
    EXPECT_EQ(bases(map), (std::vector<std::uint64_t>{0x1000, 0x2000, 0x3000}));
    EXPECT_EQ(map.find(0x1fff)->name(), "below");
    EXPECT_EQ(map.find(0x2000)->name(), "mid");
    EXPECT_EQ(map.find(0x2fff)->value, 2);
    EXPECT_EQ(map.find(0x3000)->value, 3);
    EXPECT_EQ(map.find(0x4000), nullptr);
    EXPECT_EQ(map.find(0xfff), nullptr);
}

TEST(RangeMap, OverlapByOneByteIsRefusedAtBothEndsNamingBothRanges) {
    RangeMap<int> map;
    ASSERT_TRUE(map.insert(0x1000, 0x1000, "ram", 0));
    auto low = map.insert(0x800, 0x801, "low", 0);  // its last byte is ram's first
    ASSERT_FALSE(low);
    EXPECT_EQ(low.error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(low.error().message(), "low [0x800, +0x801) overlaps ram [0x1000, +0x1000)");
    auto high = map.insert(0x1fff, 0x10, "high", 0);  // its first byte is ram's last
    ASSERT_FALSE(high);
    EXPECT_EQ(high.error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(high.error().message(), "high [0x1fff, +0x10) overlaps ram [0x1000, +0x1000)");
    auto inside = map.insert(0x1400, 0x10, "", 0);  // unnamed: called "range"
    ASSERT_FALSE(inside);
    EXPECT_EQ(inside.error().message(), "range [0x1400, +0x10) overlaps ram [0x1000, +0x1000)");
    auto around = map.insert(0, 0x10000, "around", 0);
    EXPECT_EQ(around.error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(map.size(), 1u);
    EXPECT_TRUE(map.insert(0x800, 0x800, "low", 0));
    EXPECT_TRUE(map.insert(0x2000, 0x10, "high", 0));
    EXPECT_EQ(map.size(), 3u);
}

TEST(RangeMap, RefusesEmptyWrappingAndPastTheLimit) {
    RangeMap<int> full;  // all of 0 .. 2^64-1
    EXPECT_EQ(full.insert(0x1000, 0, "empty", 0).error().code(), Errc::kInvalidArgument);
    auto wrap = full.insert(kMax - 0xf, 0x20, "wrap", 0);
    ASSERT_FALSE(wrap);
    EXPECT_EQ(wrap.error().code(), Errc::kInvalidArgument);
    EXPECT_NE(wrap.error().message().find("wrap [0xfffffffffffffff0, +0x20)"), std::string::npos);
    EXPECT_EQ(full.insert(0x1000, kMax, "huge", 0).error().code(), Errc::kInvalidArgument);
    // A range may end exactly at 2^64.
    ASSERT_TRUE(full.insert(kMax - 0xfff, 0x1000, "top", 0));
    EXPECT_EQ(full.find(kMax)->name(), "top");
    EXPECT_EQ(full.find(kMax)->last(), kMax);
    EXPECT_EQ(full.find(kMax)->end(), 0u);
    EXPECT_TRUE(full.insert(0, kMax - 0xfff, "rest", 0));  // everything below it
    EXPECT_EQ(full.insert(0x5000, 1, "more", 0).error().code(), Errc::kAlreadyExists);

    RangeMap<int> ports(0xffff);
    EXPECT_EQ(ports.limit(), 0xffffu);
    EXPECT_EQ(ports.insert(0xffff, 2, "f", 0).error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(ports.insert(0x10000, 1, "g", 0).error().code(), Errc::kInvalidArgument);
    EXPECT_TRUE(ports.insert(0xffff, 1, "last", 0));
    EXPECT_TRUE(ports.insert(0, 0xffff, "all-but-last", 0));
    EXPECT_TRUE(ports.check(0, 1, "x").error().code() == Errc::kAlreadyExists);
}

TEST(RangeMap, CheckAnswersLikeInsertWithoutInserting) {
    RangeMap<int> map(0xfffff);
    ASSERT_TRUE(map.insert(0x100, 0x100, "a", 0));
    EXPECT_TRUE(map.check(0x200, 0x100, "b"));
    EXPECT_EQ(map.check(0x1ff, 1, "b").error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(map.check(0xfffff, 2, "b").error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(map.size(), 1u);
}

TEST(RangeMap, EraseByBase) {
    RangeMap<int> map;
    ASSERT_TRUE(map.insert(0x1000, 0x1000, "a", 1));
    ASSERT_TRUE(map.insert(0x3000, 0x1000, "b", 2));
    auto inside = map.erase(0x1800);  // not a base
    ASSERT_FALSE(inside);
    EXPECT_EQ(inside.error().code(), Errc::kNotFound);
    EXPECT_EQ(inside.error().message(), "no range starts at 0x1800");
    EXPECT_EQ(map.erase(0x2000).error().code(), Errc::kNotFound);
    ASSERT_TRUE(map.erase(0x1000));
    EXPECT_EQ(map.find(0x1000), nullptr);
    EXPECT_EQ(map.starting_at(0x1000), nullptr);
    EXPECT_EQ(map.starting_at(0x3000)->value, 2);
    EXPECT_EQ(map.starting_at(0x3001), nullptr);
    EXPECT_EQ(map.erase(0x1000).error().code(), Errc::kNotFound);
    // The hole can be filled again, wider.
    EXPECT_TRUE(map.insert(0, 0x3000, "c", 3));
    EXPECT_EQ(bases(map), (std::vector<std::uint64_t>{0, 0x3000}));
    map.clear();
    EXPECT_TRUE(map.empty());
}

TEST(RangeMap, CoveringLookupRefusesASpanThatCrossesAnEnd) {
    RangeMap<int> map;
    ASSERT_TRUE(map.insert(0x1000, 0x1000, "a", 1));
    ASSERT_TRUE(map.insert(0x2000, 0x1000, "b", 2));  // adjacent: still two ranges
    EXPECT_EQ(map.find_covering(0x1000, 0x1000)->name(), "a");
    EXPECT_EQ(map.find_covering(0x1ff8, 8)->name(), "a");
    EXPECT_EQ(map.find_covering(0x1ff8, 9), nullptr);  // crosses a's end into b
    EXPECT_EQ(map.find_covering(0x2ff8, 9), nullptr);  // crosses b's end into nothing
    EXPECT_EQ(map.find_covering(0x800, 0x1000), nullptr);
    EXPECT_EQ(map.find_covering(0x1800, kMax), nullptr);   // wraps
    EXPECT_EQ(map.find_covering(0x2abc, 0)->name(), "b");  // length 0: the address alone
    EXPECT_EQ(map.find_covering(0x3000, 0), nullptr);
    map.find_covering(0x2000, 4)->value = 7;  // the value may change in place
    EXPECT_EQ(map.find(0x2000)->value, 7);
}

TEST(RangeMap, OverlapQuery) {
    RangeMap<int> map;
    ASSERT_TRUE(map.insert(0x1000, 0x1000, "a", 0));
    ASSERT_TRUE(map.insert(0x3000, 0x1000, "b", 0));
    ASSERT_TRUE(map.insert(0x5000, 0x1000, "c", 0));
    EXPECT_EQ(map.first_overlap(0, 0x1000), nullptr);  // ends where a starts
    EXPECT_EQ(map.first_overlap(0, 0x1001)->name(), "a");
    EXPECT_EQ(map.first_overlap(0x1fff, 0x10)->name(), "a");
    EXPECT_EQ(map.first_overlap(0x2000, 0x1000), nullptr);  // the gap exactly
    EXPECT_EQ(map.first_overlap(0x2000, 0x1001)->name(), "b");
    EXPECT_EQ(map.first_overlap(0x1800, 0), nullptr);     // empty span
    EXPECT_EQ(map.first_overlap(0x6000, kMax), nullptr);  // wraps: cut at 2^64
    EXPECT_EQ(map.first_overlap(0x5fff, kMax)->name(), "c");
    auto all = map.overlapping(0x1800, 0x3801);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].name(), "a");
    EXPECT_EQ(all[2].name(), "c");
    EXPECT_EQ(map.overlapping(0x1800, 0x3800).size(), 2u);
    EXPECT_TRUE(map.overlapping(0x4000, 0x1000).empty());
    EXPECT_TRUE(map.entries()[1].intersects(0x3fff, 1));
    EXPECT_FALSE(map.entries()[1].intersects(0x4000, 1));
}

TEST(RangeMap, FirstFitFindsTheLowestAlignedGap) {
    RangeMap<int> map(0xffff);
    ASSERT_TRUE(map.insert(0x1000, 0x1000, "a", 0));
    ASSERT_TRUE(map.insert(0x2800, 0x800, "b", 0));
    EXPECT_EQ(map.first_fit(0x1000, 0x1000, 0), 0u);
    EXPECT_EQ(map.first_fit(0x1001, 0x1000, 0), 0x3000u);      // too big for [0, 0x1000)
    EXPECT_EQ(map.first_fit(0x800, 0x800, 0x1000), 0x2000u);   // between a and b
    EXPECT_EQ(map.first_fit(0x800, 0x1000, 0x1000), 0x2000u);  // aligned, fits before b
    EXPECT_EQ(map.first_fit(0x801, 0x1000, 0x1000), 0x3000u);  // aligned past b
    EXPECT_EQ(map.first_fit(0x100, 1, 0x27ff), 0x3000u);
    EXPECT_EQ(map.first_fit(0xd000, 0x1000, 0), 0x3000u);  // ends at the limit exactly
    EXPECT_EQ(map.first_fit(0xd001, 1, 0), std::nullopt);
    EXPECT_EQ(map.first_fit(0x1000, 0x1000, 0x3000, 0x3ffe), std::nullopt);  // caller's last
    EXPECT_EQ(map.first_fit(0x1000, 0x1000, 0x3000, 0x3fff), 0x3000u);
    EXPECT_EQ(map.first_fit(0, 1, 0), std::nullopt);  // empty
    EXPECT_EQ(map.first_fit(1, 3, 0), std::nullopt);  // not a power of two
    EXPECT_EQ(map.first_fit(1, 0, 0x1000), 0x2000u);  // align 0 = 1

    RangeMap<int> full;
    ASSERT_TRUE(full.insert(kMax - 0xfff, 0x1000, "top", 0));
    EXPECT_EQ(full.first_fit(0x1000, 0x1000, kMax - 0x2fff), kMax - 0x2fff);
    EXPECT_EQ(full.first_fit(0x1000, 0x1000, kMax - 0x1ffe), std::nullopt);  // top is taken
    EXPECT_EQ(full.first_fit(1, std::uint64_t{1} << 63, 1), std::uint64_t{1} << 63);
    EXPECT_EQ(full.first_fit(1, std::uint64_t{1} << 63, (std::uint64_t{1} << 63) + 1),
              std::nullopt);  // aligning up would wrap
}

TEST(RangeMap, HoldsMoveOnlyValuesAndHandlers) {
    RangeMap<std::unique_ptr<int>> owned;
    ASSERT_TRUE(owned.insert(0x10, 0x10, "p", std::make_unique<int>(5)));
    EXPECT_EQ(*owned.find(0x1f)->value, 5);

    RangeMap<std::function<int(std::uint64_t)>> bus(0xffff);
    ASSERT_TRUE(bus.insert(0x3f8, 8, "uart",
                           [](std::uint64_t port) { return static_cast<int>(port - 0x3f8); }));
    const auto *e = bus.find(0x3fb);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->value(0x3fb), 3);
}

// Many ranges in random order against a byte-by-byte model of a small space.
TEST(RangeMap, ManyRangesAgreeWithAModel) {
    constexpr std::uint64_t kSpace = 4096;
    RangeMap<std::uint64_t> map(kSpace - 1);
    std::vector<int> owner(kSpace, -1);            // index of the range holding each address
    std::map<std::uint64_t, std::uint64_t> sizes;  // base -> size of what the model holds
    std::mt19937_64 rng(12345);
    for (int step = 0; step < 20000; ++step) {
        const std::uint64_t base = rng() % (kSpace + 8);
        const std::uint64_t size = rng() % 24;
        if (rng() % 3 == 0 && !sizes.empty()) {
            auto it = sizes.begin();
            std::advance(it, static_cast<long>(rng() % sizes.size()));
            ASSERT_TRUE(map.erase(it->first));
            for (std::uint64_t a = it->first; a < it->first + it->second; ++a) owner[a] = -1;
            sizes.erase(it);
            continue;
        }
        bool free = size != 0 && base + size <= kSpace;
        for (std::uint64_t a = base; free && a < base + size; ++a) free = owner[a] < 0;
        auto inserted = map.insert(base, size, "r", base);
        ASSERT_EQ(inserted.has_value(), free) << base << " +" << size;
        if (free) {
            for (std::uint64_t a = base; a < base + size; ++a) owner[a] = static_cast<int>(base);
            sizes[base] = size;
        }
        const std::uint64_t probe = rng() % kSpace;
        const auto *found = map.find(probe);
        if (owner[probe] < 0) {
            EXPECT_EQ(found, nullptr);
        } else {
            ASSERT_NE(found, nullptr);
            EXPECT_EQ(found->value, static_cast<std::uint64_t>(owner[probe]));
        }
    }
    ASSERT_EQ(map.size(), sizes.size());
    auto it = sizes.begin();
    std::uint64_t previous_end = 0;
    for (const auto &e : map) {
        EXPECT_EQ(e.base(), it->first);
        EXPECT_EQ(e.size(), it->second);
        EXPECT_GE(e.base(), previous_end);
        previous_end = e.end();
        ++it;
    }
}

}  // namespace
}  // namespace guestvm

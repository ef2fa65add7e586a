#include "guestvm/cspace.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace guestvm {
namespace {

class Thing : public KernelObject {
  public:
    explicit Thing(ObjectType t, int v) : KernelObject(t), value(v) {}
    int value;
};

TEST(CSpace, SlotZeroIsNull) {
    CSpace cs;
    auto r = cs.lookup(kNullCap, ObjectType::kTcb);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::kNullCapability);
    EXPECT_EQ(cs.remove(kNullCap).error().code(), Errc::kNullCapability);
    EXPECT_EQ(cs.live(), 0u);
}

TEST(CSpace, InsertLookupAndTypeCheck) {
    CSpace cs;
    auto cap = cs.insert(std::make_shared<Thing>(ObjectType::kTcb, 7));
    ASSERT_TRUE(cap);
    EXPECT_NE(*cap, kNullCap);
    auto found = cs.lookup(*cap, ObjectType::kTcb);
    ASSERT_TRUE(found);
    EXPECT_EQ(static_cast<Thing &>(**found).value, 7);
    auto wrong = cs.lookup(*cap, ObjectType::kVcpu);
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code(), Errc::kWrongCapType);
    EXPECT_NE(wrong.error().message().find("TCB"), std::string::npos);
}

TEST(CSpace, NullObjectRefused) {
    CSpace cs;
    EXPECT_EQ(cs.insert(nullptr).error().code(), Errc::kInvalidArgument);
}

TEST(CSpace, StaleCapNeverReachesTheObjectThatReusesItsSlot) {
    CSpace cs;
    auto first = *cs.insert(std::make_shared<Thing>(ObjectType::kTcb, 1));
    ASSERT_TRUE(cs.remove(first));
    auto second = *cs.insert(std::make_shared<Thing>(ObjectType::kTcb, 2));
    // Same slot index reused, different generation.
    EXPECT_EQ(first.value() & CSpace::kIndexMask, second.value() & CSpace::kIndexMask);
    EXPECT_NE(first, second);
    auto stale = cs.lookup(first, ObjectType::kTcb);
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code(), Errc::kStaleCapability);
    EXPECT_EQ(cs.remove(first).error().code(), Errc::kStaleCapability);
    EXPECT_EQ(static_cast<Thing &>(**cs.lookup(second, ObjectType::kTcb)).value, 2);
}

TEST(CSpace, UnknownAndOutOfRangeCptrsAreStale) {
    CSpace cs;
    for (std::uint64_t bogus : {1ull, 5ull, 0xfffffull, ~0ull}) {
        auto r = cs.lookup(CPtr(bogus), ObjectType::kTcb);
        ASSERT_FALSE(r) << bogus;
        EXPECT_EQ(r.error().code(), Errc::kStaleCapability);
    }
}

TEST(CSpace, MemoryStaysFlatWhenObjectsComeAndGo) {
    CSpace cs;
    for (int round = 0; round < 1000; ++round) {
        std::vector<CPtr> caps;
        for (int i = 0; i < 8; ++i)
            caps.push_back(*cs.insert(std::make_shared<Thing>(ObjectType::kVcpu, i)));
        for (CPtr c : caps) ASSERT_TRUE(cs.remove(c));
    }
    EXPECT_EQ(cs.live(), 0u);
    EXPECT_LE(cs.slots(), 9u);  // slot 0 + the 8 reused
}

TEST(CSpace, RevokedObjectRefusesInvocations) {
    CSpace cs;
    auto obj = std::make_shared<Thing>(ObjectType::kTcb, 3);
    auto cap = *cs.insert(obj);
    auto call = [&] { return obj->with_live([]() -> Status { return {}; }); };
    EXPECT_TRUE(call());
    ASSERT_TRUE(cs.remove(cap));
    auto after = call();
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error().code(), Errc::kStaleCapability);
}

TEST(CSpace, ConcurrentInsertLookupRemove) {
    CSpace cs;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&cs, t] {
            for (int i = 0; i < 2000; ++i) {
                auto cap = *cs.insert(std::make_shared<Thing>(ObjectType::kTcb, t));
                auto found = cs.lookup(cap, ObjectType::kTcb);
                ASSERT_TRUE(found);
                ASSERT_EQ(static_cast<Thing &>(**found).value, t);
                ASSERT_TRUE(cs.remove(cap));
            }
        });
    }
    for (auto &th : threads) th.join();
    EXPECT_EQ(cs.live(), 0u);
}

}  // namespace
}  // namespace guestvm

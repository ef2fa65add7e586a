// The built-in demo guest: core 0 brings up every other core with CPU_ON; each reports and goes
// off; core 0 powers off. Checked from the guest's output and from the util queries.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>

#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

using test::Capture;

class Demo : public ::testing::TestWithParam<int> {};

TEST_P(Demo, GuestBringsUpEveryCoreAndPowersOff) {
    GUESTVM_REQUIRE_KVM(host);
    const int n = GetParam();
    Capture out;
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "demo", n, &out, &entry);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    StopInfo stop = vm->run();
    SCOPED_TRACE(out.text());
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_TRUE(out.contains("guestvm demo: core 0 up, PSCI version 1.0"));
    EXPECT_TRUE(out.contains(fmt::format("guestvm demo: bringing up {} cores", n)));
    for (int c = 1; c < n; ++c) {
        EXPECT_TRUE(out.contains(
            fmt::format("hello from core {} (context id {:#010x})", c, 0xC0DE0000u | c)))
            << "core " << c;
    }
    EXPECT_TRUE(
        out.contains(fmt::format("probe: CPU_ON(-1) -> -2, CPU_ON({}) -> -2, CPU_ON(0) -> -4", n)));
    EXPECT_TRUE(out.contains(
        fmt::format("guestvm demo: {} of {} cores came up and went off; powering off", n, n)));
    // The util interface agrees: every vCPU was claimed for exactly one core, in order of the
    // guest's requests, and none is online after the stop.
    std::set<int> ids;
    for (int core = 0; core < n; ++core) {
        Vcpu *v = vm->vcpu_for_target(core);
        ASSERT_NE(v, nullptr) << "core " << core;
        EXPECT_EQ(v->target_core(), core);
        EXPECT_FALSE(v->online());
        EXPECT_NE(v->tcb(), kNullCap);
        EXPECT_EQ(vm->vcpu_cap(v->id().value()), v->cap());
        ids.insert(v->id().value());
    }
    EXPECT_EQ(static_cast<int>(ids.size()), n);
    EXPECT_EQ(vm->free_unassigned_vcpu(), nullptr);
    EXPECT_EQ(vm->vcpu_for_target(n), nullptr);
    EXPECT_GE(vm->port_exits("platform-call"), static_cast<std::uint64_t>(3 * n));
}

INSTANTIATE_TEST_SUITE_P(Vcpus, Demo, ::testing::Values(1, 2, 4, 16),
                         [](const auto &info) { return fmt::format("n{}", info.param); });

TEST(VmmStartedSmp, EveryCoreStartedByTheVmmGreetsAndTheVmStopsWhenAllAreOff) {
    GUESTVM_REQUIRE_KVM(host);
    const int n = 4;
    Capture out;
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "hello_each", n, &out, &entry);
    ASSERT_TRUE(vm);
    for (int i = 0; i < n; ++i) {
        ASSERT_TRUE(vm->assign_target(*vm->vcpu(i), i));
        // (It may greet and go off before the next one starts: run() is not waiting yet, so
        // the VM does not stop for "all off" until every vCPU has been started.)
        ASSERT_TRUE(vm->vcpu(i)->start(entry, BootMode::kLong64, static_cast<std::uint64_t>(i)));
    }
    StopInfo stop = vm->run();
    SCOPED_TRACE(out.text());
    EXPECT_EQ(stop.reason, StopReason::kAllVcpusOff) << stop.message;
    for (auto &[vcpu, line] : out.lines_with_vcpu()) {
        EXPECT_EQ(line, fmt::format("core {}: hello", vcpu));  // each vCPU i runs core i
    }
    EXPECT_EQ(out.lines().size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) EXPECT_FALSE(vm->vcpu(i)->online());
}

}  // namespace
}  // namespace guestvm

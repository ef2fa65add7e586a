// Guest-driven SMP bring-up through the platform call: every PSCI answer from the guest's side
// and the VMM's, CPU_ON races, off-then-on again, stop during bring-up, 64 and 1024 vCPUs.
#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

struct Started {
    std::unique_ptr<Vm> vm;
    StopInfo stop;
};

// Builds a VM for `guest` with `vcpus`, lets `prepare` adjust it, starts core 0 and runs it.
template <typename Prepare>
Started run_guest(std::shared_ptr<Host> host, const std::string &guest, int vcpus,
                  test::Capture &out, Prepare &&prepare) {
    std::uint64_t entry = 0;
    Started s{test::make_vm(std::move(host), guest, vcpus, &out, &entry), {}};
    if (!s.vm) return s;
    prepare(*s.vm);
    EXPECT_TRUE(s.vm->start_core(0, entry, 0));
    s.stop = s.vm->run();
    return s;
}

Started run_guest(std::shared_ptr<Host> host, const std::string &guest, int vcpus,
                  test::Capture &out) {
    return run_guest(std::move(host), guest, vcpus, out, [](Vm &) {});
}

TEST(Psci, EveryAnswerFromTheGuestsSide) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture out;
    auto s = run_guest(host, "psci_suite", 3, out);
    ASSERT_TRUE(s.vm);
    SCOPED_TRACE(out.text());
    EXPECT_EQ(s.stop.reason, StopReason::kPowerOff) << s.stop.message;
    std::vector<std::string> expected = {
        "version -> 65536",
        "affinity 1 before -> 1",
        "affinity -1 -> -2",
        "affinity 3 -> -2",
        "affinity level 1 -> -2",
        "cpu_on entry outside RAM -> -2",
        "cpu_on -5 -> -2",
        "cpu_on 3 -> -2",
        "cpu_on 0 (self) -> -4",
        "cpu_on 1 -> 0",
        "core 1 first start (context 0xa10001)",
        "cpu_on 1 while on -> -4",
        "affinity 1 while on -> 0",
        "affinity 1 after off -> 1",
        "cpu_on 1 again -> 0",
        "core 1 second start (context 0xb20001)",
        "cpu_on 2 -> 0",
        "core 2 up (context 0xc30002)",
        "unknown -> -1",
        "affinity 0 -> 0",
        "suite done",
    };
    // Core 0's lines are in program order; a secondary's line lands between its CPU_ON and the
    // next line core 0 prints after waiting for it, so the whole sequence is deterministic
    // except that "core 1 first start" may come before or after "cpu_on 1 -> 0".
    auto lines = out.lines();
    ASSERT_EQ(lines.size(), expected.size());
    std::multiset<std::string> got(lines.begin(), lines.end()),
        want(expected.begin(), expected.end());
    EXPECT_EQ(got, want);
    // The VMM's side: core 1 kept its vCPU across off and on; nothing is online now.
    Vcpu *c1 = s.vm->vcpu_for_target(1);
    ASSERT_NE(c1, nullptr);
    EXPECT_EQ(c1->id().value(), 1);
    EXPECT_EQ(s.vm->vcpu_for_target(2)->id().value(), 2);
    EXPECT_EQ(s.vm->vcpu_for_target(3), nullptr);
    EXPECT_FALSE(c1->online());
    EXPECT_EQ(s.vm->free_unassigned_vcpu(), nullptr);
}

TEST(Psci, InternalFailureWhenNoFreeVcpuIsLeft) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture out;
    // vCPU 2 serves core 5, so when the guest asks for core 2 no unassigned vCPU is left.
    auto s = run_guest(host, "psci_suite", 3, out,
                       [](Vm &vm) { ASSERT_TRUE(vm.assign_target(*vm.vcpu(2), 5)); });
    ASSERT_TRUE(s.vm);
    EXPECT_TRUE(out.contains("cpu_on 2 -> -6")) << out.text();
    EXPECT_FALSE(out.contains("core 2 up"));
    EXPECT_EQ(s.vm->vcpu_for_target(2), nullptr);
    EXPECT_EQ(s.vm->vcpu_for_target(5), s.vm->vcpu(2));
    EXPECT_FALSE(s.vm->vcpu(2)->online());
}

class Race : public ::testing::TestWithParam<int> {};

TEST_P(Race, ConcurrentCpuOnNeverClaimsAVcpuTwiceNorStartsACoreTwice) {
    GUESTVM_REQUIRE_KVM(host);
    const int n = GetParam();
    if (n > host->max_vcpus()) GTEST_SKIP() << "KVM allows only " << host->max_vcpus() << " vCPUs";
    test::Capture out;
    auto s = run_guest(host, "smp_race", n, out);
    ASSERT_TRUE(s.vm);
    EXPECT_EQ(s.stop.reason, StopReason::kPowerOff) << s.stop.message;
    EXPECT_TRUE(
        out.contains(fmt::format("race: {} cores, X started by 1 call(s), {} already-on, 0 other, "
                                 "X ran 1 time(s), tree failures 0",
                                 n, n - 2)))
        << out.text();
    std::set<Vcpu *> seen;
    for (int core = 0; core < n; ++core) {
        Vcpu *v = s.vm->vcpu_for_target(core);
        ASSERT_NE(v, nullptr) << "core " << core << " lost";
        EXPECT_EQ(v->target_core(), core);
        EXPECT_TRUE(seen.insert(v).second) << "vCPU " << v->id().value() << " claimed twice";
        EXPECT_FALSE(v->online());
    }
    EXPECT_EQ(s.vm->free_unassigned_vcpu(), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Cores, Race, ::testing::Values(3, 8, 64, 1024),
                         [](const auto &info) { return fmt::format("n{}", info.param); });

TEST(Smp, DemoAt64And1024Vcpus) {
    GUESTVM_REQUIRE_KVM(host);
    for (int n : {64, 1024}) {
        if (n > host->max_vcpus()) continue;
        test::Capture out;
        auto s = run_guest(host, "demo", n, out);
        ASSERT_TRUE(s.vm);
        EXPECT_EQ(s.stop.reason, StopReason::kPowerOff) << s.stop.message;
        EXPECT_TRUE(
            out.contains(fmt::format("guestvm demo: {} of {} cores came up and went off", n, n)));
        int greetings = 0;
        for (auto &[vcpu, line] : out.lines_with_vcpu()) {
            if (line.rfind("hello from core ", 0) != 0) continue;
            ++greetings;
            int core = std::stoi(line.substr(16));
            // The vCPU that printed the line is the one the util interface says serves that core.
            EXPECT_EQ(s.vm->vcpu_for_target(core)->id().value(), vcpu);
        }
        EXPECT_EQ(greetings, n - 1);
    }
}

std::size_t count_dir(const char *path) {
    std::size_t n = 0;
    if (DIR *d = ::opendir(path)) {
        while (::readdir(d) != nullptr) ++n;
        ::closedir(d);
    }
    return n;
}

TEST(Smp, StopDuringBringUpJoinsEveryThreadAndClosesEveryFd) {
    GUESTVM_REQUIRE_KVM(host);
    // The first round is a warm-up: runtimes (TSan's, for one) start helper threads lazily.
    std::size_t fds_before = 0, threads_before = 0;
    bool warm = false;
    for (auto delay : {0ms, 0ms, 2ms, 10ms, 40ms}) {
        std::uint64_t entry = 0;
        test::Capture out;
        auto vm = test::make_vm(host, "demo", 256, &out, &entry);
        ASSERT_TRUE(vm);
        ASSERT_TRUE(vm->start_core(0, entry, 0));
        std::thread stopper([&] {
            std::this_thread::sleep_for(delay);
            vm->stop({StopReason::kRequested, "stop during bring-up"});
        });
        StopInfo stop = vm->run();
        stopper.join();
        EXPECT_EQ(stop.reason, StopReason::kRequested);
        for (int i = 0; i < vm->vcpu_count(); ++i) {
            EXPECT_FALSE(vm->vcpu(i)->online());
            EXPECT_EQ(vm->vcpu(i)->state(), VcpuState::kStopped);
        }
        vm.reset();
        if (!warm) {
            fds_before = count_dir("/proc/self/fd");
            threads_before = count_dir("/proc/self/task");
            warm = true;
            continue;
        }
        EXPECT_EQ(count_dir("/proc/self/fd"), fds_before)
            << "after stopping at " << delay.count() << " ms";
        EXPECT_EQ(count_dir("/proc/self/task"), threads_before);
    }
}

}  // namespace
}  // namespace guestvm

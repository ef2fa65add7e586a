// The util queries hammered from other threads while VMs start, bring up cores and stop
// (meant for the tsan preset as much as for the default build).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kvm_fixture.hpp"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/boot.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

TEST(Concurrency, QueriesWhileTheGuestBringsUpCoresAndStops) {
    GUESTVM_REQUIRE_KVM(host);
    constexpr int kVcpus = 8;
    for (int round = 0; round < 3; ++round) {
        std::uint64_t entry = 0;
        auto vm = test::make_vm(host, "demo", kVcpus, nullptr, &entry);
        ASSERT_TRUE(vm);
        std::atomic<bool> done{false};
        std::atomic<long> observations{0};
        std::vector<std::thread> readers;
        for (int t = 0; t < 3; ++t) {
            readers.emplace_back([&, t] {
                long seen_online = 0;
                while (!done.load(std::memory_order_acquire)) {
                    for (int i = -1; i <= kVcpus; ++i) {
                        CPtr cap = vm->vcpu_cap(i);
                        if (i < 0 || i >= kVcpus) {
                            ASSERT_EQ(cap, kNullCap);
                        } else
                            ASSERT_NE(cap, kNullCap);
                        if (Vcpu *v = vm->vcpu_for_target(i)) {
                            ASSERT_EQ(v->target_core(), i);  // never a half-assigned vCPU
                            seen_online += v->online();
                            ASSERT_NE(v->tcb(), kNullCap);
                        }
                    }
                    if (Vcpu *f = vm->free_unassigned_vcpu()) {
                        // May be claimed right after we looked, but was free when published.
                        ASSERT_GE(f->id().value(), 0);
                    }
                    observations.fetch_add(1, std::memory_order_relaxed);
                    if (t == 0) std::this_thread::yield();
                }
                (void)seen_online;
            });
        }
        ASSERT_TRUE(vm->start_core(0, entry, 0));
        StopInfo stop = vm->run();
        done = true;
        for (auto &r : readers) r.join();
        EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
        EXPECT_GT(observations.load(), 0);
        for (int c = 0; c < kVcpus; ++c) ASSERT_NE(vm->vcpu_for_target(c), nullptr);
    }
}

TEST(Concurrency, ClaimsRacingForCoresNeverShareAVcpu) {
    GUESTVM_REQUIRE_KVM(host);
    constexpr int kVcpus = 64;
    auto vm = build_machine(host, test::config("claims", 4 << 20, kVcpus));
    ASSERT_TRUE(vm);
    std::vector<std::thread> threads;
    std::vector<std::atomic<Vcpu *>> got(kVcpus);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            // Each thread claims every core, in a different order.
            for (int k = 0; k < kVcpus; ++k) {
                int core = (k * (2 * t + 1) + t) % kVcpus;
                auto v = (*vm)->claim_vcpu_for_core(core);
                ASSERT_TRUE(v);
                Vcpu *expected = nullptr;
                if (!got[core].compare_exchange_strong(expected, *v)) {
                    ASSERT_EQ(expected, *v);
                }
            }
        });
    }
    for (auto &th : threads) th.join();
    std::vector<int> owners(kVcpus, -1);
    for (int core = 0; core < kVcpus; ++core) {
        Vcpu *v = (*vm)->vcpu_for_target(core);
        ASSERT_EQ(v, got[core].load());
        ASSERT_EQ(owners[v->id().value()], -1) << "vCPU claimed twice";
        owners[v->id().value()] = core;
    }
    EXPECT_EQ((*vm)->free_unassigned_vcpu(), nullptr);
    EXPECT_EQ((*vm)->claim_vcpu_for_core(kVcpus).error().code(), Errc::kResourceExhausted);
    EXPECT_EQ((*vm)->claim_vcpu_for_core(-1).error().code(), Errc::kInvalidArgument);
    EXPECT_EQ((*vm)->claim_vcpu_for_core((*vm)->vcpu_capacity()).error().code(),
              Errc::kInvalidArgument);
}

TEST(Concurrency, CApiQueriesDuringRunAndStop) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = std::make_unique<vm_t>();
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 16u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(vm.get(), "c-hammer", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(vm.get(), test::guest_path("spin").c_str()), 0);
    for (int i = 0; i < 4; ++i) ASSERT_NE(vm_create_vcpu(vm.get(), 10), nullptr);
    std::atomic<bool> done{false};
    std::thread reader([&] {
        while (!done) {
            for (int i = -2; i < 6; ++i) {
                vm_vcpu_t *v = vm_vcpu_for_target_cpu(vm.get(), i);
                if (v) {
                    ASSERT_EQ(vm_get_vcpu_tcb(v), v->tcb.tcb.cptr);
                }
                (void)is_vcpu_online(v);
                (void)vm_get_vcpu(vm.get(), i);
            }
            (void)vm_find_free_unassigned_vcpu(vm.get());
        }
    });
    for (int core = 0; core < 4; ++core) {
        vm_vcpu_t *v = guestvm_vm_claim_vcpu_for_target(vm.get(), core);
        ASSERT_NE(v, nullptr);
        ASSERT_EQ(vcpu_start(v), 0) << guestvm_last_error();
    }
    std::thread stopper([&] { guestvm_vm_stop(vm.get()); });
    EXPECT_EQ(vm_run(vm.get()), 0);
    stopper.join();
    done = true;
    reader.join();
    EXPECT_EQ(guestvm_vm_stop_reason(vm.get(), nullptr, 0), GUESTVM_STOP_REQUESTED);
    ASSERT_EQ(vm_destroy(vm.get()), 0);
}

// vm_create_vcpu from several threads at once: every vCPU gets its own id and mirror.
TEST(Concurrency, CApiCreatesVcpusFromSeveralThreads) {
    GUESTVM_REQUIRE_KVM(host);
    constexpr int kThreads = 4, kEach = 16;
    auto vm = std::make_unique<vm_t>();
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(vm.get(), "creators", &opts), 0) << guestvm_last_error();
    std::atomic<int> failures{0};
    std::vector<std::thread> creators;
    for (int t = 0; t < kThreads; ++t) {
        creators.emplace_back([&] {
            for (int i = 0; i < kEach; ++i) {
                if (vm_create_vcpu(vm.get(), 100) == nullptr) ++failures;
            }
        });
    }
    for (auto &c : creators) c.join();
    EXPECT_EQ(failures.load(), 0);
    ASSERT_EQ(vm->num_vcpus, static_cast<unsigned>(kThreads * kEach));
    for (int id = 0; id < kThreads * kEach; ++id) {
        ASSERT_NE(vm->vcpus[id], nullptr) << id;
        EXPECT_EQ(vm->vcpus[id]->vcpu_id, static_cast<unsigned>(id));
        EXPECT_EQ(vm_get_vcpu(vm.get(), id), vm->vcpus[id]->vcpu.cptr);
    }
    vm_destroy(vm.get());
}

// A guest spinning CPU_ON on core 1 starts vCPU 1 the moment vm_create_vcpu publishes it; the
// vm_vcpu_t its port handler is given must already be whole (it was not: 2 in 1500 runs saw a
// half-made one).
struct RaceSeen {
    vm_t *vm;
    std::atomic<int> whole{0};
    std::atomic<int> broken{0};
};

ioport_fault_result_t check_reporter(vm_vcpu_t *vcpu, void *cookie, unsigned int, unsigned int,
                                     unsigned int) {
    auto *seen = static_cast<RaceSeen *>(cookie);
    const bool whole = vcpu != nullptr && vcpu->vcpu_id == 1 && vcpu->vm == seen->vm &&
                       seen->vm->vcpus[1] == vcpu && vm_get_vcpu_tcb(vcpu) != seL4_CapNull &&
                       vcpu->vcpu.cptr == vm_get_vcpu(seen->vm, 1) && vcpu->vcpu.cptr != 0;
    ++(whole ? seen->whole : seen->broken);
    return IO_FAULT_HANDLED;
}

TEST(Concurrency, CApiVcpuStartedByTheGuestAsItIsCreatedIsWhole) {
    GUESTVM_REQUIRE_KVM(host);
    using namespace std::chrono_literals;
    for (int round = 0; round < 20; ++round) {
        SCOPED_TRACE(round);
        auto vm = std::make_unique<vm_t>();
        guestvm_vm_options_t opts{};
        opts.ram_bytes = 4u << 20;
        opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
        ASSERT_EQ(guestvm_vm_init(vm.get(), "race", &opts), 0) << guestvm_last_error();
        ASSERT_EQ(guestvm_vm_load_elf(vm.get(), test::guest_path("cpu_on_race").c_str()), 0)
            << guestvm_last_error();
        RaceSeen seen{vm.get()};
        vm_ioport_interface_t iface{&seen, nullptr, check_reporter, "reporter"};
        ASSERT_EQ(vm_io_port_add_handler(vm.get(), vm_ioport_range_t{0x510, 0x510}, iface), 0);
        vm_vcpu_t *v0 = vm_create_vcpu(vm.get(), 100);
        ASSERT_NE(v0, nullptr) << guestvm_last_error();
        ASSERT_EQ(vm_assign_vcpu_target(v0, 0), 0) << guestvm_last_error();
        ASSERT_EQ(vcpu_start(v0), 0) << guestvm_last_error();
        std::this_thread::sleep_for(std::chrono::milliseconds(round % 4));  // CPU_ON spins
        ASSERT_NE(vm_create_vcpu(vm.get(), 100), nullptr) << guestvm_last_error();
        for (auto t0 = std::chrono::steady_clock::now();
             seen.whole + seen.broken == 0 && std::chrono::steady_clock::now() - t0 < 5s;) {
            std::this_thread::sleep_for(1ms);
        }
        ASSERT_EQ(guestvm_vm_stop(vm.get()), 0);
        vm_run(vm.get());
        EXPECT_EQ(seen.broken.load(), 0);
        EXPECT_EQ(seen.whole.load(), 1);
        vm_destroy(vm.get());
    }
}

TEST(Scale, QueriesAt1024Vcpus) {
    GUESTVM_REQUIRE_KVM(host);
    const int n = std::min(1024, host->max_vcpus());
    auto vm = build_machine(host, test::config("wide", 4 << 20, n));
    ASSERT_TRUE(vm) << vm.error().message();
    for (int core = n - 1; core >= 0; --core) ASSERT_TRUE((*vm)->claim_vcpu_for_core(core));
    // Claimed from the highest core down: vCPU i serves core n-1-i.
    for (int id = 0; id < n; ++id) {
        EXPECT_EQ((*vm)->vcpu_for_target(n - 1 - id)->id().value(), id);
        EXPECT_NE((*vm)->vcpu_cap(id), kNullCap);
    }
    EXPECT_EQ((*vm)->vcpu_cap(n), kNullCap);
    EXPECT_EQ((*vm)->free_unassigned_vcpu(), nullptr);
}

}  // namespace
}  // namespace guestvm

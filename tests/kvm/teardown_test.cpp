// vm_destroy gives everything back: cycles of init → vCPUs → RAM → start → destroy end with the
// process's descriptors, threads and resident memory at their baseline, and the vm_t can be
// initialised again each time. (bench/teardown_bench runs the full 10 000 cycles.)
#include <gtest/gtest.h>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guestvm.h"
#include "support/process_usage.hpp"

namespace guestvm {
namespace {

// One cycle on a reused vm_t: 2 vCPUs, 8 MiB of RAM with an image loaded, one vCPU running.
void cycle(vm_t &vm) {
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "cycle"), 0) << guestvm_last_error();
    vm_vcpu_t *a = vm_create_vcpu(&vm, 100);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(vm_create_vcpu(&vm, 100), nullptr);
    ASSERT_EQ(vm_ram_register_at(&vm, 0, 8 << 20, false), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(&vm, test::guest_path("spin").c_str()), 0);
    ASSERT_EQ(vm_assign_vcpu_target(a, 0), 0);
    ASSERT_EQ(vcpu_start(a), 0) << guestvm_last_error();  // a thread in KVM_RUN at destroy
    ASSERT_EQ(vm_destroy(&vm), 0) << guestvm_last_error();
    ASSERT_EQ(vm.guestvm, nullptr);
    ASSERT_EQ(vm.num_vcpus, 0u);
}

TEST(Teardown, CyclesEndAtTheBaseline) {
    GUESTVM_REQUIRE_KVM(host);
    vm_t vm{};
    for (int i = 0; i < 20; ++i) cycle(vm);  // warm-up: allocator pools, the Host
    const test::ProcessUsage before = test::process_usage();
    constexpr int kCycles = 300;
    for (int i = 0; i < kCycles && !HasFatalFailure(); ++i) cycle(vm);
    const test::ProcessUsage after = test::process_usage();
    EXPECT_EQ(after.fds, before.fds);
    EXPECT_EQ(after.threads, before.threads);
    // Every cycle mapped 8 MiB of guest RAM and started a thread: none of it may stay. (Under
    // AddressSanitizer freed memory sits in its quarantine, so resident memory says nothing
    // there; LeakSanitizer checks the heap instead.)
#ifndef __SANITIZE_ADDRESS__
    EXPECT_LT(after.rss_kib, before.rss_kib + 4096)
        << "resident memory grew from " << before.rss_kib << " KiB to " << after.rss_kib;
#endif
    EXPECT_EQ(vm_destroy(&vm), -1);  // already destroyed
}

}  // namespace
}  // namespace guestvm

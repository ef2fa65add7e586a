// vm_destroy gives everything back: cycles of init → vCPUs → RAM → start → destroy end with the
// process's descriptors, threads and resident memory at their baseline, and the vm_t can be
// initialised again each time. (bench/teardown_bench runs the full 10 000 cycles.)
#include <gtest/gtest.h>

#include <cstring>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_irq_controller.h"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guestvm.h"
#include "support/process_usage.hpp"

namespace guestvm {
namespace {

void on_ack(vm_vcpu_t *, int, void *) {}
memory_fault_result_t on_fault(vm_t *, vm_vcpu_t *, uintptr_t, size_t, void *) {
    return FAULT_HANDLED;
}

// One cycle on a reused vm_t: an interrupt controller with an EOI callback (a watcher thread
// and eventfds), 2 vCPUs, 8 MiB of RAM with an image loaded, a 2 MiB frame (written to, so it
// is resident) mapped into a reservation, an anonymous pool with a reservation in it, and one
// vCPU running.
void cycle(vm_t &vm) {
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "cycle"), 0) << guestvm_last_error();
    ASSERT_EQ(vm_create_default_irq_controller(&vm), 0) << guestvm_last_error();
    vm_vcpu_t *a = vm_create_vcpu(&vm, 100);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(vm_create_vcpu(&vm, 100), nullptr);
    ASSERT_EQ(vm_ram_register_at(&vm, 0, 8 << 20, false), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(&vm, test::guest_path("spin").c_str()), 0);
    ASSERT_EQ(vm_register_irq(a, 4, on_ack, nullptr), 0) << guestvm_last_error();
    seL4_CPtr frame = guestvm_frame_alloc(21);
    ASSERT_NE(frame, seL4_CapNull);
    size_t frame_size = 0;
    std::memset(guestvm_frame_data(frame, &frame_size), 0x5a, 2 << 20);
    vm_memory_reservation_t *r = vm_reserve_memory_at(&vm, 0xd0000000, 2 << 20, on_fault, nullptr);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(vm_map_reservation_frames(&vm, r, &frame, 1, 21), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_frame_free(frame), 0);  // the mapping keeps the memory until destroy
    ASSERT_EQ(vm_memory_make_anon(&vm, 0xe0000000, 1 << 20), 0);
    uintptr_t anon = 0;
    ASSERT_NE(vm_reserve_anon_memory(&vm, 4096, 4096, on_fault, nullptr, &anon), nullptr);
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
    // Every cycle mapped 8 MiB of guest RAM, made 2 MiB of frame memory resident and started
    // two threads: none of it may stay. (Under
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

// Range checks of libsel4vm's C memory calls: RAM bookkeeping refuses ranges that wrap or pass
// guest-physical space, anonymous pools lie inside guest-physical space, and placing memory in
// the pools tries every pool (and every gap) before giving up.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "capi/capi_internal.hpp"
#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

constexpr std::uint64_t kLimit = GuestVSpace::kAddressLimit;

memory_fault_result_t ignore(vm_t *, vm_vcpu_t *, uintptr_t, size_t, void *) {
    return FAULT_HANDLED;
}

// A C VM with no vCPU run: only its memory is used.
struct CVm {
    vm_t vm{};
    bool ok = false;
    explicit CVm(const char *name) {
        vspace_t none{};
        ok = vm_init(&vm, nullptr, nullptr, none, nullptr, 0, name) == 0;
    }
    ~CVm() {
        if (ok) {
            EXPECT_EQ(vm_destroy(&vm), 0);
        }
    }
    /// Takes [base, base+size) in the guest vspace through the C++ API, behind the C layer.
    Status occupy(std::uint64_t base, std::uint64_t size) {
        return vm.guestvm->vm->vspace().reserve(
            GuestPhysAddr(base), size, "c++",
            [](ExitContext &, MmioAccess &) { return ExitAction::kContinue; });
    }
};

std::uint64_t total_ram(const vm_t &vm) {
    std::uint64_t total = 0;
    for (int i = 0; i < vm.mem.num_ram_regions; ++i) total += vm.mem.ram_regions[i].size;
    return total;
}

TEST(CapiRanges, RamFreeRefusesAWrappingRange) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c("ram-free-wrap");
    ASSERT_TRUE(c.ok) << guestvm_last_error();
    vm_t &vm = c.vm;
    ASSERT_EQ(vm_ram_register_at(&vm, 0, 2 << 20, false), 0);
    vm_ram_mark_allocated(&vm, 0, 2 << 20);
    ASSERT_EQ(vm.mem.num_ram_regions, 1);
    ASSERT_TRUE(vm.mem.ram_regions[0].allocated);

    vm_ram_free(&vm, 0x1000, SIZE_MAX);  // start + bytes wraps
    EXPECT_NE(std::string(guestvm_last_error()).find("wraps"), std::string::npos)
        << guestvm_last_error();
    vm_ram_free(&vm, 0x1000, kLimit);  // ends past guest-physical space
    vm_ram_free(&vm, kLimit, 0x1000);  // starts there
    // Nothing changed: one allocated region of 2 MiB, nothing to hand out.
    ASSERT_EQ(vm.mem.num_ram_regions, 1);
    EXPECT_EQ(vm.mem.ram_regions[0].start, 0u);
    EXPECT_EQ(vm.mem.ram_regions[0].size, 2u << 20);
    EXPECT_TRUE(vm.mem.ram_regions[0].allocated);
    EXPECT_EQ(total_ram(vm), 2u << 20);
    EXPECT_EQ(vm_ram_allocate(&vm, std::uint64_t{1} << 40), 0u);
    EXPECT_EQ(vm_ram_allocate(&vm, 0x1000), 0u);

    // A range that reaches past the RAM but stays inside guest-physical space still frees
    // the RAM part.
    vm_ram_free(&vm, 0x1000, kLimit - 0x1000);
    ASSERT_EQ(vm.mem.num_ram_regions, 2);
    EXPECT_TRUE(vm.mem.ram_regions[0].allocated);
    EXPECT_EQ(vm.mem.ram_regions[0].size, 0x1000u);
    EXPECT_FALSE(vm.mem.ram_regions[1].allocated);
    EXPECT_EQ(vm.mem.ram_regions[1].size, (2u << 20) - 0x1000);
    EXPECT_EQ(total_ram(vm), 2u << 20);
    EXPECT_EQ(vm_ram_allocate(&vm, 2 << 20), 0u);  // only 2 MiB - 4 KiB is free
    EXPECT_EQ(vm_ram_allocate(&vm, 0x1000), 0x1000u);
}

TEST(CapiRanges, AnonymousPoolsLieInsideGuestPhysicalSpace) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c("anon-limit");
    ASSERT_TRUE(c.ok) << guestvm_last_error();
    vm_t &vm = c.vm;
    EXPECT_EQ(vm_memory_make_anon(&vm, 0xfffffffffff00000u, 0x80000), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("passes the limit"), std::string::npos)
        << guestvm_last_error();
    EXPECT_EQ(vm_memory_make_anon(&vm, kLimit - 0x1000, 0x2000), -1);      // its end is past it
    EXPECT_EQ(vm_memory_make_anon(&vm, 0xfffffffffffff000u, 0x1000), -1);  // ends at 2^64
    // The refused pools left nothing behind: reservations go to the good one.
    ASSERT_EQ(vm_memory_make_anon(&vm, 0x40000000, 0x10000), 0) << guestvm_last_error();
    uintptr_t at = 0;
    ASSERT_NE(vm_reserve_anon_memory(&vm, 0x1000, 0x1000, ignore, nullptr, &at), nullptr)
        << guestvm_last_error();
    EXPECT_EQ(at, 0x40000000u);
    EXPECT_EQ(vm_ram_register(&vm, 0x2000), 0x40001000u) << guestvm_last_error();
    // A pool that ends exactly at the limit is inside.
    ASSERT_EQ(vm_memory_make_anon(&vm, kLimit - 0x1000, 0x1000), 0) << guestvm_last_error();
    EXPECT_NE(vm_reserve_anon_memory(&vm, 0x1000, 0x1000, ignore, nullptr, &at), nullptr);
    EXPECT_EQ(at, 0x40003000u);  // the first pool still comes first
}

TEST(CapiRanges, AllocationTriesEveryPoolAndEveryGap) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c("anon-every-pool");
    ASSERT_TRUE(c.ok) << guestvm_last_error();
    vm_t &vm = c.vm;
    ASSERT_EQ(vm_memory_make_anon(&vm, 0x40000000, 0x10000), 0);
    ASSERT_EQ(vm_memory_make_anon(&vm, 0x50000000, 0x10000), 0);
    // Something the C layer did not place sits in the middle of the first pool.
    ASSERT_TRUE(c.occupy(0x40004000, 0x1000));
    uintptr_t at = 0;
    ASSERT_NE(vm_reserve_anon_memory(&vm, 0x4000, 0x1000, ignore, nullptr, &at), nullptr)
        << guestvm_last_error();
    EXPECT_EQ(at, 0x40000000u);
    ASSERT_NE(vm_reserve_anon_memory(&vm, 0x4000, 0x1000, ignore, nullptr, &at), nullptr)
        << guestvm_last_error();
    EXPECT_EQ(at, 0x40005000u);  // past what sits in the pool
    // The rest of the first pool is taken behind the C layer's back: the second pool serves.
    ASSERT_TRUE(c.occupy(0x40009000, 0x7000));
    ASSERT_NE(vm_reserve_anon_memory(&vm, 0x1000, 0x1000, ignore, nullptr, &at), nullptr)
        << guestvm_last_error();
    EXPECT_EQ(at, 0x50000000u);
    EXPECT_EQ(vm_ram_register(&vm, 0x2000), 0x50001000u) << guestvm_last_error();
    // Too large for any pool.
    EXPECT_EQ(vm_reserve_anon_memory(&vm, 0x10000, 0x1000, ignore, nullptr, &at), nullptr);
    EXPECT_NE(std::string(guestvm_last_error()).find("no anonymous pool"), std::string::npos)
        << guestvm_last_error();
    EXPECT_EQ(vm_ram_register(&vm, 0x10000), 0u);
}

}  // namespace
}  // namespace guestvm

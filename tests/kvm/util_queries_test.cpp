// The seven guest VM util queries, through the C API (libsel4vm's names) and the C++ API, on
// every kind of bad or edge input.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <memory>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

TEST(UtilQueries, NullHandlesGiveNullOrCapNull) {
    // No KVM needed: NULL is answered before anything else.
    EXPECT_EQ(vm_get_vcpu_tcb(nullptr), seL4_CapNull);
    EXPECT_EQ(vm_get_vcpu(nullptr, 0), seL4_CapNull);
    EXPECT_EQ(vm_vcpu_for_target_cpu(nullptr, 0), nullptr);
    EXPECT_EQ(vm_find_free_unassigned_vcpu(nullptr), nullptr);
    EXPECT_FALSE(is_vcpu_online(nullptr));
    EXPECT_EQ(vm_get_vspace(nullptr), nullptr);
    EXPECT_EQ(vm_get_vmm_vspace(nullptr), nullptr);
    vm_t zeroed{};  // never initialised
    EXPECT_EQ(vm_get_vcpu(&zeroed, 0), seL4_CapNull);
    EXPECT_EQ(vm_vcpu_for_target_cpu(&zeroed, 0), nullptr);
    EXPECT_EQ(vm_find_free_unassigned_vcpu(&zeroed), nullptr);
    EXPECT_EQ(vm_get_vspace(&zeroed), nullptr);
    EXPECT_EQ(vm_get_vmm_vspace(&zeroed), nullptr);
    EXPECT_EQ(vm_run(nullptr), -1);
    EXPECT_EQ(vcpu_start(nullptr), -1);
    EXPECT_EQ(vm_assign_vcpu_target(nullptr, 0), -1);
    EXPECT_EQ(vm_create_vcpu(nullptr, 0), nullptr);
    EXPECT_EQ(vm_init(nullptr, nullptr, nullptr, vspace_t{}, nullptr, 0, "x"), -1);
    EXPECT_EQ(vm_destroy(nullptr), -1);
    EXPECT_EQ(vm_destroy(&zeroed), -1);
    EXPECT_NE(std::string(guestvm_last_error()), "");
}

// A caller-allocated vm_t, destroyed at scope exit.
struct CVm {
    std::unique_ptr<vm_t> vm = std::make_unique<vm_t>();
    ~CVm() {
        if (vm->guestvm) vm_destroy(vm.get());
    }
    // guestvm_vm_init with `ram` bytes of RAM; loads `guest` when given. True on success.
    bool init(const char *name, std::size_t ram, const char *guest = nullptr) {
        guestvm_vm_options_t opts{};
        opts.ram_bytes = ram;
        opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
        if (guestvm_vm_init(vm.get(), name, &opts) != 0) return false;
        return guest == nullptr ||
               guestvm_vm_load_elf(vm.get(), test::guest_path(guest).c_str()) == 0;
    }
};

TEST(UtilQueries, CApiOnIdsAndCores) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c;
    vm_t *vm = c.vm.get();
    ASSERT_EQ(vm_init(vm, nullptr, nullptr, vspace_t{}, nullptr, 0, "util"), 0)
        << guestvm_last_error();
    EXPECT_EQ(vm_find_free_unassigned_vcpu(vm), nullptr);  // no vCPUs yet
    EXPECT_EQ(vm_get_vcpu(vm, 0), seL4_CapNull);
    vm_vcpu_t *v[3];
    for (int i = 0; i < 3; ++i) {
        v[i] = vm_create_vcpu(vm, 100);
        ASSERT_NE(v[i], nullptr) << guestvm_last_error();
        EXPECT_EQ(v[i]->vcpu_id, static_cast<unsigned>(i));
        EXPECT_EQ(v[i]->vm, vm);
        EXPECT_EQ(v[i]->target_cpu, -1);
        EXPECT_EQ(vm->vcpus[i], v[i]);
    }
    EXPECT_EQ(vm->num_vcpus, 3u);
    // vm_get_vcpu: the VCPU cap for ids 0..2, CapNull otherwise.
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(vm_get_vcpu(vm, i), v[i]->vcpu.cptr);
        EXPECT_NE(vm_get_vcpu(vm, i), seL4_CapNull);
        EXPECT_EQ(vm_get_vcpu_tcb(v[i]), v[i]->tcb.tcb.cptr);
        EXPECT_NE(vm_get_vcpu_tcb(v[i]), vm_get_vcpu(vm, i));
    }
    for (int bad : {-1, -1000, INT_MIN, 3, 4, 1024, INT_MAX}) {
        EXPECT_EQ(vm_get_vcpu(vm, bad), seL4_CapNull) << bad;
        EXPECT_EQ(vm_vcpu_for_target_cpu(vm, bad), nullptr) << bad;
    }
    // Unassigned: nothing for any core; the free one is the lowest id.
    EXPECT_EQ(vm_vcpu_for_target_cpu(vm, 0), nullptr);
    EXPECT_EQ(vm_find_free_unassigned_vcpu(vm), v[0]);
    ASSERT_EQ(vm_assign_vcpu_target(v[1], 0), 0);
    EXPECT_EQ(v[1]->target_cpu, 0);
    EXPECT_EQ(vm_vcpu_for_target_cpu(vm, 0), v[1]);
    EXPECT_EQ(vm_find_free_unassigned_vcpu(vm), v[0]);
    EXPECT_EQ(vm_assign_vcpu_target(v[0], 0), -1);   // core taken
    EXPECT_EQ(vm_assign_vcpu_target(v[1], 2), -1);   // vCPU already assigned
    EXPECT_EQ(vm_assign_vcpu_target(v[0], -1), -1);  // negative core
    EXPECT_EQ(vm_assign_vcpu_target(v[0], GUESTVM_MAX_VCPUS), -1);
    ASSERT_EQ(vm_assign_vcpu_target(v[0], 7), 0);  // any core id in range, not only < n
    EXPECT_EQ(vm_vcpu_for_target_cpu(vm, 7), v[0]);
    EXPECT_EQ(vm_find_free_unassigned_vcpu(vm), v[2]);
    ASSERT_EQ(vm_assign_vcpu_target(v[2], 1), 0);
    EXPECT_EQ(vm_find_free_unassigned_vcpu(vm), nullptr);
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(is_vcpu_online(v[i]));
    // The claim step: assigned core → its vCPU; no free vCPU left → NULL.
    EXPECT_EQ(guestvm_vm_claim_vcpu_for_target(vm, 7), v[0]);
    EXPECT_EQ(guestvm_vm_claim_vcpu_for_target(vm, 2), nullptr);
}

TEST(UtilQueries, VspacesAreUsable) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c;
    vm_t *vm = c.vm.get();
    ASSERT_TRUE(c.init("vspaces", 8u << 20)) << guestvm_last_error();
    vspace_t *guest = vm_get_vspace(vm);
    vspace_t *vmm = vm_get_vmm_vspace(vm);
    ASSERT_NE(guest, nullptr);
    ASSERT_NE(vmm, nullptr);
    EXPECT_EQ(guest, &vm->mem.vm_vspace);
    EXPECT_EQ(vmm, &vm->mem.vmm_vspace);
    guestvm_region_t regions[4];
    ASSERT_EQ(guestvm_vspace_regions(guest, regions, 4), 1);
    EXPECT_EQ(regions[0].start, 0u);
    EXPECT_EQ(regions[0].size, 8u << 20);
    ASSERT_EQ(vm_ram_register_at(vm, 0x100000000ull, 2u << 20, false), 0) << guestvm_last_error();
    EXPECT_EQ(vm_ram_register_at(vm, 0x1000, 0x1000, false), -1);  // overlaps RAM at 0
    ASSERT_EQ(guestvm_vspace_regions(guest, regions, 4), 2);
    EXPECT_EQ(regions[1].start, 0x100000000ull);
    ASSERT_EQ(guestvm_vspace_regions(vmm, regions, 4), 2);
    // Guest-physical → host and back through the VMM vspace.
    std::uint64_t host_addr = 0, gpa = 0;
    ASSERT_EQ(guestvm_vspace_translate(guest, 0x123456, 16, &host_addr), 0);
    const std::uint32_t pattern = 0xfeedf00d;
    std::memcpy(reinterpret_cast<void *>(host_addr), &pattern, sizeof pattern);
    ASSERT_EQ(guestvm_vspace_translate(vmm, host_addr, 4, &gpa), 0);
    EXPECT_EQ(gpa, 0x123456u);
    // A translation of an overlapping range sees the same bytes at the right offset.
    std::uint64_t host_lower = 0;
    ASSERT_EQ(guestvm_vspace_translate(guest, 0x123454, 8, &host_lower), 0);
    EXPECT_EQ(host_lower + 2, host_addr);
    std::uint32_t readback = 0;
    std::memcpy(&readback, reinterpret_cast<const void *>(host_lower + 2), sizeof readback);
    EXPECT_EQ(readback, pattern);
    EXPECT_EQ(guestvm_vspace_translate(guest, 8u << 20, 1, &host_addr), -1);        // past RAM
    EXPECT_EQ(guestvm_vspace_translate(guest, (8u << 20) - 4, 8, &host_addr), -1);  // crosses end
    EXPECT_EQ(guestvm_vspace_translate(guest, 0x10, 4, nullptr), -1);
    EXPECT_EQ(guestvm_vspace_regions(nullptr, regions, 4), -1);
    vspace_t unbound{};
    EXPECT_EQ(guestvm_vspace_regions(&unbound, regions, 4), -1);
}

TEST(UtilQueries, AfterStopQueriesStillAnswerAndNothingIsOnline) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "hello_each", 2, nullptr, &entry);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    ASSERT_TRUE(vm->start_core(1, entry, 1));
    StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, StopReason::kAllVcpusOff) << stop.message;
    ASSERT_NE(vm->vcpu_for_target(1), nullptr);
    EXPECT_FALSE(vm->vcpu_for_target(1)->online());
    EXPECT_NE(vm->vcpu_cap(1), kNullCap);
    EXPECT_EQ(vm->vcpu(1)->state(), VcpuState::kStopped);
    // A stopped VM refuses to start anything again.
    auto again = vm->vcpu(0)->start(entry, BootMode::kLong64, 0);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), Errc::kBadState);
    auto restart = vm->start_core(1, entry, 0);
    ASSERT_FALSE(restart);
    EXPECT_EQ(restart.error().code(), Errc::kBadState);
}

TEST(UtilQueries, CApiStartingAnOnlineVcpuFails) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c;
    vm_t *vm = c.vm.get();
    ASSERT_TRUE(c.init("twice", 4u << 20, "spin")) << guestvm_last_error();
    vm_vcpu_t *v0 = vm_create_vcpu(vm, 50);
    ASSERT_NE(v0, nullptr);
    ASSERT_EQ(vcpu_start(v0), 0) << guestvm_last_error();
    EXPECT_TRUE(is_vcpu_online(v0));  // the spin guest never goes off by itself
    EXPECT_TRUE(v0->vcpu_online);
    EXPECT_EQ(vcpu_start(v0), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("already online"), std::string::npos);
    ASSERT_EQ(guestvm_vm_stop(vm), 0);
    EXPECT_EQ(vm_run(vm), 0);
    EXPECT_FALSE(is_vcpu_online(v0));
    EXPECT_FALSE(v0->vcpu_online);
    EXPECT_EQ(guestvm_vm_stop_reason(vm, nullptr, 0), GUESTVM_STOP_REQUESTED);
}

TEST(UtilQueries, CApiAfterStopAndDestroy) {
    GUESTVM_REQUIRE_KVM(host);
    CVm c;
    vm_t *vm = c.vm.get();
    ASSERT_TRUE(c.init("after", 16u << 20)) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(vm, test::guest_path("hello_each").c_str()), 0)
        << guestvm_last_error();
    vm_vcpu_t *v0 = vm_create_vcpu(vm, 50);
    ASSERT_NE(v0, nullptr);
    ASSERT_EQ(vm_assign_vcpu_target(v0, 0), 0);
    ASSERT_EQ(vcpu_start(v0), 0) << guestvm_last_error();
    // (It may greet and go off at once; the VM only stops for that once vm_run waits.)
    EXPECT_EQ(vm_run(vm), 0) << guestvm_last_error();
    EXPECT_FALSE(is_vcpu_online(v0));
    EXPECT_FALSE(v0->vcpu_online);  // the mirror tells the truth
    EXPECT_EQ(guestvm_vm_stop_reason(vm, nullptr, 0), GUESTVM_STOP_ALL_VCPUS_OFF);
    EXPECT_EQ(vm_vcpu_for_target_cpu(vm, 0), v0);
    seL4_CPtr cap = vm_get_vcpu(vm, 0);
    EXPECT_NE(cap, seL4_CapNull);
    ASSERT_EQ(vm_destroy(vm), 0);
    EXPECT_EQ(vm_get_vcpu(vm, 0), seL4_CapNull);
    EXPECT_EQ(vm_vcpu_for_target_cpu(vm, 0), nullptr);
    EXPECT_EQ(vm_get_vspace(vm), nullptr);
    EXPECT_FALSE(vm->vm_initialised);
    // The vm_t can be initialised again; the old cap names nothing.
    ASSERT_EQ(vm_init(vm, nullptr, nullptr, vspace_t{}, nullptr, 0, "again"), 0);
    ASSERT_NE(vm_create_vcpu(vm, 0), nullptr);
    EXPECT_NE(vm_get_vcpu(vm, 0), cap);
}

}  // namespace
}  // namespace guestvm

namespace guestvm {
namespace {

// Configure, then publish: a start that fails (a real-mode entry above 1 MiB) leaves the vCPU it
// claimed unassigned, so the util interface never shows a core whose vCPU could not start.
TEST(UtilQueries, AFailedStartUndoesItsClaim) {
    GUESTVM_REQUIRE_KVM(host);
    MachineConfig config = test::config("undo", 4 << 20, 2);
    config.boot_mode = BootMode::kReal16;
    std::vector<std::pair<int, int>> assigned;  // (vCPU, core) as the observer saw them
    config.vcpu_assign_observer = [&](Vcpu &v, int core) {
        assigned.emplace_back(v.id().value(), core);
    };
    auto vm = build_machine(host, config);
    ASSERT_TRUE(vm);
    auto started = (*vm)->start_core(1, 0x200000, 0);
    ASSERT_FALSE(started);
    EXPECT_EQ((*vm)->vcpu_for_target(1), nullptr);
    EXPECT_EQ((*vm)->free_unassigned_vcpu(), (*vm)->vcpu(0));
    EXPECT_EQ((*vm)->vcpu(0)->target_core(), -1);
    EXPECT_FALSE((*vm)->vcpu(0)->online());
    EXPECT_EQ(assigned, (std::vector<std::pair<int, int>>{{0, 1}, {0, -1}}));
    // The core can still be started properly afterwards.
    EXPECT_TRUE((*vm)->assign_target(*(*vm)->vcpu(1), 1));
    EXPECT_EQ((*vm)->vcpu_for_target(1), (*vm)->vcpu(1));
    EXPECT_EQ((*vm)->free_unassigned_vcpu(), (*vm)->vcpu(0));
}

// The handle a VMM gives its exit handlers is filled before the vCPU can be seen or started
// (a guest spinning CPU_ON on the core must never reach a half-made vCPU).
TEST(UtilQueries, AVcpuIsConfiguredBeforeAnyoneCanSeeIt) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = build_machine(host, test::config("configured", 4 << 20, 1));
    ASSERT_TRUE(vm);
    Vm &v = **vm;
    bool ran = false;
    auto added = v.add_vcpu(nullptr, nullptr, [&](Vcpu &fresh) {
        ran = true;
        EXPECT_EQ(fresh.id().value(), 1);
        EXPECT_NE(fresh.cap(), kNullCap);  // capabilities exist already
        EXPECT_NE(fresh.tcb(), kNullCap);
        EXPECT_EQ(v.vcpu_count(), 1);  // but no query shows it yet
        EXPECT_EQ(v.vcpu(1), nullptr);
        EXPECT_EQ(v.vcpu_cap(1), kNullCap);
        EXPECT_EQ(v.free_unassigned_vcpu(), v.vcpu(0));
    });
    ASSERT_TRUE(added);
    EXPECT_TRUE(ran);
    EXPECT_EQ(v.vcpu(1), *added);
    EXPECT_EQ(v.vcpu_count(), 2);
}

}  // namespace
}  // namespace guestvm

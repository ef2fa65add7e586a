// Notifications: guestvm_vm_notify from another thread reaches the notification callback on
// vm_run's thread, in order; a failing callback ends vm_run with the error exit.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_vm_exits.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

struct Seen {
    std::vector<seL4_Word> badges;
    std::vector<std::thread::id> threads;
};

int on_notification(vm_t *, seL4_Word badge, seL4_MessageInfo_t, void *cookie) {
    auto *seen = static_cast<Seen *>(cookie);
    seen->badges.push_back(badge);
    seen->threads.push_back(std::this_thread::get_id());
    return badge == 0xdead ? -1 : 0;
}

TEST(Notifications, ReachTheCallbackOnVmRunsThreadInOrder) {
    GUESTVM_REQUIRE_KVM(host);
    EXPECT_EQ(guestvm_vm_notify(nullptr, 1), -1);
    vm_t vm{};
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(&vm, "notify", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(&vm, test::guest_path("spin").c_str()), 0);
    vm_vcpu_t *v = vm_create_vcpu(&vm, 100);
    ASSERT_NE(v, nullptr);
    Seen seen;
    ASSERT_EQ(vm_register_notification_callback(&vm, on_notification, &seen), 0);
    EXPECT_EQ(vm_register_notification_callback(nullptr, on_notification, &seen), -1);
    ASSERT_EQ(guestvm_vm_notify(&vm, 1), 0);  // before vm_run: delivered when it starts
    ASSERT_EQ(vm_assign_vcpu_target(v, 0), 0);
    ASSERT_EQ(vcpu_start(v), 0);
    std::thread sender([&] {
        for (seL4_Word b : {2u, 3u, 0xdeadu}) EXPECT_EQ(guestvm_vm_notify(&vm, b), 0);
    });
    EXPECT_EQ(vm_run(&vm), -1);
    const std::thread::id runner = std::this_thread::get_id();
    sender.join();
    EXPECT_EQ(vm.run.exit_reason, VM_GUEST_ERROR_EXIT);
    EXPECT_EQ(seen.badges, (std::vector<seL4_Word>{1, 2, 3, 0xdead}));
    for (auto id : seen.threads) EXPECT_EQ(id, runner);
    char why[128];
    guestvm_vm_stop_reason(&vm, why, sizeof why);
    EXPECT_NE(std::string(why).find("notification callback failed (badge 0xdead)"),
              std::string::npos)
        << why;
    EXPECT_EQ(guestvm_vm_notify(&vm, 4), -1);  // stopped
    EXPECT_EQ(vm_destroy(&vm), 0);
}

}  // namespace
}  // namespace guestvm

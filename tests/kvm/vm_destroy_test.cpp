// vm_destroy and vm_run against the threads they would wait for: vm_destroy while vm_run runs
// on another thread stops the VM and waits for vm_run to return before it frees anything;
// both are refused, with an error, from an exit handler (a vCPU thread) and from the callbacks
// vm_run calls on its own thread, where they would wait for themselves.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "kvm_fixture.hpp"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/boot.h"
#include "sel4vm/guest_irq_controller.h"
#include "sel4vm/guest_vm.h"
#include "sel4vm/guestvm.h"
#include "support/watchdog.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

/// Initialises `vm` with `guest` loaded and one vCPU (returned, not started; null on error).
vm_vcpu_t *init_vm(vm_t &vm, const char *guest, bool irqchip = false) {
    guestvm_vm_options_t opts{};
    opts.ram_bytes = irqchip ? 64u << 20 : 4u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    EXPECT_EQ(guestvm_vm_init(&vm, guest, &opts), 0) << guestvm_last_error();
    if (irqchip) {
        EXPECT_EQ(vm_create_default_irq_controller(&vm), 0) << guestvm_last_error();
    }
    EXPECT_EQ(guestvm_vm_load_elf(&vm, test::guest_path(guest).c_str()), 0) << guestvm_last_error();
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    EXPECT_NE(vcpu, nullptr) << guestvm_last_error();
    return vcpu;
}

int mark_running(vm_t *, seL4_Word, seL4_MessageInfo_t, void *cookie) {
    static_cast<std::atomic<bool> *>(cookie)->store(true);
    return 0;
}

// Without the wait vm_run's thread reads the freed VM (asan: heap-use-after-free in
// Vm::join_all) or the two threads hang; the watchdog turns a hang into a failure.
TEST(VmDestroy, WaitsForVmRunOnAnotherThread) {
    GUESTVM_REQUIRE_KVM(host);
    std::mt19937 random(12);
    for (int i = 0; i < 50; ++i) {
        SCOPED_TRACE(i);
        vm_t vm{};
        vm_vcpu_t *vcpu = init_vm(vm, "spin");
        ASSERT_NE(vcpu, nullptr);
        std::atomic<bool> running{false};
        ASSERT_EQ(vm_register_notification_callback(&vm, mark_running, &running), 0);
        ASSERT_EQ(guestvm_vm_notify(&vm, 1), 0);  // delivered once vm_run runs
        ASSERT_EQ(vcpu_start(vcpu), 0) << guestvm_last_error();
        test::Watchdog watchdog(20s, "vm_destroy while vm_run runs");
        int run_result = 1;
        std::thread runner([&] { run_result = vm_run(&vm); });
        while (!running.load()) std::this_thread::sleep_for(100us);
        std::this_thread::sleep_for(std::chrono::microseconds(random() % 3000));
        EXPECT_EQ(vm_destroy(&vm), 0) << guestvm_last_error();
        runner.join();
        EXPECT_EQ(run_result, 0);
        EXPECT_EQ(vm.guestvm, nullptr);
    }
}

/// What vm_destroy and vm_run answered when a handler or callback called them.
struct Refusals {
    int destroy = 0, run = 0;
    std::string destroy_error, run_error;
    int calls = 0;

    /// Called from the handler: tries both (once), then stops the VM.
    void probe(vm_t *vm) {
        if (calls++ != 0) return;
        destroy = vm_destroy(vm);
        destroy_error = guestvm_last_error();
        run = vm_run(vm);
        run_error = guestvm_last_error();
        EXPECT_EQ(guestvm_vm_stop(vm), 0);
    }

    void expect_refused(const std::string &where) const {
        EXPECT_EQ(calls, 1);
        EXPECT_EQ(destroy, -1);
        EXPECT_NE(destroy_error.find("vm_destroy: not from " + where), std::string::npos)
            << destroy_error;
        EXPECT_EQ(run, -1);
        EXPECT_NE(run_error.find("vm_run: not from " + where), std::string::npos) << run_error;
    }
};

/// Initialises a VM with `guest`, lets `install` register a handler that probes into
/// `refusals`, runs the VM (the handler stops it) and destroys it: the refused calls left it
/// whole. Then checks both calls were refused as made from `where`.
void expect_refused_from(const char *guest, bool irqchip, Refusals &refusals,
                         const std::string &where,
                         const std::function<int(vm_t &, vm_vcpu_t *)> &install) {
    vm_t vm{};
    vm_vcpu_t *vcpu = init_vm(vm, guest, irqchip);
    ASSERT_NE(vcpu, nullptr);
    ASSERT_EQ(install(vm, vcpu), 0) << guestvm_last_error();
    ASSERT_EQ(vcpu_start(vcpu), 0) << guestvm_last_error();
    {
        test::Watchdog watchdog(20s, "vm_run with a handler calling vm_run and vm_destroy");
        EXPECT_EQ(vm_run(&vm), 0) << guestvm_last_error();
    }
    EXPECT_EQ(vm_destroy(&vm), 0) << guestvm_last_error();
    refusals.expect_refused(where);
}

ioport_fault_result_t probing_out(vm_vcpu_t *vcpu, void *cookie, unsigned, unsigned, unsigned) {
    static_cast<Refusals *>(cookie)->probe(vcpu->vm);
    return IO_FAULT_HANDLED;
}

TEST(VmDestroy, AndVmRunAreRefusedFromAPortHandler) {
    GUESTVM_REQUIRE_KVM(host);
    Refusals refusals;
    expect_refused_from("pio_loop", false, refusals, "an exit handler", [&](vm_t &vm, vm_vcpu_t *) {
        return vm_io_port_add_handler(&vm, {0x510, 0x510},
                                      {&refusals, nullptr, probing_out, "probe"});
    });
}

memory_fault_result_t probing_fault(vm_t *vm, vm_vcpu_t *, uintptr_t, size_t, void *cookie) {
    static_cast<Refusals *>(cookie)->probe(vm);
    return FAULT_HANDLED;
}

TEST(VmDestroy, AndVmRunAreRefusedFromAMemoryFaultCallback) {
    GUESTVM_REQUIRE_KVM(host);
    Refusals refusals;
    expect_refused_from(
        "mmio_touch", false, refusals, "an exit handler", [&](vm_t &vm, vm_vcpu_t *) {
            return vm_register_unhandled_mem_fault_callback(&vm, probing_fault, &refusals);
        });
}

void probing_ack(vm_vcpu_t *vcpu, int, void *cookie) {
    static_cast<Refusals *>(cookie)->probe(vcpu->vm);
}

TEST(VmDestroy, AndVmRunAreRefusedFromAnAckCallback) {
    GUESTVM_REQUIRE_KVM(host);
    Refusals refusals;  // the uart_irq guest's UART interrupts are acknowledged
    expect_refused_from(
        "uart_irq", true, refusals, "a callback on vm_run's thread",
        [&](vm_t &, vm_vcpu_t *vcpu) { return vm_register_irq(vcpu, 4, probing_ack, &refusals); });
}

struct NotificationProbe {
    Refusals refusals;
    vm_t *other = nullptr;  // another VM, never run: destroying it from here is fine
    int other_destroy = 1;
};

int probing_notification(vm_t *vm, seL4_Word, seL4_MessageInfo_t, void *cookie) {
    auto *probe = static_cast<NotificationProbe *>(cookie);
    probe->other_destroy = vm_destroy(probe->other);
    probe->refusals.probe(vm);
    return 0;
}

TEST(VmDestroy, AndVmRunAreRefusedFromANotificationCallback) {
    GUESTVM_REQUIRE_KVM(host);
    vm_t other{};
    ASSERT_NE(init_vm(other, "spin"), nullptr);
    NotificationProbe probe;
    probe.other = &other;
    expect_refused_from(
        "spin", false, probe.refusals, "a callback on vm_run's thread", [&](vm_t &vm, vm_vcpu_t *) {
            if (vm_register_notification_callback(&vm, probing_notification, &probe) != 0) {
                return -1;
            }
            return guestvm_vm_notify(&vm, 7);
        });
    EXPECT_EQ(probe.other_destroy, 0) << "another VM's teardown waits for nothing here";
    EXPECT_EQ(other.guestvm, nullptr);
}

}  // namespace
}  // namespace guestvm

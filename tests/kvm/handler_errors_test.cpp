// A handler that fails says why, and the VM's stop message carries it (C++ and C).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "kvm_fixture.hpp"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/boot.h"
#include "sel4vm/guest_vm.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

TEST(HandlerErrors, APortHandlersReasonReachesTheStopMessage) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "bad_port", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->add_io_handler(0x1234, 1, "doorbell", [](ExitContext &ctx, IoAccess &a) {
        return ctx.fail(Error(Errc::kBadState, fmt::format("doorbell rang with {:#x}", a.data[0])));
    }));
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, StopReason::kError);
    EXPECT_EQ(stop.vcpu, 0);
    EXPECT_EQ(
        stop.message.rfind("handler for port 0x1234 failed: doorbell rang with 0x5a on vCPU 0 "
                           "at RIP 0x",
                           0),
        0u)
        << stop.message;
}

TEST(HandlerErrors, RunReturnsWhenAHandlerDoesNotAndNamesTheVcpu) {
    GUESTVM_REQUIRE_KVM(host);
    using namespace std::chrono_literals;
    MachineConfig config = test::config("stuck", 4 << 20, 1);
    config.stop_timeout = 100ms;
    auto vm = build_machine(host, config);
    ASSERT_TRUE(vm);
    auto image = read_file(test::guest_path("bad_port"));
    ASSERT_TRUE(image);
    auto loaded = load_elf((*vm)->vspace(), *image);
    ASSERT_TRUE(loaded);
    std::atomic<bool> entered{false};
    ASSERT_TRUE((*vm)->add_io_handler(0x1234, 1, "slow", [&](ExitContext &, IoAccess &) {
        entered = true;
        std::this_thread::sleep_for(1s);  // a VMM handler that takes its time
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE((*vm)->start_core(0, loaded->entry.rip, 0));
    while (!entered) std::this_thread::sleep_for(1ms);
    (*vm)->stop();
    const auto t0 = std::chrono::steady_clock::now();
    StopInfo stop = (*vm)->run();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 800ms);
    EXPECT_EQ(stop.reason, StopReason::kError);
    EXPECT_NE(stop.message.find("vCPU 0 did not stop in time"), std::string::npos) << stop.message;
    EXPECT_NE(stop.message.find("requested"), std::string::npos) << stop.message;
    vm->reset();  // waits for the handler, then frees everything
}

// Kicks (a pause, a stop) interrupt KVM_RUN, not the VMM's own system calls on a vCPU thread.
TEST(HandlerErrors, AKickDoesNotInterruptAHandlersSystemCall) {
    GUESTVM_REQUIRE_KVM(host);
    using namespace std::chrono_literals;
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "bad_port", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    std::atomic<bool> entered{false};
    std::atomic<ssize_t> got{-2};
    std::atomic<int> err{0};
    ASSERT_TRUE(vm->add_io_handler(0x1234, 1, "reader", [&](ExitContext &, IoAccess &) {
        entered = true;
        char byte = 0;
        ssize_t n = ::read(pipe_fds[0], &byte, 1);  // blocks until the test writes
        err = n < 0 ? errno : 0;
        got = n;
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    while (!entered) std::this_thread::sleep_for(1ms);
    std::thread pauser([&] { EXPECT_TRUE(vm->vcpu(0)->suspend()); });  // kicks every 2 ms
    std::this_thread::sleep_for(60ms);
    ASSERT_EQ(::write(pipe_fds[1], "x", 1), 1);
    pauser.join();
    EXPECT_EQ(got.load(), 1) << "read failed: " << std::strerror(err.load());
    vm->stop();
    vm->run();
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

ioport_fault_result_t refuse(vm_vcpu_t *, void *, unsigned int, unsigned int, unsigned int) {
    return IO_FAULT_ERROR;
}

TEST(HandlerErrors, ACHandlersErrorAnswerIsNamedInTheStopReason) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = std::make_unique<vm_t>();
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(vm.get(), "c-errors", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(vm.get(), test::guest_path("bad_port").c_str()), 0)
        << guestvm_last_error();
    vm_ioport_interface_t iface{nullptr, nullptr, refuse, "refuser"};
    ASSERT_EQ(vm_io_port_add_handler(vm.get(), vm_ioport_range_t{0x1234, 0x1234}, iface), 0);
    vm_vcpu_t *v0 = vm_create_vcpu(vm.get(), 50);
    ASSERT_NE(v0, nullptr) << guestvm_last_error();
    ASSERT_EQ(vcpu_start(v0), 0) << guestvm_last_error();
    EXPECT_EQ(vm_run(vm.get()), -1);
    char message[256] = {};
    EXPECT_EQ(guestvm_vm_stop_reason(vm.get(), message, sizeof message), GUESTVM_STOP_ERROR);
    const std::string why(message);
    EXPECT_NE(why.find("IO_FAULT_ERROR"), std::string::npos) << why;
    EXPECT_NE(why.find("a write to port 0x1234"), std::string::npos) << why;
    vm_destroy(vm.get());
}

}  // namespace
}  // namespace guestvm

// COM1's receive line from the C++ API: bytes written to a SerialInput reach a real guest, which
// takes the UART's receive interrupt (uart_echo) or polls (uart_echo_poll) and echoes a line;
// the handle never reaches into a VM that is gone.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "kvm_fixture.hpp"
#include "support/watchdog.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t *>(s.data()), s.size()};
}

// Each test: a VM with `guest` loaded and COM1's input in `input`, under a watchdog.
class Com1Input : public ::testing::Test {
  protected:
    void SetUp() override {
        GUESTVM_REQUIRE_KVM(shared);
        host_ = std::move(shared);
    }

    /// Builds the VM (irqchip as asked); false (the test has failed) when it could not.
    bool make_vm(const std::string &guest, bool irqchip) {
        input = std::make_shared<SerialInput>();
        MachineConfig config = test::config(guest, 16ull << 20);
        config.serial_sink = capture.sink();
        config.serial_input = input;
        config.irqchip = irqchip;
        auto built = build_machine(host_, std::move(config));
        EXPECT_TRUE(built) << (built ? "" : built.error().message());
        if (!built) return false;
        vm = std::move(*built);
        auto loaded = test::load_guest(*vm, guest);
        if (loaded) entry = *loaded;
        return loaded.has_value();
    }

    bool wait_for_line(const std::string &needle) {
        for (int i = 0; i < 1000 && !capture.has_complete_line(needle); ++i) {
            std::this_thread::sleep_for(10ms);
        }
        return capture.has_complete_line(needle);
    }

    test::Watchdog dog_{120s, "a Com1Input test"};
    std::shared_ptr<Host> host_;
    test::Capture capture;
    std::shared_ptr<SerialInput> input;
    std::unique_ptr<Vm> vm;
    EntryState entry;
};

// The guest waits in HLT with the receive interrupt enabled; the host's line wakes it.
TEST_F(Com1Input, AGuestTakingTheReceiveInterruptEchoesALine) {
    ASSERT_TRUE(make_vm("uart_echo", true));
    EXPECT_TRUE(input->connected());
    ASSERT_TRUE(vm->start_core(0, entry));
    std::jthread feeder([&] {
        ASSERT_TRUE(wait_for_line("uart_echo: ready"));
        std::this_thread::sleep_for(50ms);  // let it reach HLT
        EXPECT_EQ(input->write_all(bytes_of("hello from the host\r")), 20u);
    });
    const StopInfo stop = vm->run();
    feeder.join();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    const auto lines = capture.lines();
    ASSERT_GE(lines.size(), 3u) << capture.text();
    EXPECT_EQ(lines[1], "echo: hello from the host");
    // At least one interrupt served the line (more when bytes came in several pieces).
    const std::string prefix = "uart_echo: ";
    ASSERT_EQ(lines[2].rfind(prefix, 0), 0u) << lines[2];
    EXPECT_GE(std::stoi(lines[2].substr(prefix.size())), 1) << lines[2];
    EXPECT_TRUE(lines[2].ends_with(" receive interrupts")) << lines[2];
}

// More than the wire holds, written before the guest starts: the writer is held back until the
// guest reads, and nothing is lost (the echo keeps the line's first 80 bytes).
TEST_F(Com1Input, ALineLongerThanTheWireArrivesWhole) {
    ASSERT_TRUE(make_vm("uart_echo", true));
    std::string line;
    for (int i = 0; line.size() < 6000; ++i) line += std::to_string(i) + ",";
    line += "\n";
    const std::size_t before_start = input->write(line);
    EXPECT_GT(before_start, 0u);
    EXPECT_LT(before_start, line.size());  // the wire is bounded
    ASSERT_TRUE(vm->start_core(0, entry));
    std::size_t rest = 0;
    std::jthread feeder(
        [&] { rest = input->write_all(bytes_of(line).subspan(before_start), {}, 10s); });
    const StopInfo stop = vm->run();
    feeder.join();
    EXPECT_EQ(before_start + rest, line.size());
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_TRUE(capture.contains("echo: " + line.substr(0, 80))) << capture.text();
}

// Without an irqchip the polling build reads the same line.
TEST_F(Com1Input, APollingGuestEchoesALine) {
    ASSERT_TRUE(make_vm("uart_echo_poll", false));
    EXPECT_EQ(input->write("polled\n"), 7u);
    ASSERT_TRUE(vm->start_core(0, entry));
    const StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_EQ(capture.lines(), (std::vector<std::string>{"uart_echo: ready", "echo: polled"}));
}

// A writer hammering the handle while the VM is destroyed under it: each write either lands
// while the VM is whole or takes nothing; afterwards the handle is disconnected.
TEST_F(Com1Input, AHandleOutlivesItsVm) {
    for (int round = 0; round < 5; ++round) {
        ASSERT_TRUE(make_vm("uart_echo", true));
        ASSERT_TRUE(vm->start_core(0, entry));
        ASSERT_TRUE(wait_for_line("uart_echo: ready"));
        std::atomic<std::size_t> taken{0};
        std::jthread writer([&](std::stop_token stop) {
            while (!stop.stop_requested()) taken += input->write("x");  // never a newline
        });
        while (taken.load() < 100) std::this_thread::yield();
        vm.reset();
        EXPECT_FALSE(input->connected());
        writer.request_stop();
        writer.join();
        EXPECT_EQ(input->write("late"), 0u);
        EXPECT_FALSE(input->wait_for_room({}, 1ms));
    }
}

TEST_F(Com1Input, OneHandleServesOneMachine) {
    auto shared_input = std::make_shared<SerialInput>();
    MachineConfig config = test::config("serial-input-once");
    config.serial_input = shared_input;
    auto first = build_machine(host_, config);
    ASSERT_TRUE(first) << first.error().message();
    auto second = build_machine(host_, config);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code(), Errc::kAlreadyExists);
    EXPECT_NE(second.error().message().find("bound to a UART already"), std::string::npos);
    EXPECT_TRUE(shared_input->connected());  // still the first machine's
    config.serial_input = std::make_shared<SerialInput>();
    config.serial = false;
    auto no_uart = build_machine(host_, config);
    ASSERT_FALSE(no_uart);
    EXPECT_EQ(no_uart.error().code(), Errc::kInvalidArgument);
    EXPECT_FALSE(config.serial_input->connected());
}

}  // namespace
}  // namespace guestvm

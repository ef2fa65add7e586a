// COM1's receive line from the C++ API: bytes written to a SerialInput reach a real guest, which
// takes the UART's receive interrupt (uart_echo) or polls (uart_echo_poll) and echoes a line;
// the handle never reaches into a VM that is gone.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "kvm_fixture.hpp"
#include "support/watchdog.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

struct EchoVm {
    std::unique_ptr<Vm> vm;
    std::shared_ptr<SerialInput> input;
    EntryState entry;
};

EchoVm echo_vm(std::shared_ptr<Host> host, test::Capture &capture, const std::string &guest,
               bool irqchip) {
    EchoVm e;
    e.input = std::make_shared<SerialInput>();
    MachineConfig config = test::config(guest, 16ull << 20);
    config.serial_sink = capture.sink();
    config.serial_input = e.input;
    config.irqchip = irqchip;
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return e;
    auto image = read_file(test::guest_path(guest));
    EXPECT_TRUE(image);
    if (!image) return e;
    auto plan = plan_elf(*image, ram_ranges((*vm)->vspace()));
    EXPECT_TRUE(plan);
    if (!plan || !write_plan((*vm)->vspace(), *plan)) return e;
    e.entry = plan->entry;
    e.vm = std::move(*vm);
    return e;
}

bool wait_for_line(test::Capture &capture, const std::string &needle) {
    for (int i = 0; i < 1000 && !capture.has_complete_line(needle); ++i) {
        std::this_thread::sleep_for(10ms);
    }
    return capture.has_complete_line(needle);
}

// The guest waits in HLT with the receive interrupt enabled; the host's line wakes it.
TEST(Com1Input, AGuestTakingTheReceiveInterruptEchoesALine) {
    GUESTVM_REQUIRE_KVM(host);
    test::Watchdog dog(60s, "SerialInput interrupt echo");
    test::Capture capture;
    EchoVm e = echo_vm(host, capture, "uart_echo", true);
    ASSERT_TRUE(e.vm);
    EXPECT_TRUE(e.input->connected());
    ASSERT_TRUE(e.vm->start_core(0, e.entry));
    std::jthread feeder([&] {
        ASSERT_TRUE(wait_for_line(capture, "uart_echo: ready"));
        std::this_thread::sleep_for(50ms);  // let it reach HLT
        const std::string line = "hello from the host\r";
        EXPECT_EQ(e.input->write_all(
                      std::span(reinterpret_cast<const std::uint8_t *>(line.data()), line.size())),
                  line.size());
    });
    const StopInfo stop = e.vm->run();
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
TEST(Com1Input, ALineLongerThanTheWireArrivesWhole) {
    GUESTVM_REQUIRE_KVM(host);
    test::Watchdog dog(120s, "SerialInput long line");
    test::Capture capture;
    EchoVm e = echo_vm(host, capture, "uart_echo", true);
    ASSERT_TRUE(e.vm);
    std::string line;
    for (int i = 0; line.size() < 6000; ++i) line += std::to_string(i) + ",";
    line += "\n";
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t *>(line.data()), line.size());
    const std::size_t before_start = e.input->write(bytes);
    EXPECT_GT(before_start, 0u);
    EXPECT_LT(before_start, line.size());  // the wire is bounded
    ASSERT_TRUE(e.vm->start_core(0, e.entry));
    std::size_t rest = 0;
    std::jthread feeder([&] { rest = e.input->write_all(bytes.subspan(before_start), {}, 10s); });
    const StopInfo stop = e.vm->run();
    feeder.join();
    EXPECT_EQ(before_start + rest, line.size());
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_TRUE(capture.contains("echo: " + line.substr(0, 80))) << capture.text();
}

// Without an irqchip the polling build reads the same line.
TEST(Com1Input, APollingGuestEchoesALine) {
    GUESTVM_REQUIRE_KVM(host);
    test::Watchdog dog(60s, "SerialInput polling echo");
    test::Capture capture;
    EchoVm e = echo_vm(host, capture, "uart_echo_poll", false);
    ASSERT_TRUE(e.vm);
    EXPECT_EQ(e.input->write("polled\n"), 7u);
    ASSERT_TRUE(e.vm->start_core(0, e.entry));
    const StopInfo stop = e.vm->run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_EQ(capture.lines(), (std::vector<std::string>{"uart_echo: ready", "echo: polled"}));
}

// A writer hammering the handle while the VM is destroyed under it: each write either lands
// while the VM is whole or takes nothing; afterwards the handle is disconnected.
TEST(Com1Input, AHandleOutlivesItsVm) {
    GUESTVM_REQUIRE_KVM(host);
    test::Watchdog dog(60s, "SerialInput outliving its VM");
    for (int round = 0; round < 5; ++round) {
        test::Capture capture;
        EchoVm e = echo_vm(host, capture, "uart_echo", true);
        ASSERT_TRUE(e.vm);
        ASSERT_TRUE(e.vm->start_core(0, e.entry));
        ASSERT_TRUE(wait_for_line(capture, "uart_echo: ready"));
        std::atomic<std::size_t> taken{0};
        std::jthread writer([&](std::stop_token stop) {
            while (!stop.stop_requested()) taken += e.input->write("x");  // never a newline
        });
        while (taken.load() < 100) std::this_thread::yield();
        e.vm.reset();
        EXPECT_FALSE(e.input->connected());
        writer.request_stop();
        writer.join();
        EXPECT_EQ(e.input->write("late"), 0u);
        EXPECT_FALSE(e.input->wait_for_room({}, 1ms));
    }
}

TEST(Com1Input, OneHandleServesOneMachine) {
    GUESTVM_REQUIRE_KVM(host);
    auto input = std::make_shared<SerialInput>();
    MachineConfig config = test::config("serial-input-once");
    config.serial_input = input;
    auto first = build_machine(host, config);
    ASSERT_TRUE(first) << first.error().message();
    auto second = build_machine(host, config);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code(), Errc::kAlreadyExists);
    EXPECT_NE(second.error().message().find("bound to a UART already"), std::string::npos);
    EXPECT_TRUE(input->connected());  // still the first machine's
    config.serial_input = std::make_shared<SerialInput>();
    config.serial = false;
    auto no_uart = build_machine(host, config);
    ASSERT_FALSE(no_uart);
    EXPECT_EQ(no_uart.error().code(), Errc::kInvalidArgument);
    EXPECT_FALSE(config.serial_input->connected());
}

}  // namespace
}  // namespace guestvm

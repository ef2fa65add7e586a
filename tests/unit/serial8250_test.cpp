#include "devices/serial8250.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "guestvm/serial.hpp"

namespace guestvm {
namespace {

TEST(Serial8250, TransmitGoesToTheSinkAndLsrSaysEmpty) {
    std::string out;
    Serial8250 uart([&](int vcpu, std::string_view b) {
        EXPECT_EQ(vcpu, 3);
        out += b;
    });
    EXPECT_EQ(uart.read(5) & 0x60, 0x60);  // THRE | TEMT
    for (char c : std::string("hi\n")) uart.write(0, static_cast<std::uint8_t>(c), 3);
    EXPECT_EQ(out, "hi\n");
}

TEST(Serial8250, DivisorLatchDoesNotTransmit) {
    std::string out;
    Serial8250 uart([&](int, std::string_view b) { out += b; });
    uart.write(3, 0x83, 0);  // DLAB on, 8N1
    uart.write(0, 0x01, 0);  // DLL
    uart.write(1, 0x00, 0);  // DLM
    EXPECT_EQ(uart.read(0), 0x01);
    uart.write(3, 0x03, 0);  // DLAB off
    EXPECT_EQ(uart.read(3), 0x03);
    EXPECT_TRUE(out.empty());
}

TEST(Serial8250, RegistersReadBack) {
    Serial8250 uart(nullptr);
    uart.write(7, 0xa5, 0);
    EXPECT_EQ(uart.read(7), 0xa5);
    uart.write(1, 0x0f, 0);
    EXPECT_EQ(uart.read(1), 0x0f);
    uart.write(4, 0x0b, 0);
    EXPECT_EQ(uart.read(4), 0x0b);
    EXPECT_EQ(uart.read(2) & 0x0f, 0x02);  // enabling THRI with THR empty: one interrupt
    EXPECT_EQ(uart.read(2) & 0x0f, 0x01);  // reading IIR acknowledged it
    uart.write(2, 0x01, 0);                // FIFO on
    EXPECT_EQ(uart.read(2), 0xc1);
    uart.write(0, 'x', 0);  // no sink: discarded, no crash
}

TEST(Serial8250, ThrEmptyInterruptDrivesTheLineGatedByOut2) {
    std::vector<bool> edges;
    Serial8250 uart(nullptr, [&](bool level) { edges.push_back(level); });
    uart.write(1, 0x02, 0);  // IER: THR empty; pending, but OUT2 is off
    EXPECT_TRUE(edges.empty());
    EXPECT_FALSE(uart.irq_level());
    uart.write(4, 0x08, 0);  // OUT2 connects the line
    EXPECT_EQ(edges, (std::vector<bool>{true}));
    EXPECT_EQ(uart.read(2) & 0x0f, 0x02);  // IIR: THR empty, which acknowledges it
    EXPECT_EQ(edges, (std::vector<bool>{true, false}));
    EXPECT_EQ(uart.read(2) & 0x0f, 0x01);
    uart.write(0, 'a', 0);  // a byte sent: THR empty again, a fresh edge
    EXPECT_EQ(edges, (std::vector<bool>{true, false, true}));
    uart.write(0, 'b', 0);  // still pending: the line falls and rises again
    EXPECT_EQ(edges, (std::vector<bool>{true, false, true, false, true}));
    uart.write(1, 0x00, 0);  // interrupts off: the line falls
    EXPECT_EQ(edges.back(), false);
    EXPECT_EQ(uart.read(2) & 0x0f, 0x01);
    edges.clear();
    uart.write(0, 'c', 0);  // IER off: no edges
    EXPECT_TRUE(edges.empty());
}

TEST(Serial8250, LoopbackEchoesModemLinesAndSwallowsOutput) {
    std::string out;
    Serial8250 uart([&](int, std::string_view b) { out += b; });
    uart.write(4, 0x10 | 0x03, 0);  // loop + DTR + RTS
    EXPECT_EQ(uart.read(6) & 0x30, 0x30);
    uart.write(0, 'z', 0);
    EXPECT_TRUE(out.empty());
}

TEST(Serial8250, OnThePortBusItSeesOffsetsAndTheWritingVcpu) {
    std::string out;
    int writer = -1;
    auto uart = std::make_shared<Serial8250>([&](int vcpu, std::string_view b) {
        out += b;
        writer = vcpu;
    });
    IoHandler handler = port_handler(Serial8250::kBase, uart);
    ExitContext ctx;
    ctx.vcpu_id = 3;
    std::uint8_t byte = 'x';
    IoAccess thr{0x3f8, 1, true, std::span(&byte, 1)};
    EXPECT_EQ(handler(ctx, thr), ExitAction::kContinue);
    EXPECT_EQ(out, "x");
    EXPECT_EQ(writer, 3);
    // Wider accesses touch consecutive registers; past the device's eight ports reads all ones.
    std::uint8_t data[2] = {0, 0};
    IoAccess in{0x3fd, 2, false, std::span(data, 2)};
    EXPECT_EQ(handler(ctx, in), ExitAction::kContinue);
    EXPECT_EQ(data[0] & 0x60, 0x60);  // LSR
    std::uint8_t past[2] = {0, 0};
    IoAccess edge{0x3ff, 2, false, std::span(past, 2)};
    handler(ctx, edge);
    EXPECT_EQ(past[1], 0xff);
}

TEST(LineBuffer, KeepsEachVcpusLinesWhole) {
    std::vector<std::pair<int, std::string>> lines;
    LineBuffer buffer([&](int vcpu, std::string_view line) { lines.emplace_back(vcpu, line); });
    auto sink = buffer.sink();
    sink(0, "hel");
    sink(1, "wor");
    sink(0, "lo\r\n");
    sink(1, "ld\n");
    sink(2, "partial");
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], (std::pair<int, std::string>{0, "hello"}));
    EXPECT_EQ(lines[1], (std::pair<int, std::string>{1, "world"}));
    buffer.flush();
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[2], (std::pair<int, std::string>{2, "partial"}));
}

TEST(LineBuffer, SplitsOverlongLines) {
    std::vector<std::string> lines;
    LineBuffer buffer([&](int, std::string_view line) { lines.emplace_back(line); }, 4);
    buffer.write(0, "abcdefg\n");
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "abcd");
    EXPECT_EQ(lines[1], "efg");
}

}  // namespace
}  // namespace guestvm

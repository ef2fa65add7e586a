#include "devices/serial8250.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
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

TEST(Serial8250, LoopbackEchoesModemLinesAndFeedsTheReceiver) {
    std::string out;
    Serial8250 uart([&](int, std::string_view b) { out += b; });
    EXPECT_EQ(uart.read(6), 0xb0);  // DCD, DSR, CTS: a modem that is there; no deltas
    uart.write(4, 0x10 | 0x03, 0);  // loop + DTR + RTS
    // DCD fell (OUT2 is off): its delta; CTS and DSR stayed.
    EXPECT_EQ(uart.read(6), 0x30 | 0x08);
    EXPECT_EQ(uart.read(6), 0x30);  // reading MSR cleared the delta
    uart.write(0, 'z', 0);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(uart.read(5) & 0x01, 0x01);  // DR: the byte came round
    EXPECT_EQ(uart.read(0), 'z');
    EXPECT_EQ(uart.read(5) & 0x01, 0x00);
    uart.write(4, 0x10 | 0x04, 0);  // OUT1 (RI) on, DTR and RTS off
    EXPECT_EQ(uart.read(6), 0x40 | 0x03);
    uart.write(4, 0x10, 0);  // RI's trailing edge: TERI
    EXPECT_EQ(uart.read(6), 0x04);
    uart.write(4, 0x00, 0);  // out of loopback: the modem is back, sent bytes go out
    EXPECT_EQ(uart.read(6), 0xb0 | 0x0b);
    uart.write(0, 'q', 0);
    EXPECT_EQ(out, "q");
    EXPECT_EQ(uart.read(5) & 0x01, 0x00);
}

namespace {
std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t *>(s.data()), s.size()};
}

std::string drain(Serial8250 &uart) {
    std::string got;
    while ((uart.read(5) & 0x01) != 0) got.push_back(static_cast<char>(uart.read(0)));
    return got;
}
}  // namespace

TEST(Serial8250, ReceivedBytesLeaveRbrInOrderWhileLsrSaysDataReady) {
    Serial8250 uart(nullptr);
    EXPECT_EQ(uart.read(5), 0x60);  // nothing received
    EXPECT_EQ(uart.push_input(bytes_of("abc")), 3u);
    EXPECT_EQ(uart.read(5), 0x61);  // DR
    EXPECT_EQ(uart.read(0), 'a');
    EXPECT_EQ(uart.read(0), 'b');
    EXPECT_EQ(uart.read(0), 'c');
    EXPECT_EQ(uart.read(5), 0x60);
    EXPECT_EQ(uart.read(0), 'c');  // an empty RBR still holds the last byte
    // The divisor latch hides RBR: no byte is taken.
    uart.push_input(bytes_of("d"));
    uart.write(3, 0x83, 0);
    EXPECT_EQ(uart.read(0), 0x0c);
    uart.write(3, 0x03, 0);
    EXPECT_EQ(uart.read(0), 'd');
}

// 8250 mode holds one byte, FIFO mode sixteen; the wire behind them holds the rest, bounded,
// and refuses what does not fit instead of dropping it.
TEST(Serial8250, TheWireIsBoundedAndPushesBack) {
    Serial8250 uart(nullptr, {}, 8);
    std::string all;
    for (int i = 0; i < 40; ++i) all.push_back(static_cast<char>('A' + i));
    EXPECT_EQ(uart.input_room(), 9u);  // RBR + the wire
    EXPECT_EQ(uart.push_input(bytes_of(all)), 9u);
    EXPECT_EQ(uart.input_room(), 0u);
    EXPECT_EQ(uart.push_input(bytes_of("x")), 0u);
    EXPECT_EQ(uart.read(5) & 0x02, 0);  // refused, not overrun
    EXPECT_EQ(uart.read(0), 'A');
    EXPECT_EQ(uart.input_room(), 1u);
    EXPECT_EQ(uart.push_input(bytes_of(all.substr(9))), 1u);
    uart.write(2, 0x01, 0);             // FIFO on: the mode change empties the FIFO (RBR's 'B')
    EXPECT_EQ(uart.input_room(), 16u);  // the wire's eight moved in: FIFO room and the wire
    EXPECT_EQ(drain(uart), all.substr(2, 8));
    EXPECT_EQ(uart.input_room(), 24u);  // FIFO + wire
    EXPECT_EQ(uart.push_input(bytes_of(all)), 24u);
    EXPECT_EQ(drain(uart), all.substr(0, 24));
    EXPECT_EQ(uart.read(5) & 0x02, 0);
}

TEST(Serial8250, FifoClearsDiscardTheFifoNotTheWire) {
    Serial8250 uart(nullptr);
    uart.write(2, 0x01, 0);
    std::string all;
    for (int i = 0; i < 20; ++i) all.push_back(static_cast<char>('a' + i));
    ASSERT_EQ(uart.push_input(bytes_of(all)), 20u);
    uart.write(2, 0x03, 0);  // clear RX: the sixteen in the FIFO go, the wire's four come in
    EXPECT_EQ(drain(uart), all.substr(16));
    ASSERT_EQ(uart.push_input(bytes_of(all)), 20u);
    uart.write(2, 0x02, 0);  // without the enable bit: FIFO off, which empties it too
    EXPECT_EQ(drain(uart), all.substr(16));
    ASSERT_EQ(uart.push_input(bytes_of("xyz")), 3u);
    uart.write(2, 0x05, 0);  // FIFO on (a mode change: RBR's 'x' goes), clear TX only
    EXPECT_EQ(drain(uart), "yz");
    ASSERT_EQ(uart.push_input(bytes_of("uvw")), 3u);
    uart.write(2, 0x05, 0);  // no mode change, no RX clear: nothing lost
    EXPECT_EQ(drain(uart), "uvw");
}

// Received data: IIR 0x4 at or above the trigger level, 0xC (character timeout) below it,
// 0x4 in 8250 mode; the line follows, gated by OUT2.
TEST(Serial8250, ReceiveInterruptFollowsTheTriggerLevel) {
    std::vector<bool> edges;
    Serial8250 uart(nullptr, [&](bool level) { edges.push_back(level); });
    uart.write(1, 0x01, 0);  // IER: received data
    ASSERT_EQ(uart.push_input(bytes_of("a")), 1u);
    EXPECT_EQ(uart.read(2), 0x04);
    EXPECT_TRUE(edges.empty());  // OUT2 off: nothing on the line
    uart.write(4, 0x08, 0);
    EXPECT_EQ(edges, (std::vector<bool>{true}));
    EXPECT_EQ(uart.read(0), 'a');
    EXPECT_EQ(edges, (std::vector<bool>{true, false}));
    EXPECT_EQ(uart.read(2), 0x01);

    const std::pair<std::uint8_t, std::size_t> triggers[] = {
        {0x01, 1}, {0x41, 4}, {0x81, 8}, {0xc1, 14}};
    for (auto [fcr, level] : triggers) {
        SCOPED_TRACE(level);
        uart.write(2, fcr, 0);
        edges.clear();
        for (std::size_t n = 1; n <= 16; ++n) {
            ASSERT_EQ(uart.push_input(bytes_of("x")), 1u);
            EXPECT_EQ(uart.read(2), n >= level ? 0xc4 : 0xcc) << n;
        }
        EXPECT_EQ(edges, (std::vector<bool>{true}));  // one rise: the line stays up
        for (std::size_t n = 16; n > 0; --n) {
            EXPECT_EQ(uart.read(2), n >= level ? 0xc4 : 0xcc) << n;
            uart.read(0);
        }
        EXPECT_EQ(uart.read(2), 0xc1);
        EXPECT_EQ(edges, (std::vector<bool>{true, false}));
    }
    ASSERT_EQ(uart.push_input(bytes_of("y")), 1u);
    EXPECT_TRUE(uart.irq_level());
    uart.write(1, 0x00, 0);  // IER off: the line falls with the data still there
    EXPECT_FALSE(uart.irq_level());
    EXPECT_EQ(uart.read(2), 0xc1);
    EXPECT_EQ(uart.read(5) & 0x01, 0x01);
    uart.write(1, 0x01, 0);
    EXPECT_TRUE(uart.irq_level());
    uart.write(4, 0x00, 0);  // OUT2 off
    EXPECT_FALSE(uart.irq_level());
}

// IIR reports the highest-priority interrupt pending: line status, received data, THR empty,
// modem status; each goes when its cause is served.
TEST(Serial8250, IirReportsInterruptsByTheDatasheetsPriority) {
    std::vector<bool> edges;
    Serial8250 uart(nullptr, [&](bool level) { edges.push_back(level); });
    uart.write(4, 0x18, 0);  // loopback with OUT2: CTS and DSR fall, DCD stays: two deltas
    uart.write(0, 'a', 0);   // looped back into RBR
    uart.write(0, 'b', 0);   // 8250 mode: overwrites 'a', overrun
    uart.write(1, 0x0f, 0);  // every interrupt; THR is empty: pending too
    EXPECT_TRUE(uart.irq_level());
    EXPECT_EQ(uart.read(2), 0x06);
    EXPECT_EQ(uart.read(2), 0x06);  // reading IIR does not serve it
    EXPECT_EQ(uart.read(5), 0x63);  // DR | OE | THRE | TEMT; reading LSR clears OE
    EXPECT_EQ(uart.read(5), 0x61);
    EXPECT_EQ(uart.read(2), 0x04);
    EXPECT_EQ(uart.read(0), 'b');
    EXPECT_EQ(uart.read(2), 0x02);  // reported, so served
    EXPECT_EQ(uart.read(2), 0x00);  // modem status
    EXPECT_TRUE(uart.irq_level());
    EXPECT_EQ(uart.read(6), 0x80 | 0x03);  // DCD; DCTS and DDSR
    EXPECT_EQ(uart.read(2), 0x01);
    EXPECT_FALSE(uart.irq_level());
    // A byte arriving with THR empty pending: received data first, THR empty after.
    uart.write(0, 'c', 0);
    EXPECT_EQ(uart.read(2), 0x04);
    EXPECT_EQ(uart.read(0), 'c');
    EXPECT_EQ(uart.read(2), 0x02);
    EXPECT_EQ(uart.read(2), 0x01);
    // Interrupts disabled in IER are not reported, whatever is pending.
    uart.write(0, 'd', 0);
    uart.write(0, 'e', 0);
    uart.write(1, 0x00, 0);
    EXPECT_EQ(uart.read(2), 0x01);
    EXPECT_EQ(uart.read(5) & 0x03, 0x03);
    EXPECT_FALSE(uart.irq_level());
    EXPECT_EQ(std::count(edges.begin(), edges.end(), true),
              std::count(edges.begin(), edges.end(), false));
}

// In FIFO mode a byte looped back into a full FIFO is lost and sets OE; the FIFO keeps the
// sixteen it had. Host bytes wait on the wire while loopback disconnects it.
TEST(Serial8250, LoopbackOverrunsAFullFifoAndHoldsTheWire) {
    Serial8250 uart(nullptr);
    uart.write(2, 0x01, 0);
    uart.write(4, 0x10, 0);
    EXPECT_EQ(uart.input_room(), Serial8250::kWireBytes);  // the FIFO is not the wire's now
    ASSERT_EQ(uart.push_input(bytes_of("host")), 4u);
    EXPECT_EQ(uart.read(5) & 0x01, 0x00);  // not here yet
    std::string sent;
    for (int i = 0; i < 17; ++i) {
        sent.push_back(static_cast<char>('A' + i));
        uart.write(0, static_cast<std::uint8_t>(sent.back()), 0);
    }
    EXPECT_EQ(uart.read(5) & 0x03, 0x03);  // DR | OE
    EXPECT_EQ(uart.read(5) & 0x02, 0x00);
    EXPECT_EQ(drain(uart), sent.substr(0, 16));
    uart.write(4, 0x00, 0);
    EXPECT_EQ(drain(uart), "host");
}

TEST(Serial8250, WaitersWakeForRoomAndWhenInputCloses) {
    Serial8250 uart(nullptr, {}, 2);
    ASSERT_EQ(uart.push_input(bytes_of("abcdef")), 3u);
    std::stop_source never;
    EXPECT_FALSE(uart.wait_for_input_room(never.get_token(), std::chrono::milliseconds(10)));
    std::atomic<bool> woke{false};
    std::jthread waiter(
        [&] { woke = uart.wait_for_input_room(never.get_token(), std::chrono::seconds(30)); });
    EXPECT_EQ(uart.read(0), 'a');  // the guest reads: room
    waiter.join();
    EXPECT_TRUE(woke);
    ASSERT_EQ(uart.push_input(bytes_of("d")), 1u);
    std::stop_source stop;
    std::jthread stopped(
        [&] { woke = uart.wait_for_input_room(stop.get_token(), std::chrono::seconds(30)); });
    stop.request_stop();
    stopped.join();
    EXPECT_FALSE(woke);
    std::jthread closed(
        [&] { woke = uart.wait_for_input_room(never.get_token(), std::chrono::seconds(30)); });
    uart.close_input();
    closed.join();
    EXPECT_FALSE(woke);
    EXPECT_TRUE(uart.input_closed());
    EXPECT_EQ(uart.push_input(bytes_of("x")), 0u);
    EXPECT_EQ(uart.input_room(), 0u);
    EXPECT_EQ(drain(uart), "b");  // what reached RBR before the close stays for the guest
}

// A producer thread writing through a SerialInput and a guest-side reader: every byte
// arrives once, in order, though the wire holds a fraction of them.
TEST(SerialInput, DeliversEveryByteInOrderUnderBackPressure) {
    auto uart = std::make_shared<Serial8250>(nullptr, Serial8250::IrqLine{}, 64);
    SerialInput input;
    ASSERT_TRUE(bind_serial_input(input, uart));
    EXPECT_TRUE(input.connected());
    uart->write(2, 0x01, 0);
    std::vector<std::uint8_t> sent(20000);
    for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<std::uint8_t>(i * 7 + 3);
    std::size_t written = 0;
    std::jthread producer([&] { written = input.write_all(sent); });
    std::vector<std::uint8_t> got;
    while (got.size() < sent.size()) {
        if ((uart->read(5) & 0x01) != 0) got.push_back(uart->read(0));
    }
    producer.join();
    EXPECT_EQ(written, sent.size());
    EXPECT_EQ(got, sent);
    EXPECT_EQ(uart->read(5) & 0x02, 0);
}

TEST(SerialInput, TakesNothingUnboundOrOnceTheUartIsGone) {
    SerialInput input;
    EXPECT_FALSE(input.connected());
    EXPECT_EQ(input.write("x"), 0u);
    EXPECT_FALSE(input.wait_for_room({}, std::chrono::milliseconds(1)));
    EXPECT_EQ(input.write_all(bytes_of("abc")), 0u);
    auto uart = std::make_shared<Serial8250>(nullptr);
    ASSERT_TRUE(bind_serial_input(input, uart));
    auto again = bind_serial_input(input, std::make_shared<Serial8250>(nullptr));
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(input.write("y"), 1u);
    EXPECT_EQ(uart->read(0), 'y');
    uart->close_input();
    EXPECT_FALSE(input.connected());
    EXPECT_EQ(input.write("z"), 0u);
    uart.reset();
    EXPECT_EQ(input.write("z"), 0u);
    EXPECT_FALSE(input.wait_for_room({}, std::chrono::milliseconds(1)));
    unbind_serial_input(input);  // a builder undoing a failed attach: bindable again
    EXPECT_TRUE(bind_serial_input(input, std::make_shared<Serial8250>(nullptr)));
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

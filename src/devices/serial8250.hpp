// guestvm — an 8250/16550A-style UART: transmit, receive with its FIFO, and its interrupts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stop_token>

#include "devices/port_device.hpp"
#include "guestvm/exits.hpp"
#include "guestvm/serial.hpp"

namespace guestvm {

/// COM1 at 0x3f8..0x3ff, a 16550A as a driver sees it.
///
/// Transmit goes straight to the sink, so the transmitter is always empty (LSR THRE|TEMT).
/// Receive: bytes the host pushes (push_input) wait on a bounded "wire" and move into the
/// receive FIFO as it has room: 16 bytes with FCR's FIFO enable set, one (the 8250's RBR)
/// without. The wire moves at once, so nothing is lost on the way: a full wire refuses bytes
/// (push_input takes fewer; wait_for_input_room waits) instead of overrunning. Overrun (LSR OE)
/// only happens in loopback, where a byte sent into a full FIFO is lost as on the chip. A FIFO
/// clear, or a change of FCR's FIFO enable, discards what the FIFO holds (not the wire), as the
/// datasheet says.
///
/// Interrupts, by the datasheet's priority (IIR): receiver line status (OE, IER bit 2), then
/// received data (IER bit 0: IIR 0x4 at or above the FCR trigger level, 0xC "character timeout"
/// below it), then THR empty (IER bit 1), then modem status (IER bit 3). The wire has no baud
/// rate, so the character timeout is indicated at once when data sits below the trigger level
/// (the chip waits four character times; no more data is on its way here either way). THR
/// empty is pending when its enable bit is set and after every byte sent, until IIR reports it
/// or THR is written. The line to IRQ 4 is gated by MCR OUT2, as on a PC.
///
/// MSR: CTS, DSR and DCD asserted (a modem that is always there); in loopback (MCR bit 4) the
/// modem lines follow MCR, with their delta bits, and THR feeds the receiver instead of the
/// sink. Thread-safe: vCPUs and host threads may call any member at once.
class Serial8250 {
  public:
    static constexpr std::uint16_t kBase = 0x3f8;
    static constexpr std::uint16_t kPorts = 8;
    static constexpr int kIrq = 4;
    static constexpr std::size_t kFifoBytes = 16;
    /// What the wire behind the FIFO holds by default.
    static constexpr std::size_t kWireBytes = 4096;

    /// Drives the UART's interrupt line (called with the UART's lock held, on level changes).
    using IrqLine = std::function<void(bool level)>;

    /// `wire_bytes` (at least 1) bounds the host's bytes not yet in the FIFO.
    explicit Serial8250(SerialSink sink, IrqLine irq = {}, std::size_t wire_bytes = kWireBytes);

    /// A port access at offset 0..7 (wider accesses touch consecutive registers).
    ExitAction io(PortAccess &access);

    /// One register access at offset 0..7 from kBase (public for unit tests).
    std::uint8_t read(std::uint16_t offset);
    void write(std::uint16_t offset, std::uint8_t value, int vcpu);

    /// The level of the interrupt line now (for tests).
    bool irq_level() const;

    // ---- the host's end of the receive line ----

    /// Puts as many of `bytes` on the wire as it has room for, in order, and raises the
    /// receive interrupt if the guest enabled it. Returns how many it took: fewer than given
    /// when the wire is full, 0 once input is closed.
    std::size_t push_input(std::span<const std::uint8_t> bytes);
    /// How many bytes push_input would take now.
    std::size_t input_room() const;
    /// Waits until push_input would take a byte (true), or until input is closed, `stop` is
    /// requested or `timeout` passes (false).
    bool wait_for_input_room(std::stop_token stop, std::chrono::milliseconds timeout);
    /// Refuses input from now on and wakes waiters. On return no push_input is inside the UART,
    /// so the host side no longer drives the interrupt line (the VM may go away).
    void close_input();
    bool input_closed() const;

  private:
    std::size_t fifo_capacity_locked() const noexcept;
    std::uint8_t pending_interrupt_locked() const noexcept;
    std::uint8_t modem_lines_locked() const noexcept;
    std::uint8_t read_rbr_locked();
    std::uint8_t read_iir_locked();
    void write_thr_locked(std::uint8_t value, int vcpu);
    void write_fcr_locked(std::uint8_t value);
    void write_mcr_locked(std::uint8_t value);
    void receive_locked(std::uint8_t byte);
    void refill_locked();
    std::size_t room_locked() const noexcept;
    void update_irq_locked();

    SerialSink sink_;
    IrqLine irq_;
    const std::size_t wire_capacity_;
    mutable std::mutex mutex_;
    std::condition_variable_any room_;  // the wire has room, or input closed
    std::deque<std::uint8_t> rx_;       // the receive FIFO (RBR in 8250 mode)
    std::deque<std::uint8_t> wire_;     // host bytes not yet in the FIFO
    bool input_closed_ = false;
    bool thre_pending_ = false;
    bool level_ = false;
    std::uint8_t rbr_ = 0;         // the last byte read, which RBR shows when the FIFO is empty
    std::uint8_t lsr_errors_ = 0;  // OE until LSR is read
    std::uint8_t msr_delta_ = 0;   // MSR bits 0..3 until MSR is read
    std::uint8_t ier_ = 0, lcr_ = 0x03, mcr_ = 0, scr_ = 0, fcr_ = 0, dll_ = 0x0c, dlm_ = 0;
};

/// Binds `input` to `uart`'s receive line. kAlreadyExists if it is bound already (each
/// SerialInput serves one UART).
Status bind_serial_input(SerialInput &input, const std::shared_ptr<Serial8250> &uart);
/// Undoes a bind whose UART did not get attached.
void unbind_serial_input(SerialInput &input);

}  // namespace guestvm

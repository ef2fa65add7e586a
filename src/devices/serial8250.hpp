// guestvm — an 8250/16550-style UART, enough for a polling driver.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "devices/port_device.hpp"
#include "guestvm/exits.hpp"

namespace guestvm {

/// COM1 at 0x3f8..0x3ff. Transmit goes straight to the sink, so the transmitter is always
/// empty (LSR THRE|TEMT); there is no receive data. Every register reads back what a driver
/// wrote. Interrupts as a 16550 raises them on IRQ 4: with IER's THR-empty bit set, the
/// "transmitter empty" interrupt is pending when that bit is enabled and after every byte sent,
/// until IIR reports it or THR is written; the line is gated by MCR OUT2, as on a PC.
/// Thread-safe (vCPUs may share the port).
class Serial8250 {
  public:
    static constexpr std::uint16_t kBase = 0x3f8;
    static constexpr std::uint16_t kPorts = 8;

    static constexpr int kIrq = 4;
    /// Drives the UART's interrupt line (called with the UART's lock held, on level changes).
    using IrqLine = std::function<void(bool level)>;

    explicit Serial8250(SerialSink sink, IrqLine irq = {})
        : sink_(std::move(sink)), irq_(std::move(irq)) {}
    /// A port access at offset 0..7 (wider accesses touch consecutive registers).
    ExitAction io(PortAccess &access);

    /// One register access at offset 0..7 from kBase (public for unit tests).
    std::uint8_t read(std::uint16_t offset);
    void write(std::uint16_t offset, std::uint8_t value, int vcpu);

    /// The level of the interrupt line now (for tests).
    bool irq_level() const;

  private:
    bool line_locked() const noexcept;
    void update_irq_locked();

    SerialSink sink_;
    IrqLine irq_;
    bool thre_pending_ = false;
    bool level_ = false;
    mutable std::mutex mutex_;
    std::uint8_t ier_ = 0, lcr_ = 0x03, mcr_ = 0, scr_ = 0, fcr_ = 0, dll_ = 0x0c, dlm_ = 0;
};

}  // namespace guestvm

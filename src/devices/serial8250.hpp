// guestvm — an 8250/16550-style UART, enough for a polling driver.
#pragma once

#include <cstdint>
#include <mutex>

#include "guestvm/exits.hpp"
#include "guestvm/vm.hpp"

namespace guestvm {

/// COM1 at 0x3f8..0x3ff. Transmit goes straight to the sink, so the transmitter is always
/// empty (LSR THRE|TEMT); there is no receive data. Every register reads back what a driver
/// wrote. Thread-safe (vCPUs may share the port).
class Serial8250 {
  public:
    static constexpr std::uint16_t kBase = 0x3f8;
    static constexpr std::uint16_t kPorts = 8;

    explicit Serial8250(SerialSink sink) : sink_(std::move(sink)) {}
    ExitAction handle(ExitContext &ctx, IoAccess &access);

    /// One register access at offset 0..7 from kBase (public for unit tests).
    std::uint8_t read(std::uint16_t offset);
    void write(std::uint16_t offset, std::uint8_t value, int vcpu);

  private:
    SerialSink sink_;
    std::mutex mutex_;
    std::uint8_t ier_ = 0, lcr_ = 0x03, mcr_ = 0, scr_ = 0, fcr_ = 0, dll_ = 0x0c, dlm_ = 0;
};

}  // namespace guestvm

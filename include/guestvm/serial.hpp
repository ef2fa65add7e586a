// guestvm — guest serial output (LineBuffer) and input (SerialInput).
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>

#include "guestvm/exits.hpp"

namespace guestvm {

/// Collects serial bytes per vCPU and hands on whole lines, so the output of cores that print
/// at the same time stays readable. Thread-safe; must outlive the VM whose sink it is.
class LineBuffer {
  public:
    /// Receives one line (without its '\n') and the vCPU that wrote it.
    using LineFn = std::function<void(int vcpu, std::string_view line)>;

    explicit LineBuffer(LineFn out, std::size_t max_line = 4096);
    ~LineBuffer();
    LineBuffer(const LineBuffer &) = delete;
    LineBuffer &operator=(const LineBuffer &) = delete;

    /// A sink for MachineConfig::serial_sink that writes into this buffer.
    SerialSink sink() {
        return [this](int vcpu, std::string_view bytes) { write(vcpu, bytes); };
    }

    /// Adds `bytes` from `vcpu`; hands on each line it completes (a '\n', or max_line bytes).
    void write(int vcpu, std::string_view bytes);

    /// Hands on every unfinished line.
    void flush();

  private:
    struct Pending;  // the unfinished lines and their lock (src/devices/line_buffer.cpp)
    LineFn out_;
    std::size_t max_line_;
    std::unique_ptr<Pending> pending_;
};

/// The host's end of a guest UART's receive line: what write() takes arrives in the guest's
/// RBR, in order, and raises the UART's receive interrupt when the guest enabled it.
///
/// Give one to MachineConfig::serial_input (or attach_serial) and keep the shared_ptr: the
/// builder binds it to COM1. Before that, and once the VM is destroyed, it takes nothing
/// (write() answers 0, connected() false): it never points into a VM that is gone. The wire
/// behind the UART's FIFO is bounded (4 KiB): a writer faster than the guest reads gets
/// back-pressure (a short write, then wait_for_room) rather than lost bytes.
/// Thread-safe: any thread, any time, the VM's destruction included.
class SerialInput {
  public:
    SerialInput();
    ~SerialInput();
    SerialInput(const SerialInput &) = delete;
    SerialInput &operator=(const SerialInput &) = delete;

    /// Queues as many of `bytes` as there is room for; returns how many (0 when full, not yet
    /// bound, or the VM is gone). Never blocks on the guest.
    std::size_t write(std::span<const std::uint8_t> bytes);
    std::size_t write(std::string_view text) {
        return write(std::span(reinterpret_cast<const std::uint8_t *>(text.data()), text.size()));
    }
    /// Waits until write() would take a byte (true), or until the VM is gone, `stop` is
    /// requested or `timeout` passes (false).
    bool wait_for_room(std::stop_token stop, std::chrono::milliseconds timeout);
    /// Writes all of `bytes`, waiting for room as the guest reads; returns how many it wrote
    /// (fewer when the VM goes away, `stop` is requested or `timeout` passes in one wait).
    std::size_t write_all(std::span<const std::uint8_t> bytes, std::stop_token stop = {},
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
    /// Bound to a UART whose VM still exists.
    bool connected() const;

    /// The binding (internal: src/devices/serial_input.cpp).
    struct Link;
    Link &link() noexcept { return *link_; }

  private:
    std::unique_ptr<Link> link_;
};

}  // namespace guestvm

#pragma GCC visibility pop

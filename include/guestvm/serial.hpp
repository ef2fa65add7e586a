// guestvm — helpers for guest serial output.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <functional>
#include <memory>
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

}  // namespace guestvm

#pragma GCC visibility pop

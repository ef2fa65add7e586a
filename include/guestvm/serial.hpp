// guestvm — helpers for guest serial output.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <functional>
#include <map>
#include <mutex>
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

    explicit LineBuffer(LineFn out, std::size_t max_line = 4096)
        : out_(std::move(out)), max_line_(max_line) {}

    /// A sink for VmConfig::serial_sink that writes into this buffer.
    SerialSink sink() {
        return [this](int vcpu, std::string_view bytes) { write(vcpu, bytes); };
    }

    void write(int vcpu, std::string_view bytes) {
        std::lock_guard lock(mutex_);
        std::string &pending = pending_[vcpu];
        for (char c : bytes) {
            if (c == '\n') {
                emit(vcpu, pending);
            } else if (c != '\r') {
                pending.push_back(c);
                if (pending.size() >= max_line_) emit(vcpu, pending);
            }
        }
    }

    /// Hands on every unfinished line.
    void flush() {
        std::lock_guard lock(mutex_);
        for (auto &[vcpu, pending] : pending_) {
            if (!pending.empty()) emit(vcpu, pending);
        }
    }

  private:
    void emit(int vcpu, std::string &pending) {
        out_(vcpu, pending);
        pending.clear();
    }

    LineFn out_;
    std::size_t max_line_;
    std::mutex mutex_;
    std::map<int, std::string> pending_;
};

}  // namespace guestvm

#pragma GCC visibility pop

#include <map>
#include <mutex>
#include <string>

#include "guestvm/serial.hpp"

namespace guestvm {

struct LineBuffer::Pending {
    std::mutex mutex;
    std::map<int, std::string> lines;  // by vCPU
};

LineBuffer::LineBuffer(LineFn out, std::size_t max_line)
    : out_(std::move(out)), max_line_(max_line), pending_(std::make_unique<Pending>()) {}

LineBuffer::~LineBuffer() = default;

void LineBuffer::write(int vcpu, std::string_view bytes) {
    std::lock_guard lock(pending_->mutex);
    std::string &line = pending_->lines[vcpu];
    for (char c : bytes) {
        if (c != '\n' && c != '\r') line.push_back(c);
        if (c == '\n' || line.size() >= max_line_) {
            out_(vcpu, line);
            line.clear();
        }
    }
}

void LineBuffer::flush() {
    std::lock_guard lock(pending_->mutex);
    for (auto &[vcpu, line] : pending_->lines) {
        if (line.empty()) continue;
        out_(vcpu, line);
        line.clear();
    }
}

}  // namespace guestvm

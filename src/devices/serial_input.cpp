// The host's handle on a UART's receive line. It holds the UART weakly: the VM owns the UART
// (its port handler), and the VM's destruction closes the UART's input first, so a write that
// races with it either finishes while the VM is whole or takes nothing.
#include <mutex>

#include "devices/serial8250.hpp"
#include "guestvm/serial.hpp"

namespace guestvm {

struct SerialInput::Link {
    mutable std::mutex mutex;
    std::weak_ptr<Serial8250> uart;  // guarded by mutex
    bool bound = false;              // guarded by mutex

    std::shared_ptr<Serial8250> get() const {
        std::lock_guard lock(mutex);
        return uart.lock();
    }
};

SerialInput::SerialInput() : link_(std::make_unique<Link>()) {}
SerialInput::~SerialInput() = default;

std::size_t SerialInput::write(std::span<const std::uint8_t> bytes) {
    auto uart = link_->get();
    return uart ? uart->push_input(bytes) : 0;
}

bool SerialInput::wait_for_room(std::stop_token stop, std::chrono::milliseconds timeout) {
    auto uart = link_->get();
    return uart && uart->wait_for_input_room(std::move(stop), timeout);
}

std::size_t SerialInput::write_all(std::span<const std::uint8_t> bytes, std::stop_token stop,
                                   std::chrono::milliseconds timeout) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        done += write(bytes.subspan(done));
        if (done < bytes.size() && !wait_for_room(stop, timeout)) break;
    }
    return done;
}

bool SerialInput::connected() const {
    auto uart = link_->get();
    return uart && !uart->input_closed();
}

Status bind_serial_input(SerialInput &input, const std::shared_ptr<Serial8250> &uart) {
    SerialInput::Link &link = input.link();
    std::lock_guard lock(link.mutex);
    if (link.bound) {
        return make_error(Errc::kAlreadyExists,
                          "this SerialInput is bound to a UART already: give each machine its own");
    }
    link.uart = uart;
    link.bound = true;
    return {};
}

void unbind_serial_input(SerialInput &input) {
    SerialInput::Link &link = input.link();
    std::lock_guard lock(link.mutex);
    link.uart.reset();
    link.bound = false;
}

}  // namespace guestvm

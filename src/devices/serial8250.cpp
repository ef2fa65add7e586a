#include "devices/serial8250.hpp"

#include <algorithm>

namespace guestvm {

namespace {
// Register offsets.
constexpr std::uint16_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                        kScr = 7;
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kIerRdi = 0x01, kIerThri = 0x02, kIerRlsi = 0x04, kIerMsi = 0x08;
// IIR interrupt ids, highest priority first; bit 0 set means none.
constexpr std::uint8_t kIirLineStatus = 0x06, kIirRxData = 0x04, kIirRxTimeout = 0x0c,
                       kIirThre = 0x02, kIirModem = 0x00, kIirNone = 0x01, kIirFifo = 0xc0;
constexpr std::uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02, kFcrTrigger = 0xc0;
constexpr std::uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08,
                       kMcrLoop = 0x10;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr std::uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08;

// FCR bits 7..6: the receive FIFO's trigger level.
std::size_t trigger_level(std::uint8_t fcr) {
    constexpr std::size_t kLevels[] = {1, 4, 8, 14};
    return kLevels[(fcr & kFcrTrigger) >> 6];
}
}  // namespace

Serial8250::Serial8250(SerialSink sink, IrqLine irq, std::size_t wire_bytes)
    : sink_(std::move(sink)),
      irq_(std::move(irq)),
      wire_capacity_(std::max<std::size_t>(wire_bytes, 1)) {}

ExitAction Serial8250::io(PortAccess &access) {
    // Wider accesses touch consecutive registers, as on the ISA bus.
    for (std::size_t i = 0; i < access.data.size(); ++i) {
        const std::uint64_t offset = access.offset + i;
        if (offset >= kPorts) {
            if (!access.is_write) access.data[i] = 0xff;
            continue;
        }
        if (access.is_write) {
            write(static_cast<std::uint16_t>(offset), access.data[i], access.vcpu);
        } else {
            access.data[i] = read(static_cast<std::uint16_t>(offset));
        }
    }
    return ExitAction::kContinue;
}

std::uint8_t Serial8250::read(std::uint16_t offset) {
    std::lock_guard lock(mutex_);
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
        case kRbrThr:
            return dlab ? dll_ : read_rbr_locked();
        case kIer:
            return dlab ? dlm_ : ier_;
        case kIirFcr:
            return read_iir_locked();
        case kLcr:
            return lcr_;
        case kMcr:
            return mcr_;
        case kLsr: {
            const auto lsr = static_cast<std::uint8_t>((rx_.empty() ? 0 : kLsrDr) | lsr_errors_ |
                                                       kLsrThre | kLsrTemt);
            lsr_errors_ = 0;  // reading LSR clears the error bits and their interrupt
            update_irq_locked();
            return lsr;
        }
        case kMsr: {
            const auto msr = static_cast<std::uint8_t>(modem_lines_locked() | msr_delta_);
            msr_delta_ = 0;
            update_irq_locked();
            return msr;
        }
        case kScr:
            return scr_;
        default:
            return 0xff;
    }
}

void Serial8250::write(std::uint16_t offset, std::uint8_t value, int vcpu) {
    std::lock_guard lock(mutex_);
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
        case kRbrThr:
            if (dlab) {
                dll_ = value;
            } else {
                write_thr_locked(value, vcpu);
            }
            break;
        case kIer:
            if (dlab) {
                dlm_ = value;
            } else {
                // Enabling the THR-empty interrupt while THR is empty raises it at once.
                if ((value & kIerThri) != 0 && (ier_ & kIerThri) == 0) thre_pending_ = true;
                ier_ = value & 0x0f;
                update_irq_locked();
            }
            break;
        case kIirFcr:
            write_fcr_locked(value);
            break;
        case kLcr:
            lcr_ = value;
            break;
        case kMcr:
            write_mcr_locked(value);
            break;
        case kScr:
            scr_ = value;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
}

std::uint8_t Serial8250::read_rbr_locked() {
    if (rx_.empty()) return rbr_;  // no data: the last byte again, as the register holds it
    rbr_ = rx_.front();
    rx_.pop_front();
    refill_locked();
    update_irq_locked();
    room_.notify_all();
    return rbr_;
}

std::uint8_t Serial8250::read_iir_locked() {
    const std::uint8_t id = pending_interrupt_locked();
    if (id == kIirThre) {
        thre_pending_ = false;  // reading IIR acknowledges "THR empty" when IIR reports it
        update_irq_locked();
    }
    return static_cast<std::uint8_t>(((fcr_ & kFcrEnable) != 0 ? kIirFifo : 0) | id);
}

void Serial8250::write_thr_locked(std::uint8_t value, int vcpu) {
    if ((mcr_ & kMcrLoop) != 0) {
        receive_locked(value);
    } else if (sink_) {
        char c = static_cast<char>(value);
        sink_(vcpu, std::string_view(&c, 1));  // under the lock: keeps bytes in order
    }
    // Writing THR clears the interrupt; the byte leaves at once and THR is empty again, which
    // is a new interrupt: the line falls and rises (a new edge).
    thre_pending_ = false;
    update_irq_locked();
    thre_pending_ = true;
    update_irq_locked();
}

void Serial8250::write_fcr_locked(std::uint8_t value) {
    const bool enable = (value & kFcrEnable) != 0;
    // Switching between FIFO and 8250 mode empties the FIFOs; the other bits only take with
    // the enable bit set. Clearing the transmit FIFO has nothing to do: it is always empty.
    if (enable != ((fcr_ & kFcrEnable) != 0) || (enable && (value & kFcrClearRx) != 0)) {
        rx_.clear();
    }
    fcr_ = enable ? static_cast<std::uint8_t>(value & (kFcrEnable | kFcrTrigger)) : 0;
    refill_locked();
    update_irq_locked();
    room_.notify_all();
}

void Serial8250::write_mcr_locked(std::uint8_t value) {
    const std::uint8_t before = modem_lines_locked();
    const bool was_loop = (mcr_ & kMcrLoop) != 0;
    mcr_ = value & 0x1f;
    const std::uint8_t after = modem_lines_locked();
    const auto changed = static_cast<std::uint8_t>(before ^ after);
    if ((changed & kMsrCts) != 0) msr_delta_ |= kMsrDcts;
    if ((changed & kMsrDsr) != 0) msr_delta_ |= kMsrDdsr;
    if ((before & kMsrRi) != 0 && (after & kMsrRi) == 0) msr_delta_ |= kMsrTeri;
    if ((changed & kMsrDcd) != 0) msr_delta_ |= kMsrDdcd;
    if (was_loop != ((mcr_ & kMcrLoop) != 0)) {
        refill_locked();  // the wire is connected again (or no longer takes FIFO room)
        room_.notify_all();
    }
    update_irq_locked();
}

std::uint8_t Serial8250::modem_lines_locked() const noexcept {
    if ((mcr_ & kMcrLoop) == 0) return kMsrCts | kMsrDsr | kMsrDcd;
    // Loopback: RTS → CTS, DTR → DSR, OUT1 → RI, OUT2 → DCD.
    return static_cast<std::uint8_t>(
        ((mcr_ & kMcrRts) != 0 ? kMsrCts : 0) | ((mcr_ & kMcrDtr) != 0 ? kMsrDsr : 0) |
        ((mcr_ & kMcrOut1) != 0 ? kMsrRi : 0) | ((mcr_ & kMcrOut2) != 0 ? kMsrDcd : 0));
}

std::size_t Serial8250::fifo_capacity_locked() const noexcept {
    return (fcr_ & kFcrEnable) != 0 ? kFifoBytes : 1;
}

void Serial8250::receive_locked(std::uint8_t byte) {
    if (rx_.size() < fifo_capacity_locked()) {
        rx_.push_back(byte);
    } else if ((fcr_ & kFcrEnable) == 0) {
        rx_.back() = byte;  // 8250 mode: the new byte overwrites the unread one
        lsr_errors_ |= kLsrOe;
    } else {
        lsr_errors_ |= kLsrOe;  // FIFO mode: the FIFO keeps its bytes, the new one is lost
    }
    update_irq_locked();
}

void Serial8250::refill_locked() {
    if ((mcr_ & kMcrLoop) != 0) return;  // loopback disconnects the wire
    while (!wire_.empty() && rx_.size() < fifo_capacity_locked()) {
        rx_.push_back(wire_.front());
        wire_.pop_front();
    }
}

std::size_t Serial8250::room_locked() const noexcept {
    if (input_closed_) return 0;
    // Outside loopback the wire is empty while the FIFO has room: both are room.
    const std::size_t fifo_free = (mcr_ & kMcrLoop) != 0 || rx_.size() >= fifo_capacity_locked()
                                      ? 0
                                      : fifo_capacity_locked() - rx_.size();
    return wire_capacity_ - wire_.size() + fifo_free;
}

std::uint8_t Serial8250::pending_interrupt_locked() const noexcept {
    if ((ier_ & kIerRlsi) != 0 && lsr_errors_ != 0) return kIirLineStatus;
    if ((ier_ & kIerRdi) != 0 && !rx_.empty()) {
        const bool fifo = (fcr_ & kFcrEnable) != 0;
        return !fifo || rx_.size() >= trigger_level(fcr_) ? kIirRxData : kIirRxTimeout;
    }
    if ((ier_ & kIerThri) != 0 && thre_pending_) return kIirThre;
    if ((ier_ & kIerMsi) != 0 && msr_delta_ != 0) return kIirModem;
    return kIirNone;
}

void Serial8250::update_irq_locked() {
    const bool level = pending_interrupt_locked() != kIirNone && (mcr_ & kMcrOut2) != 0;
    if (level == level_) return;
    level_ = level;
    if (irq_) irq_(level);
}

bool Serial8250::irq_level() const {
    std::lock_guard lock(mutex_);
    return level_;
}

std::size_t Serial8250::push_input(std::span<const std::uint8_t> bytes) {
    std::lock_guard lock(mutex_);
    const std::size_t taken = std::min(bytes.size(), room_locked());
    wire_.insert(wire_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(taken));
    refill_locked();
    update_irq_locked();
    return taken;
}

std::size_t Serial8250::input_room() const {
    std::lock_guard lock(mutex_);
    return room_locked();
}

bool Serial8250::wait_for_input_room(std::stop_token stop, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    room_.wait_for(lock, stop, timeout, [this] { return input_closed_ || room_locked() > 0; });
    return room_locked() > 0 && !stop.stop_requested();
}

void Serial8250::close_input() {
    std::lock_guard lock(mutex_);
    input_closed_ = true;
    wire_.clear();
    room_.notify_all();
}

bool Serial8250::input_closed() const {
    std::lock_guard lock(mutex_);
    return input_closed_;
}

}  // namespace guestvm

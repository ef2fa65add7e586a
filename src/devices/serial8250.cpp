#include "devices/serial8250.hpp"

namespace guestvm {

namespace {
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kIirNoInterrupt = 0x01, kIirThre = 0x02, kIirFifo = 0xc0;
constexpr std::uint8_t kIerThri = 0x02;
constexpr std::uint8_t kMcrOut2 = 0x08;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrDcd = 0x80;
constexpr std::uint8_t kMcrLoop = 0x10;
}  // namespace

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
        case 0:
            return dlab ? dll_ : 0;  // RBR: no receive data
        case 1:
            return dlab ? dlm_ : ier_;
        case 2: {
            const auto fifo = static_cast<std::uint8_t>((fcr_ & 1) ? kIirFifo : 0);
            if ((ier_ & kIerThri) != 0 && thre_pending_) {
                thre_pending_ = false;  // reading IIR acknowledges "transmitter empty"
                update_irq_locked();
                return fifo | kIirThre;
            }
            return fifo | kIirNoInterrupt;
        }
        case 3:
            return lcr_;
        case 4:
            return mcr_;
        case 5:
            return kLsrThre | kLsrTemt;
        case 6:  // MSR: in loopback the modem lines echo MCR
            return (mcr_ & kMcrLoop) ? static_cast<std::uint8_t>((mcr_ & 0x0f) << 4)
                                     : static_cast<std::uint8_t>(kMsrCts | kMsrDsr | kMsrDcd);
        case 7:
            return scr_;
        default:
            return 0xff;
    }
}

void Serial8250::write(std::uint16_t offset, std::uint8_t value, int vcpu) {
    std::unique_lock lock(mutex_);
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
        case 0:
            if (dlab) {
                dll_ = value;
            } else {
                if ((mcr_ & kMcrLoop) == 0 && sink_) {
                    char c = static_cast<char>(value);
                    sink_(vcpu, std::string_view(&c, 1));  // under the lock: keeps bytes in order
                }
                // Writing THR clears the interrupt; the byte leaves at once and THR is empty
                // again, which is a new interrupt: the line falls and rises (a new edge).
                thre_pending_ = false;
                update_irq_locked();
                thre_pending_ = true;
                update_irq_locked();
            }
            break;
        case 1:
            if (dlab)
                dlm_ = value;
            else {
                // Enabling the THR-empty interrupt while THR is empty raises it at once.
                if ((value & kIerThri) != 0 && (ier_ & kIerThri) == 0) thre_pending_ = true;
                ier_ = value & 0x0f;
                update_irq_locked();
            }
            break;
        case 2:
            fcr_ = value;
            break;
        case 3:
            lcr_ = value;
            break;
        case 4:
            mcr_ = value & 0x1f;
            update_irq_locked();
            break;
        case 7:
            scr_ = value;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
}

bool Serial8250::line_locked() const noexcept {
    return (ier_ & kIerThri) != 0 && thre_pending_ && (mcr_ & kMcrOut2) != 0;
}

void Serial8250::update_irq_locked() {
    const bool level = line_locked();
    if (level == level_) return;
    level_ = level;
    if (irq_) irq_(level);
}

bool Serial8250::irq_level() const {
    std::lock_guard lock(mutex_);
    return level_;
}

}  // namespace guestvm

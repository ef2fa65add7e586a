#include "devices/serial8250.hpp"

#include "guestvm/vcpu.hpp"

namespace guestvm {

namespace {
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kIirNoInterrupt = 0x01, kIirFifo = 0xc0;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrDcd = 0x80;
constexpr std::uint8_t kMcrLoop = 0x10;
}  // namespace

ExitAction Serial8250::handle(ExitContext &ctx, IoAccess &access) {
    const int vcpu = ctx.vcpu != nullptr ? ctx.vcpu->id().value() : -1;
    // Wider accesses touch consecutive registers, as on the ISA bus.
    for (std::size_t i = 0; i < access.data.size(); ++i) {
        auto offset = static_cast<std::uint16_t>(access.port - kBase + i);
        if (offset >= kPorts) {
            if (!access.is_write) access.data[i] = 0xff;
            continue;
        }
        if (access.is_write) {
            write(offset, access.data[i], vcpu);
        } else {
            access.data[i] = read(offset);
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
        case 2:
            return static_cast<std::uint8_t>(((fcr_ & 1) ? kIirFifo : 0) | kIirNoInterrupt);
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
            } else if ((mcr_ & kMcrLoop) == 0 && sink_) {
                char c = static_cast<char>(value);
                sink_(vcpu, std::string_view(&c, 1));  // under the lock: keeps bytes in order
            }
            break;
        case 1:
            if (dlab)
                dlm_ = value;
            else
                ier_ = value & 0x0f;
            break;
        case 2:
            fcr_ = value;
            break;
        case 3:
            lcr_ = value;
            break;
        case 4:
            mcr_ = value & 0x1f;
            break;
        case 7:
            scr_ = value;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
}

}  // namespace guestvm

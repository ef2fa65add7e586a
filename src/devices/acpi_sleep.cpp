#include "devices/acpi_sleep.hpp"

namespace guestvm {

ExitAction AcpiSleep::io(PortAccess &access) {
    for (std::size_t i = 0; i < access.data.size(); ++i) {
        const std::uint64_t offset = access.offset + i;
        if (offset >= kPorts) {
            if (!access.is_write) access.data[i] = 0xff;
            continue;
        }
        const bool control = offset == 0;
        if (access.is_write) {
            if (control) {
                write_control(access.data[i], access.vcpu);
            } else {
                std::lock_guard lock(mutex_);
                status_ &= static_cast<std::uint8_t>(~(access.data[i] & kWakeStatus));
            }
        } else {
            std::lock_guard lock(mutex_);
            access.data[i] = control ? 0 : status_;
        }
    }
    return ExitAction::kContinue;
}

void AcpiSleep::write_control(std::uint8_t value, int vcpu) {
    if ((value & kSleepEnable) == 0) return;  // SLP_TYP alone does nothing until SLP_EN
    const auto type = static_cast<std::uint8_t>((value & kSleepTypeMask) >> kSleepTypeShift);
    if (type == s5_type_) {
        if (power_off_) power_off_(vcpu);
        return;
    }
    // Sleeping (S1-S4) is not implemented: the guest "wakes" at once.
    std::lock_guard lock(mutex_);
    ++ignored_;
    status_ |= kWakeStatus;
}

std::uint64_t AcpiSleep::ignored_requests() const {
    std::lock_guard lock(mutex_);
    return ignored_;
}

}  // namespace guestvm

// The exit vocabulary's names and counters (guestvm/exits.hpp).
#include "guestvm/exits.hpp"

namespace guestvm {

const char *stop_reason_name(StopReason reason) noexcept {
    switch (reason) {
        case StopReason::kPowerOff:
            return "power-off";
        case StopReason::kReset:
            return "reset";
        case StopReason::kAllVcpusOff:
            return "all-vcpus-off";
        case StopReason::kUnhandledExit:
            return "unhandled-exit";
        case StopReason::kGuestFault:
            return "guest-fault";
        case StopReason::kError:
            return "error";
        case StopReason::kRequested:
            return "requested";
    }
    return "unknown";
}

const char *exit_kind_name(ExitKind kind) noexcept {
    switch (kind) {
        case ExitKind::kIo:
            return "io";
        case ExitKind::kMmio:
            return "mmio";
        case ExitKind::kHlt:
            return "hlt";
        case ExitKind::kShutdown:
            return "shutdown";
        case ExitKind::kFailEntry:
            return "fail_entry";
        case ExitKind::kInternalError:
            return "internal_error";
        case ExitKind::kSystemEvent:
            return "system_event";
        case ExitKind::kInterrupted:
            return "interrupted";
        case ExitKind::kUnknown:
            return "unknown";
        case ExitKind::kCount:
            break;
    }
    return "invalid";
}

std::uint64_t ExitCounts::total() const noexcept {
    std::uint64_t sum = 0;
    for (auto n : by_kind) sum += n;
    return sum;
}

ExitCounts &ExitCounts::operator+=(const ExitCounts &o) noexcept {
    for (std::size_t i = 0; i < by_kind.size(); ++i) by_kind[i] += o.by_kind[i];
    return *this;
}

}  // namespace guestvm

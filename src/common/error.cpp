#include "guestvm/error.hpp"

#include <cstring>
#include <string>

namespace guestvm {

std::string_view errc_name(Errc code) noexcept {
    switch (code) {
        case Errc::kOk:
            return "ok";
        case Errc::kInvalidArgument:
            return "invalid-argument";
        case Errc::kNotFound:
            return "not-found";
        case Errc::kAlreadyExists:
            return "already-exists";
        case Errc::kNullCapability:
            return "null-capability";
        case Errc::kStaleCapability:
            return "stale-capability";
        case Errc::kWrongCapType:
            return "wrong-capability-type";
        case Errc::kBadState:
            return "bad-state";
        case Errc::kKvmUnavailable:
            return "kvm-unavailable";
        case Errc::kSystem:
            return "system";
        case Errc::kMalformedImage:
            return "malformed-image";
        case Errc::kResourceExhausted:
            return "resource-exhausted";
        case Errc::kTimeout:
            return "timeout";
    }
    return "unknown";
}

std::unexpected<Error> errno_error(std::string_view call, int err) {
    const char *name = strerrorname_np(err);
    std::string message(call);
    message += ": ";
    message += std::strerror(err);
    if (name != nullptr) {
        message += " (";
        message += name;
        message += ")";
    }
    return std::unexpected(Error(Errc::kSystem, std::move(message)));
}

}  // namespace guestvm

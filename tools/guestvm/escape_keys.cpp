// guestvm CLI — the console's escape keys.
#include "escape_keys.hpp"

namespace guestvm::cli {

Keys EscapeKeys::feed(std::span<const std::uint8_t> input) {
    Keys keys;
    for (std::uint8_t key : input) {
        if (!escaped_) {
            if (key == kEscape) {
                escaped_ = true;
            } else {
                keys.forward.push_back(static_cast<char>(key));
            }
            continue;
        }
        escaped_ = false;
        switch (key) {
            case kEscape:
                keys.forward.push_back(static_cast<char>(kEscape));
                break;
            case 'x':
            case 'X':
                keys.quit = true;
                return keys;
            case 'h':
            case 'H':
            case '?':
                keys.help = true;
                break;
            default:
                break;  // not a command: both keys are dropped
        }
    }
    return keys;
}

const char *escape_keys_help() {
    return "guestvm console: Ctrl-A, then\n"
           "  x       quit: stop the VM (guestvm exits 0)\n"
           "  h       this help\n"
           "  Ctrl-A  send Ctrl-A to the guest\n";
}

}  // namespace guestvm::cli

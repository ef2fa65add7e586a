// guestvm CLI — the console's escape keys: Ctrl-A, then a command, as in QEMU's -nographic.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace guestvm::cli {

// What a piece of keyboard input means once the escape commands are taken out of it.
struct Keys {
    std::string forward;  // bytes for the guest, in order
    bool quit = false;    // Ctrl-A x (or X): the input after it is dropped
    bool help = false;    // Ctrl-A h (or H, ?)
};

// Splits keyboard input into bytes for the guest and escape commands: Ctrl-A x quits, Ctrl-A h
// asks for help, Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A and any other key is dropped, both
// keys. A Ctrl-A at the end of one piece applies to the first key of the next. One thread.
class EscapeKeys {
  public:
    static constexpr std::uint8_t kEscape = 0x01;  // Ctrl-A

    Keys feed(std::span<const std::uint8_t> input);

  private:
    bool escaped_ = false;  // the last key was an unpaired Ctrl-A
};

// The help text for Ctrl-A h.
const char *escape_keys_help();

}  // namespace guestvm::cli

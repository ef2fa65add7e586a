// guestvm CLI — the command line's values, and the run request checked from them.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>

#include "guestvm/vm.hpp"

namespace guestvm::cli {

// Exit statuses (also in --help).
constexpr int kExitOk = 0;       // the guest powered off, or every vCPU went off
constexpr int kExitFailure = 1;  // no KVM, bad image, guest fault, unhandled exit, error
constexpr int kExitUsage = 2;    // bad command line
constexpr int kExitReset = 3;    // the guest asked for a reset
constexpr int kExitTimeout = 4;  // --timeout ran out first

// `guestvm run`'s options as CLI11 stores them, before any check across them.
struct Options {
    int vcpus = 1;
    std::string mem;  // default: 64M, or 512M for a Linux kernel
    bool json = false;
    bool start_all = false;
    bool irqchip = false;
    double timeout = 0;
    std::string guest;      // an ELF executable
    std::string flat;       // a flat binary
    std::string load_addr;  // where the flat binary goes
    std::string kernel;     // a Linux kernel (bzImage or vmlinux)
    std::string initrd;
    std::string cmdline;
    std::string boot = "pvh";
    std::string emulation_assist = "auto";
    double sample_rip_ms = 0;
    std::string stdin_mode = "auto";  // auto: forward standard input to COM1; none: leave it
};

enum class ImageKind { kBuiltinDemo, kElf, kFlat, kLinuxPvh, kLinuxBzImage };

// A run the options describe, every value checked and parsed; owns plain values only.
struct RunRequest {
    int vcpus = 1;
    std::uint64_t ram_bytes = 0;
    bool json = false;
    bool start_all = false;
    bool irqchip = false;
    std::optional<double> timeout_seconds;
    ImageKind kind = ImageKind::kBuiltinDemo;
    std::string path;             // the image file (empty for the built-in demo)
    std::uint64_t load_addr = 0;  // kFlat only
    std::string initrd;           // Linux only, may be empty
    std::string cmdline;          // Linux only
    EmulationAssist emulation_assist = EmulationAssist::kAuto;
    std::optional<double> sample_rip_ms;  // --sample-rip: the sampling period
    bool forward_stdin = true;            // standard input goes to COM1 (console.hpp says how)

    bool is_linux() const {
        return kind == ImageKind::kLinuxPvh || kind == ImageKind::kLinuxBzImage;
    }
};

// Why the options make no run: the exit status and a one-line message.
struct Refusal {
    int status;
    std::string message;
};

/// "64M", "0x7c00", "1GiB", ...: bytes, or nullopt if `text` is not a size.
std::optional<std::uint64_t> parse_size(const std::string &text);

/// The run `opt` asks for, or why there is none (kExitUsage for options that do not go
/// together or a bad --mem; kExitFailure for a bad --load-addr, as before the split).
std::expected<RunRequest, Refusal> make_request(const Options &opt);

}  // namespace guestvm::cli

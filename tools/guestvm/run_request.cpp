// guestvm CLI — checks the command line's values into a run request.
#include "run_request.hpp"

#include <string>

#include "guestvm/loader.hpp"

namespace guestvm::cli {

std::optional<std::uint64_t> parse_size(const std::string &text) {
    if (text.empty()) return std::nullopt;
    std::size_t pos = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &pos, 0);
    } catch (...) {
        return std::nullopt;
    }
    std::string suffix = text.substr(pos);
    unsigned shift = 0;
    if (suffix == "" || suffix == "B")
        shift = 0;
    else if (suffix == "K" || suffix == "k" || suffix == "KiB")
        shift = 10;
    else if (suffix == "M" || suffix == "m" || suffix == "MiB")
        shift = 20;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB")
        shift = 30;
    else
        return std::nullopt;
    if (value > (~0ull >> shift)) return std::nullopt;
    return value << shift;
}

namespace {

std::unexpected<Refusal> usage(std::string message) {
    return std::unexpected(Refusal{kExitUsage, std::move(message)});
}

// Which image the options name (the flags were checked to name at most one).
ImageKind image_kind(const Options &opt) {
    if (!opt.kernel.empty()) {
        return opt.boot == "bzimage" ? ImageKind::kLinuxBzImage : ImageKind::kLinuxPvh;
    }
    if (!opt.flat.empty()) return ImageKind::kFlat;
    return opt.guest.empty() ? ImageKind::kBuiltinDemo : ImageKind::kElf;
}

}  // namespace

std::expected<RunRequest, Refusal> make_request(const Options &opt) {
    const bool is_kernel = !opt.kernel.empty();
    if (!opt.guest.empty() + !opt.flat.empty() + is_kernel > 1) {
        return usage("give one of GUEST, --flat and --kernel");
    }
    if (!is_kernel && (!opt.initrd.empty() || !opt.cmdline.empty())) {
        return usage("--initrd and --cmdline go with --kernel");
    }
    if (opt.flat.empty() && !opt.load_addr.empty()) return usage("--load-addr goes with --flat");
    const std::string mem_text = !opt.mem.empty() ? opt.mem : is_kernel ? "512M" : "64M";
    const auto mem = parse_size(mem_text);
    if (!mem) return usage("--mem " + mem_text + ": expected a size such as 64M or 1G");

    RunRequest req;
    req.vcpus = opt.vcpus;
    req.ram_bytes = *mem;
    req.json = opt.json;
    req.start_all = opt.start_all;
    req.irqchip = opt.irqchip;
    if (opt.timeout > 0) req.timeout_seconds = opt.timeout;
    req.kind = image_kind(opt);
    req.path = is_kernel ? opt.kernel : !opt.flat.empty() ? opt.flat : opt.guest;
    req.initrd = opt.initrd;
    req.cmdline = opt.cmdline;
    if (opt.sample_rip_ms > 0) req.sample_rip_ms = opt.sample_rip_ms;
    req.emulation_assist = opt.emulation_assist == "on"    ? EmulationAssist::kOn
                           : opt.emulation_assist == "off" ? EmulationAssist::kOff
                                                           : EmulationAssist::kAuto;
    req.forward_stdin = opt.stdin_mode != "none";
    req.load_addr = kDefaultFlatLoadAddr;
    if (!opt.load_addr.empty()) {
        const auto at = parse_size(opt.load_addr);
        if (!at) {
            return std::unexpected(
                Refusal{kExitFailure, "--load-addr " + opt.load_addr + ": not an address"});
        }
        req.load_addr = *at;
    }
    return req;
}

}  // namespace guestvm::cli

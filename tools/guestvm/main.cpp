// guestvm — the command-line tool: runs a guest on KVM and reports the VM's vCPUs through the
// guest VM util interface.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "builtin_guests.h"
#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"
#include "guestvm/serial.hpp"

namespace {

using guestvm::StopReason;

// Exit statuses (also in --help).
constexpr int kExitOk = 0;       // the guest powered off, or every vCPU went off
constexpr int kExitFailure = 1;  // no KVM, bad image, guest fault, unhandled exit, error
constexpr int kExitUsage = 2;    // bad command line
constexpr int kExitReset = 3;    // the guest asked for a reset
constexpr int kExitTimeout = 4;  // --timeout ran out first

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
};

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

struct Line {
    int vcpu;
    std::string text;
};

// One row per logical vCPU, built from the util interface's C++ equivalents: vcpu_cap (=
// vm_get_vcpu), vcpu_for_target (= vm_vcpu_for_target_cpu), tcb (= vm_get_vcpu_tcb), online
// (= is_vcpu_online); vcpus a core was never assigned come from free_unassigned_vcpu's order.
struct Row {
    int id;
    int core;
    bool online;
    std::uint64_t tcb;
    std::uint64_t vcpu_cap;
    guestvm::ExitCounts exits;
};

std::vector<Row> util_table(guestvm::Vm &vm) {
    const int n = vm.vcpu_count();
    std::vector<Row> rows(static_cast<std::size_t>(n));
    for (int id = 0; id < n; ++id) {
        rows[static_cast<std::size_t>(id)] = {id, -1, false, 0, vm.vcpu_cap(id).value(), {}};
    }
    auto fill = [&](guestvm::Vcpu *v, int core) {
        Row &r = rows[static_cast<std::size_t>(v->id().value())];
        r.core = core;
        r.online = v->online();
        r.tcb = v->tcb().value();
        r.exits = v->exit_counts();
    };
    for (int core = 0; core < vm.vcpu_capacity(); ++core) {
        if (guestvm::Vcpu *v = vm.vcpu_for_target(core)) fill(v, core);
    }
    for (int id = 0; id < n; ++id) {
        if (guestvm::Vcpu *v = vm.vcpu(id); v != nullptr && v->target_core() < 0) fill(v, -1);
    }
    return rows;
}

int exit_status(StopReason reason) {
    switch (reason) {
        case StopReason::kPowerOff:
        case StopReason::kAllVcpusOff:
            return kExitOk;
        case StopReason::kReset:
            return kExitReset;
        default:
            return kExitFailure;
    }
}

int fail(const std::string &message) {
    std::fflush(stdout);
    std::fprintf(stderr, "guestvm: %s\n", message.c_str());
    return kExitFailure;
}

// The image the options name, read and planned against `ram`.
struct Image {
    std::string name;
    std::vector<std::uint8_t> file, initrd;
    guestvm::LoadPlan plan;
};

guestvm::Result<Image> plan_image(const Options &opt, std::span<const guestvm::RamRange> ram) {
    Image img;
    std::span<const std::uint8_t> bytes(guestvm_guest_demo_start,
                                        guestvm_guest_demo_end - guestvm_guest_demo_start);
    img.name = "built-in demo";
    const std::string &path = !opt.kernel.empty() ? opt.kernel
                              : !opt.flat.empty() ? opt.flat
                                                  : opt.guest;
    if (!path.empty()) {
        GUESTVM_TRY_ASSIGN(file, guestvm::read_file(path));
        img.file = std::move(file);
        bytes = img.file;
        img.name = path;
    }
    auto in_context = [&](guestvm::Result<guestvm::LoadPlan> plan) -> guestvm::Status {
        if (!plan) return std::unexpected(std::move(plan).error().context(img.name));
        img.plan = std::move(*plan);
        return {};
    };
    if (!opt.kernel.empty()) {
        if (!opt.initrd.empty()) {
            GUESTVM_TRY_ASSIGN(initrd, guestvm::read_file(opt.initrd));
            img.initrd = std::move(initrd);
        }
        guestvm::LinuxBootOptions linux_opts{opt.cmdline, img.initrd};
        GUESTVM_TRY(in_context(opt.boot == "bzimage"
                                   ? guestvm::plan_linux_bzimage(bytes, linux_opts, ram)
                                   : guestvm::plan_linux_pvh(bytes, linux_opts, ram)));
    } else if (!opt.flat.empty()) {
        std::uint64_t at = guestvm::kDefaultFlatLoadAddr;
        if (!opt.load_addr.empty()) {
            auto parsed = parse_size(opt.load_addr);
            if (!parsed) {
                return guestvm::make_error(guestvm::Errc::kInvalidArgument,
                                           "--load-addr " + opt.load_addr + ": not an address");
            }
            at = *parsed;
        }
        GUESTVM_TRY(in_context(guestvm::plan_flat(bytes, ram, at)));
    } else {
        GUESTVM_TRY(in_context(guestvm::plan_elf(bytes, ram)));
    }
    return img;
}

int usage(const std::string &message) {
    std::fprintf(stderr, "guestvm: %s (see guestvm run --help)\n", message.c_str());
    return kExitUsage;
}

int run(const Options &opt) {
    const bool is_kernel = !opt.kernel.empty();
    if (int n = !opt.guest.empty() + !opt.flat.empty() + is_kernel; n > 1) {
        return usage("give one of GUEST, --flat and --kernel");
    }
    if (!is_kernel && (!opt.initrd.empty() || !opt.cmdline.empty())) {
        return usage("--initrd and --cmdline go with --kernel");
    }
    if (opt.flat.empty() && !opt.load_addr.empty()) return usage("--load-addr goes with --flat");
    const std::string mem_text = !opt.mem.empty() ? opt.mem : is_kernel ? "512M" : "64M";
    auto mem = parse_size(mem_text);
    if (!mem) return usage("--mem " + mem_text + ": expected a size such as 64M or 1G");

    auto host = guestvm::Host::create();
    if (!host) return fail(host.error().message());

    std::vector<Line> lines;  // --json: the serial output goes into the document
    guestvm::LineBuffer buffer([&](int vcpu, std::string_view text) {
        if (opt.json) {
            lines.push_back({vcpu, std::string(text)});
        } else {
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fputc('\n', stdout);
            std::fflush(stdout);
        }
    });
    guestvm::MachineConfig config;
    config.name = "guestvm";
    config.ram_bytes = *mem;
    config.vcpus = opt.vcpus;
    config.serial_sink = buffer.sink();
    // A kernel probes ports nobody emulates here (PCI, CMOS, ...): answer as absent hardware.
    config.irqchip = opt.irqchip || is_kernel;
    if (is_kernel) config.unhandled_io = guestvm::UnhandledIoPolicy::kAllOnes;
    auto vm = guestvm::build_machine(std::move(*host), std::move(config));
    if (!vm) return fail(vm.error().message());
    auto ram = guestvm::ram_ranges((*vm)->vspace());
    auto image = plan_image(opt, ram);
    if (!image) return fail(image.error().message());
    const guestvm::LoadPlan &plan = image->plan;
    if (auto written = guestvm::write_plan((*vm)->vspace(), plan); !written) {
        return fail(written.error().message());
    }
    (*vm)->set_boot_mode(plan.entry.mode);

    // The boot vCPU is core 0; with --start-all the VMM also starts core i on vCPU i.
    const int started = opt.start_all ? opt.vcpus : 1;
    for (int core = started - 1; core >= 0; --core) {
        guestvm::EntryState entry = plan.entry;
        if (core != 0) entry.rdi = static_cast<std::uint64_t>(core);
        auto ok = (*vm)->start_core(core, entry);
        if (!ok) return fail(ok.error().message());
    }
    std::jthread timer;
    if (opt.timeout > 0) {
        timer = std::jthread([&vm, timeout = opt.timeout](std::stop_token stop) {
            std::mutex m;
            std::condition_variable_any cv;
            std::unique_lock lock(m);
            if (!cv.wait_for(lock, stop, std::chrono::duration<double>(timeout),
                             [] { return false; })) {
                (*vm)->stop({StopReason::kRequested, fmt::format("--timeout {} s", timeout)});
            }
        });
    }
    guestvm::StopInfo stop = (*vm)->run();
    const bool timed_out = timer.joinable() && !timer.get_stop_source().stop_requested() &&
                           stop.reason == StopReason::kRequested;
    timer = {};
    buffer.flush();
    std::vector<Row> rows = util_table(**vm);
    guestvm::ExitCounts total = (*vm)->exit_counts();

    if (opt.json) {
        nlohmann::json doc;
        doc["guest"] = image->name;
        doc["format"] = plan.format;
        doc["stop"] = {{"reason", guestvm::stop_reason_name(stop.reason)},
                       {"message", stop.message},
                       {"vcpu", stop.vcpu}};
        doc["serial"] = nlohmann::json::array();
        for (const Line &l : lines) doc["serial"].push_back({{"vcpu", l.vcpu}, {"line", l.text}});
        doc["vcpus"] = nlohmann::json::array();
        for (const Row &r : rows) {
            doc["vcpus"].push_back(
                {{"id", r.id},
                 {"target_core", r.core < 0 ? nlohmann::json() : nlohmann::json(r.core)},
                 {"online", r.online},
                 {"tcb_cptr", r.tcb},
                 {"vcpu_cptr", r.vcpu_cap},
                 {"exits", r.exits.total()}});
        }
        nlohmann::json exits;
        for (std::size_t k = 0; k < total.by_kind.size(); ++k) {
            exits[guestvm::exit_kind_name(static_cast<guestvm::ExitKind>(k))] = total.by_kind[k];
        }
        exits["total"] = total.total();
        // Port exits by device; the platform call's also under "platform_call".
        nlohmann::json by_device;
        for (const auto &[device, n] : (*vm)->port_exits()) by_device[device] = n;
        exits["ports"] = by_device;
        exits["platform_call"] = (*vm)->port_exits("platform-call");
        doc["exits"] = exits;
        std::puts(doc.dump(2).c_str());
    } else {
        std::puts("");
        std::puts(
            fmt::format("VM stopped: {} ({})", guestvm::stop_reason_name(stop.reason), stop.message)
                .c_str());
        std::puts(fmt::format("{:>5} {:>6} {:>7} {:>10} {:>10} {:>8}", "vcpu", "core", "online",
                              "tcb", "vcpu-cap", "exits")
                      .c_str());
        for (const Row &r : rows) {
            std::puts(fmt::format("{:>5} {:>6} {:>7} {:>#10x} {:>#10x} {:>8}", r.id,
                                  r.core < 0 ? std::string("-") : std::to_string(r.core),
                                  r.online ? "yes" : "no", r.tcb, r.vcpu_cap, r.exits.total())
                          .c_str());
        }
        std::string summary = "exits:";
        for (std::size_t k = 0; k < total.by_kind.size(); ++k) {
            if (total.by_kind[k] != 0) {
                summary += fmt::format(" {}={}",
                                       guestvm::exit_kind_name(static_cast<guestvm::ExitKind>(k)),
                                       total.by_kind[k]);
            }
        }
        summary += fmt::format(" total={}", total.total());
        std::puts(summary.c_str());
    }
    std::fflush(stdout);
    int status = timed_out ? kExitTimeout : exit_status(stop.reason);
    if (status == kExitFailure) {
        std::fprintf(stderr, "guestvm: guest stopped: %s: %s\n",
                     guestvm::stop_reason_name(stop.reason), stop.message.c_str());
    }
    return status;
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"guestvm: run hardware-virtualised guests on Linux KVM with libsel4vm's VM model"};
    app.require_subcommand(1);
    app.footer(
        "Exit status: 0 the guest powered off or every vCPU went off; 1 failure (no KVM, bad "
        "image, guest fault, unhandled exit); 2 bad command line; 3 the guest asked for a reset; "
        "4 --timeout ran out.");
    Options opt;
    CLI::App *run_cmd =
        app.add_subcommand("run", "Run a guest (the built-in SMP demo when no GUEST is given)");
    run_cmd->add_option("--vcpus", opt.vcpus, "Number of vCPUs (1..KVM's maximum)")
        ->check(CLI::Range(1, 1 << 16));
    run_cmd->add_flag("--json", opt.json, "Print one JSON document (guest output included)");
    run_cmd->add_flag("--start-all", opt.start_all,
                      "The VMM starts every vCPU (core i on vCPU i) instead of only core 0");
    run_cmd->add_option("--mem", opt.mem,
                        "Guest RAM, e.g. 64M, 1G (default 64M; 512M with --kernel)");
    run_cmd->add_flag("--irqchip", opt.irqchip,
                      "KVM's in-kernel PIC/IOAPIC/LAPIC and PIT (always on with --kernel)");
    run_cmd->add_option("--timeout", opt.timeout, "Stop the VM after this many seconds (exit 4)")
        ->check(CLI::PositiveNumber);
    run_cmd->add_option("--kernel", opt.kernel,
                        "Linux kernel to boot: a bzImage or an uncompressed vmlinux");
    run_cmd->add_option("--initrd", opt.initrd, "Initial ramdisk for --kernel");
    run_cmd->add_option("--cmdline", opt.cmdline, "Kernel command line for --kernel");
    run_cmd
        ->add_option("--boot", opt.boot,
                     "How to enter --kernel: pvh (decompressed on the host, default) or "
                     "bzimage (the boot protocol's 64-bit entry)")
        ->check(CLI::IsMember({"pvh", "bzimage"}));
    run_cmd->add_option("--flat", opt.flat, "Flat binary to run in real mode");
    run_cmd->add_option("--load-addr", opt.load_addr,
                        "Where --flat goes, below 1 MiB (default 0x10000: CS:IP 1000:0000)");
    run_cmd->add_option("GUEST", opt.guest,
                        "ELF executable to run: ELF64 (long mode) or ELF32 (protected mode)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp &e) {
        return app.exit(e);
    } catch (const CLI::ParseError &e) {
        std::fprintf(stderr, "guestvm: %s (see guestvm --help)\n", e.what());
        return kExitUsage;
    }
    try {
        return run(opt);
    } catch (const std::exception &e) {
        return fail(std::string("internal error: ") + e.what());
    }
}

// guestvm — the command-line tool: runs a guest on KVM and reports the VM's vCPUs through the
// guest VM util interface.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "builtin_guests.h"
#include "guestvm/loader.hpp"
#include "guestvm/serial.hpp"
#include "guestvm/vm.hpp"

namespace {

using guestvm::StopReason;

// Exit statuses (also in --help).
constexpr int kExitOk = 0;       // the guest powered off, or every vCPU went off
constexpr int kExitFailure = 1;  // no KVM, bad image, guest fault, unhandled exit, error
constexpr int kExitUsage = 2;    // bad command line
constexpr int kExitReset = 3;    // the guest asked for a reset

struct Options {
    int vcpus = 1;
    std::string mem = "64M";
    bool json = false;
    bool start_all = false;
    std::string guest;
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

int run(const Options &opt) {
    auto mem = parse_size(opt.mem);
    if (!mem) {
        std::fprintf(stderr, "guestvm: --mem %s: expected a size such as 64M or 1G\n",
                     opt.mem.c_str());
        return kExitUsage;
    }
    std::vector<std::uint8_t> file;
    std::span<const std::uint8_t> image(guestvm_guest_demo_start,
                                        guestvm_guest_demo_end - guestvm_guest_demo_start);
    std::string guest_name = "built-in demo";
    if (!opt.guest.empty()) {
        auto read = guestvm::read_file(opt.guest);
        if (!read) return fail(read.error().message());
        file = std::move(*read);
        image = file;
        guest_name = opt.guest;
    }
    auto host = guestvm::Host::create();
    if (!host) return fail(host.error().message());

    std::vector<Line> lines;  // --json: the serial output goes into the document
    guestvm::LineBuffer buffer([&](int vcpu, std::string_view text) {
        if (opt.json) {
            lines.push_back({vcpu, std::string(text)});
        } else {
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fputc('\n', stdout);
        }
    });
    guestvm::VmConfig config;
    config.name = "guestvm";
    config.ram_bytes = *mem;
    config.vcpus = opt.vcpus;
    config.serial_sink = buffer.sink();
    auto vm = guestvm::Vm::create(std::move(*host), std::move(config));
    if (!vm) return fail(vm.error().message());
    auto loaded = guestvm::load_elf64((*vm)->vspace(), image);
    if (!loaded) return fail(fmt::format("{}: {}", guest_name, loaded.error().message()));

    // The boot vCPU is core 0; with --start-all the VMM also starts core i on vCPU i.
    const int started = opt.start_all ? opt.vcpus : 1;
    for (int core = started - 1; core >= 0; --core) {
        auto ok = (*vm)->start_core(core, loaded->entry, static_cast<std::uint64_t>(core));
        if (!ok) return fail(ok.error().message());
    }
    guestvm::StopInfo stop = (*vm)->run();
    buffer.flush();
    std::vector<Row> rows = util_table(**vm);
    guestvm::ExitCounts total = (*vm)->exit_counts();

    if (opt.json) {
        nlohmann::json doc;
        doc["guest"] = guest_name;
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
                 {"exits", r.exits.total()},
                 {"platform_calls", r.exits[guestvm::ExitKind::kPlatformCall]}});
        }
        nlohmann::json exits;
        for (std::size_t k = 0; k < total.by_kind.size(); ++k) {
            exits[guestvm::exit_kind_name(static_cast<guestvm::ExitKind>(k))] = total.by_kind[k];
        }
        exits["total"] = total.total();
        doc["exits"] = exits;
        std::puts(doc.dump(2).c_str());
    } else {
        std::puts("");
        std::puts(
            fmt::format("VM stopped: {} ({})", guestvm::stop_reason_name(stop.reason), stop.message)
                .c_str());
        std::puts(fmt::format("{:>5} {:>6} {:>7} {:>10} {:>10} {:>8} {:>8}", "vcpu", "core",
                              "online", "tcb", "vcpu-cap", "exits", "pcalls")
                      .c_str());
        for (const Row &r : rows) {
            std::puts(fmt::format("{:>5} {:>6} {:>7} {:>#10x} {:>#10x} {:>8} {:>8}", r.id,
                                  r.core < 0 ? std::string("-") : std::to_string(r.core),
                                  r.online ? "yes" : "no", r.tcb, r.vcpu_cap, r.exits.total(),
                                  r.exits[guestvm::ExitKind::kPlatformCall])
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
    int status = exit_status(stop.reason);
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
        "image, guest fault, unhandled exit); 2 bad command line; 3 the guest asked for a reset.");
    Options opt;
    CLI::App *run_cmd =
        app.add_subcommand("run", "Run a guest (the built-in SMP demo when no GUEST is given)");
    run_cmd->add_option("--vcpus", opt.vcpus, "Number of vCPUs (1..KVM's maximum)")
        ->check(CLI::Range(1, 1 << 16));
    run_cmd->add_option("--mem", opt.mem, "Guest RAM, e.g. 64M, 1G (default 64M)");
    run_cmd->add_flag("--json", opt.json, "Print one JSON document (guest output included)");
    run_cmd->add_flag("--start-all", opt.start_all,
                      "The VMM starts every vCPU (core i on vCPU i) instead of only core 0");
    run_cmd->add_option("GUEST", opt.guest, "ELF64 x86-64 executable to run");
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

// guestvm — the command-line tool: runs a guest on KVM and reports the VM's vCPUs through the
// guest VM util interface. A run goes parse (make_request), build (build_vm), start
// (start_cores), wait (wait_for_stop), report (print_text / print_json).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "console.hpp"
#include "guestvm/serial.hpp"
#include "report.hpp"
#include "run_request.hpp"
#include "session.hpp"

namespace {

using namespace guestvm::cli;

int fail(const std::string &message) {
    std::fflush(stdout);
    std::fprintf(stderr, "guestvm: %s\n", message.c_str());
    return kExitFailure;
}

int refuse(const Refusal &refusal) {
    if (refusal.status != kExitUsage) return fail(refusal.message);
    std::fprintf(stderr, "guestvm: %s (see guestvm run --help)\n", refusal.message.c_str());
    return kExitUsage;
}

// The exit status for how the run ended; a failure also gets its one line on stderr.
int exit_status(const Outcome &outcome) {
    std::fflush(stdout);
    if (outcome.quit) return kExitOk;
    if (outcome.timed_out) return kExitTimeout;
    switch (outcome.stop.reason) {
        case guestvm::StopReason::kPowerOff:
        case guestvm::StopReason::kAllVcpusOff:
            return kExitOk;
        case guestvm::StopReason::kReset:
            return kExitReset;
        default:
            std::fprintf(stderr, "guestvm: guest stopped: %s: %s\n",
                         guestvm::stop_reason_name(outcome.stop.reason),
                         outcome.stop.message.c_str());
            return kExitFailure;
    }
}

int run(const RunRequest &req) {
    const StdinUse use = stdin_use(req);
    SerialTail tail;  // --json: the document's serial output
    guestvm::LineBuffer lines([&](int vcpu, std::string_view text) {
        if (req.json) {
            tail.add(vcpu, text);
        } else {
            print_serial_line(text);
        }
    });
    RawOutput raw;  // a console shows the guest's bytes as they come, not line by line
    // After `lines` and `raw`, which must outlive the VM.
    auto session = build_vm(req, use == StdinUse::kConsole ? raw.sink() : lines.sink(),
                            use != StdinUse::kNone);
    if (!session) return fail(session.error().message());
    Console console(use, session->input, *session->vm);
    if (auto started = start_cores(req, *session); !started) {
        console.close();
        return fail(started.error().message());
    }
    Outcome outcome = wait_for_stop(req, *session->vm);
    console.close();  // the terminal is itself again before the report
    outcome.quit = console.quit() && outcome.stop.reason == guestvm::StopReason::kRequested &&
                   outcome.stop.message == kQuitMessage;
    lines.flush();
    raw.finish_line();
    const Report report =
        gather_report(*session->vm, session->image.name, session->image.plan.format, outcome.stop);
    if (req.json) {
        print_json(report, tail);
    } else {
        print_text(report);
    }
    return exit_status(outcome);
}

void add_run_options(CLI::App &run_cmd, Options &opt) {
    run_cmd.add_option("--vcpus", opt.vcpus, "Number of vCPUs (1..KVM's maximum)")
        ->check(CLI::Range(1, 1 << 16));
    run_cmd.add_flag("--json", opt.json,
                     fmt::format("Print one JSON document, guest output included: its last {} "
                                 "lines, at most {} MiB of their text (serial_dropped_lines and "
                                 "serial_dropped_bytes count the rest)",
                                 SerialTail::kMaxLines, SerialTail::kMaxBytes >> 20));
    run_cmd.add_flag("--start-all", opt.start_all,
                     "The VMM starts every vCPU (core i on vCPU i) instead of only core 0");
    run_cmd.add_option("--mem", opt.mem,
                       "Guest RAM, e.g. 64M, 1G (default 64M; 512M with --kernel)");
    run_cmd.add_flag("--irqchip", opt.irqchip,
                     "KVM's in-kernel PIC/IOAPIC/LAPIC and PIT (always on with --kernel)");
    run_cmd.add_option("--timeout", opt.timeout, "Stop the VM after this many seconds (exit 4)")
        ->check(CLI::PositiveNumber);
    run_cmd.add_option("--kernel", opt.kernel,
                       "Linux kernel to boot: a bzImage or an uncompressed vmlinux");
    run_cmd.add_option("--initrd", opt.initrd, "Initial ramdisk for --kernel");
    run_cmd.add_option("--cmdline", opt.cmdline, "Kernel command line for --kernel");
    run_cmd
        .add_option("--boot", opt.boot,
                    "How to enter --kernel: pvh (decompressed on the host, default) or "
                    "bzimage (the boot protocol's 64-bit entry)")
        ->check(CLI::IsMember({"pvh", "bzimage"}));
    run_cmd
        .add_option("--emulation-assist", opt.emulation_assist,
                    "Complete in the VMM the instructions a host's KVM refuses to emulate, and "
                    "hide the CPU features that lead to them: auto (on where the host CPU has no "
                    "VMX/SVM), on, off")
        ->check(CLI::IsMember({"auto", "on", "off"}));
    run_cmd
        .add_option("--sample-rip", opt.sample_rip_ms,
                    "Interrupt the vCPUs every this many milliseconds and report where the "
                    "guest was (the most frequent RIPs)")
        ->check(CLI::PositiveNumber);
    run_cmd.add_option("--flat", opt.flat, "Flat binary to run in real mode");
    run_cmd.add_option("--load-addr", opt.load_addr,
                       "Where --flat goes, below 1 MiB (default 0x10000: CS:IP 1000:0000)");
    run_cmd
        .add_option("--stdin", opt.stdin_mode,
                    "auto (default): standard input goes to the guest's COM1, a terminal in raw "
                    "mode (Ctrl-A x quits, Ctrl-A h for help; not with --json), a pipe or file "
                    "as it is (its end does not stop the VM); none: left alone")
        ->check(CLI::IsMember({"auto", "none"}));
    run_cmd.add_option("GUEST", opt.guest,
                       "ELF executable to run: ELF64 (long mode) or ELF32 (protected mode)");
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"guestvm: run hardware-virtualised guests on Linux KVM with libsel4vm's VM model"};
    app.set_version_flag("--version", "guestvm " GUESTVM_VERSION);
    app.require_subcommand(1);
    app.footer(
        "Exit status: 0 the guest powered off, every vCPU went off, or Ctrl-A x; 1 failure (no "
        "KVM, bad "
        "image, guest fault, unhandled exit); 2 bad command line; 3 the guest asked for a reset; "
        "4 --timeout ran out.");
    Options opt;
    add_run_options(
        *app.add_subcommand("run", "Run a guest (the built-in SMP demo when no GUEST is given)"),
        opt);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success &e) {  // --help, --help-all, --version
        return app.exit(e);
    } catch (const CLI::ParseError &e) {
        std::fprintf(stderr, "guestvm: %s (see guestvm --help)\n", e.what());
        return kExitUsage;
    }
    try {
        auto req = make_request(opt);
        return req ? run(*req) : refuse(req.error());
    } catch (const std::exception &e) {
        return fail(std::string("internal error: ") + e.what());
    }
}

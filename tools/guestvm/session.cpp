// guestvm CLI — builds the VM a run request describes, starts it and waits for it to stop.
#include "session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <span>
#include <thread>

#include "builtin_guests.h"

namespace guestvm::cli {
namespace {

Result<LoadPlan> plan_for(const RunRequest &req, std::span<const std::uint8_t> bytes,
                          std::span<const std::uint8_t> initrd, std::span<const RamRange> ram,
                          const std::string &kernel_args) {
    std::string cmdline = req.cmdline;
    if (!kernel_args.empty()) cmdline += (cmdline.empty() ? "" : " ") + kernel_args;
    LinuxBootOptions linux_opts{cmdline, initrd};
    // A kernel always gets the irqchip (build_vm) and COM1: tables that say so, one local APIC
    // per vCPU, and the sleep registers attach_acpi_power puts behind the FADT.
    linux_opts.acpi = {.vcpus = req.vcpus, .ioapic = true, .serial = true};
    switch (req.kind) {
        case ImageKind::kLinuxPvh:
            return plan_linux_pvh(bytes, linux_opts, ram);
        case ImageKind::kLinuxBzImage:
            return plan_linux_bzimage(bytes, linux_opts, ram);
        case ImageKind::kFlat:
            return plan_flat(bytes, ram, req.load_addr);
        case ImageKind::kElf:
        case ImageKind::kBuiltinDemo:
            break;
    }
    return plan_elf(bytes, ram);
}

Result<Image> plan_image(const RunRequest &req, std::span<const RamRange> ram,
                         const std::string &kernel_args) {
    Image img;
    std::span<const std::uint8_t> bytes(guestvm_guest_demo_start,
                                        guestvm_guest_demo_end - guestvm_guest_demo_start);
    img.name = "built-in demo";
    // No file larger than the guest's RAM can be loaded into it: refused before it is mapped.
    const std::uint64_t max_bytes = ram_total(ram);
    if (req.kind != ImageKind::kBuiltinDemo) {
        GUESTVM_TRY_ASSIGN(file, ImageFile::open(req.path, max_bytes));
        img.file = std::move(file);
        bytes = img.file.bytes();
        img.name = req.path;
    }
    if (req.is_linux() && !req.initrd.empty()) {
        GUESTVM_TRY_ASSIGN(initrd, ImageFile::open(req.initrd, max_bytes));
        img.initrd = std::move(initrd);
    }
    auto plan = plan_for(req, bytes, img.initrd.bytes(), ram, kernel_args);
    if (!plan) return std::unexpected(std::move(plan).error().context(img.name));
    img.plan = std::move(*plan);
    return img;
}

// Stops a VM once a steady-clock deadline passes, unless cancelled first. Owns its timer
// thread; construct, cancel and destroy it on one thread (the one running the VM).
class Watchdog {
  public:
    Watchdog(Vm &vm, double seconds)
        : message_(fmt::format("--timeout {} s", seconds)),
          timer_([this, &vm, deadline = deadline_after(seconds)] {
              if (!sleep_until(deadline)) vm.stop({StopReason::kRequested, message_});
          }) {}
    Watchdog(const Watchdog &) = delete;
    Watchdog &operator=(const Watchdog &) = delete;
    ~Watchdog() { cancel(); }

    /// The stop message it gives the VM when the deadline passes.
    const std::string &message() const { return message_; }

    /// Wakes the timer thread, if it still waits, and joins it.
    void cancel() {
        {
            std::lock_guard lock(mutex_);
            cancelled_ = true;
        }
        wake_.notify_one();
        if (timer_.joinable()) timer_.join();
    }

  private:
    static std::chrono::steady_clock::time_point deadline_after(double seconds) {
        // Far enough for any run, near enough that the clock's arithmetic cannot overflow.
        constexpr std::chrono::duration<double> kLongest = std::chrono::years(100);
        return std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::min(std::chrono::duration<double>(seconds), kLongest));
    }

    // True when cancelled before `deadline`.
    bool sleep_until(std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        return wake_.wait_until(lock, deadline, [this] { return cancelled_; });
    }

    const std::string message_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool cancelled_ = false;
    std::thread timer_;  // last: starts once the members it uses exist
};

}  // namespace

Result<Session> build_vm(const RunRequest &req, SerialSink serial, bool serial_input) {
    GUESTVM_TRY_ASSIGN(host, Host::create());
    MachineConfig config;
    config.name = "guestvm";
    config.ram_bytes = req.ram_bytes;
    config.vcpus = req.vcpus;
    config.serial_sink = std::move(serial);
    config.emulation_assist = req.emulation_assist;
    if (serial_input) config.serial_input = std::make_shared<SerialInput>();
    auto input = config.serial_input;
    // A kernel probes ports nobody emulates here (PCI, CMOS, ...): answer as absent hardware.
    config.irqchip = req.irqchip || req.is_linux();
    if (req.is_linux()) config.unhandled_io = UnhandledIoPolicy::kAllOnes;
    GUESTVM_TRY_ASSIGN(vm, build_machine(std::move(host), std::move(config)));
    if (req.is_linux()) GUESTVM_TRY(attach_acpi_power(*vm));
    GUESTVM_TRY_ASSIGN(image, plan_image(req, ram_ranges(vm->vspace()), vm->linux_kernel_args()));
    GUESTVM_TRY(write_plan(vm->vspace(), image.plan));
    vm->set_boot_mode(image.plan.entry.mode);
    return Session{std::move(vm), std::move(image), std::move(input)};
}

Status start_cores(const RunRequest &req, Session &session) {
    if (req.is_linux()) {
        // Linux starts its other CPUs itself (the MADT lists one local APIC per vCPU): vCPU i
        // is core i, waiting for the kernel's INIT/SIPI before core 0 starts at the entry.
        for (int core = 1; core < req.vcpus; ++core) {
            GUESTVM_TRY(session.vm->assign_target(*session.vm->vcpu(core), core));
            GUESTVM_TRY(session.vm->await_sipi(core));
        }
        return session.vm->start_core(0, session.image.plan.entry);
    }
    const int started = req.start_all ? req.vcpus : 1;
    for (int core = started - 1; core >= 0; --core) {
        EntryState entry = session.image.plan.entry;
        if (core != 0) entry.rdi = static_cast<std::uint64_t>(core);
        GUESTVM_TRY(session.vm->start_core(core, entry));
    }
    return {};
}

Outcome wait_for_stop(const RunRequest &req, Vm &vm) {
    std::optional<Watchdog> watchdog;
    if (req.timeout_seconds) watchdog.emplace(vm, *req.timeout_seconds);
    std::jthread sampler;
    if (req.sample_rip_ms) {
        const auto period = std::chrono::duration<double, std::milli>(*req.sample_rip_ms);
        sampler = std::jthread([&vm, period](std::stop_token stop) {
            while (!stop.stop_requested() && !vm.stopped()) {
                std::this_thread::sleep_for(period);
                vm.sample_rips();
            }
        });
    }
    Outcome outcome{vm.run()};
    if (sampler.joinable()) {
        sampler.request_stop();
        sampler.join();
    }
    // Another thread may have stopped the VM first (Ctrl-A x): the first reason is the one.
    outcome.timed_out = watchdog && outcome.stop.reason == StopReason::kRequested &&
                        outcome.stop.message == watchdog->message();
    watchdog.reset();
    return outcome;
}

}  // namespace guestvm::cli

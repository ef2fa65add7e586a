// Shared helpers for tests that run real VMs. They skip, with the reason, where KVM is missing.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guestvm/host.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"
#include "guestvm/serial.hpp"

namespace guestvm::test {

inline std::string guest_path(const std::string &name) {
    return std::string(GUESTVM_GUEST_DIR) + "/" + name + ".elf";
}

/// The Host shared by a test binary, or null with the reason KVM is unusable.
inline std::shared_ptr<Host> shared_host(std::string *why) {
    static std::mutex mu;
    static std::shared_ptr<Host> host;
    static std::string reason;
    std::lock_guard lock(mu);
    if (!host && reason.empty()) {
        auto h = Host::create();
        if (h)
            host = *h;
        else
            reason = h.error().message();
    }
    if (why) *why = reason;
    return host;
}

#define GUESTVM_REQUIRE_KVM(host_var)                                \
    std::string guestvm_kvm_why_;                                    \
    auto host_var = ::guestvm::test::shared_host(&guestvm_kvm_why_); \
    if (!host_var) GTEST_SKIP() << "needs a usable /dev/kvm: " << guestvm_kvm_why_

/// Serial lines captured from a VM, per vCPU, thread-safe.
class Capture {
  public:
    Capture()
        : buffer_([this](int vcpu, std::string_view line) {
              std::lock_guard lock(mu_);
              lines_.emplace_back(vcpu, std::string(line));
          }) {}
    SerialSink sink() { return buffer_.sink(); }
    std::vector<std::string> lines() {
        buffer_.flush();
        std::lock_guard lock(mu_);
        std::vector<std::string> out;
        for (auto &[v, l] : lines_) out.push_back(l);
        return out;
    }
    std::vector<std::pair<int, std::string>> lines_with_vcpu() {
        buffer_.flush();
        std::lock_guard lock(mu_);
        return lines_;
    }
    /// Whether a complete line contains `needle`; safe while the guest runs (no flush, so a
    /// line being written is not cut in two).
    bool has_complete_line(const std::string &needle) {
        std::lock_guard lock(mu_);
        for (auto &[v, l] : lines_)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
    bool contains(const std::string &needle) {
        for (const auto &l : lines())
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
    std::string text() {
        std::string all;
        for (const auto &l : lines()) all += l + "\n";
        return all;
    }

  private:
    std::mutex mu_;
    std::vector<std::pair<int, std::string>> lines_;
    LineBuffer buffer_;
};

/// A MachineConfig with the commonly varied fields set.
inline MachineConfig config(std::string name, std::uint64_t ram = 4 << 20, int vcpus = 1) {
    MachineConfig c;
    c.name = std::move(name);
    c.ram_bytes = ram;
    c.vcpus = vcpus;
    return c;
}

/// A VM with `guest` loaded; serial goes into `capture`. Fails the test on error.
inline std::unique_ptr<Vm> make_vm(std::shared_ptr<Host> host, const std::string &guest, int vcpus,
                                   Capture *capture, std::uint64_t *entry,
                                   std::uint64_t ram = 64ull << 20) {
    MachineConfig config;
    config.name = guest;
    config.vcpus = vcpus;
    config.ram_bytes = ram;
    if (capture) config.serial_sink = capture->sink();
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return nullptr;
    auto image = read_file(guest_path(guest));
    EXPECT_TRUE(image) << (image ? "" : image.error().message());
    if (!image) return nullptr;
    auto loaded = load_elf((*vm)->vspace(), *image);
    EXPECT_TRUE(loaded) << (loaded ? "" : loaded.error().message());
    if (!loaded) return nullptr;
    if (entry) *entry = loaded->entry.rip;
    return std::move(*vm);
}

/// Writes `guest`'s ELF into `vm`'s RAM and sets the VM's boot mode to its entry's; the entry
/// state, or nullopt (the test has failed).
inline std::optional<EntryState> load_guest(Vm &vm, const std::string &guest) {
    auto image = read_file(guest_path(guest));
    EXPECT_TRUE(image) << (image ? "" : image.error().message());
    if (!image) return std::nullopt;
    auto plan = plan_elf(*image, ram_ranges(vm.vspace()));
    EXPECT_TRUE(plan) << (plan ? "" : plan.error().message());
    if (!plan) return std::nullopt;
    auto written = write_plan(vm.vspace(), *plan);
    EXPECT_TRUE(written) << (written ? "" : written.error().message());
    if (!written) return std::nullopt;
    vm.set_boot_mode(plan->entry.mode);
    return plan->entry;
}

/// The forged_ack guest's count of EOIs written, once it has printed where it keeps it.
inline const volatile std::uint64_t *forged_counter(Vm &vm, test::Capture &capture) {
    const std::string prefix = "forged_ack: counter at ";
    for (int i = 0; i < 1000 && !capture.has_complete_line(prefix); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (const auto &line : capture.lines()) {
        if (line.rfind(prefix, 0) != 0) continue;
        auto host = vm.vspace().translate(
            GuestPhysAddr(std::stoull(line.substr(prefix.size()), nullptr, 16)), 8);
        return host ? reinterpret_cast<const volatile std::uint64_t *>(*host) : nullptr;
    }
    return nullptr;
}

}  // namespace guestvm::test

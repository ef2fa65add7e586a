// The two halves of every exit-cost comparison: a guest that exits forever, run by guestvm
// (per-exit time from a handler's counter) and by the raw-KVM baseline (a bare KVM_RUN loop).
#pragma once

#include <atomic>
#include <chrono>

#include "bench_util.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"
#include "raw_kvm_lib.h"

namespace guestvm::bench {

/// Runs `guest` in a 4 MiB guestvm VM; `install(vm, exits)` adds the handler that counts each
/// exit in `exits`. Reports the time per exit. `serialized`: handlers take the VM's handler
/// turn (VmConfig::serialize_handlers, the C API's default).
template <typename Install>
void guestvm_exit_rate(benchmark::State &state, const char *guest, Install &&install,
                       bool serialized = false) {
    auto host = shared_host();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    MachineConfig config;
    config.ram_bytes = 4 << 20;
    config.serialize_handlers = serialized;
    auto vm = build_machine(host, config);
    if (!vm) return state.SkipWithError(vm.error().message().c_str());
    auto image = guest_image(guest);
    auto loaded = load_elf((*vm)->vspace(), image);
    if (!loaded) return state.SkipWithError(loaded.error().message().c_str());
    std::atomic<std::uint64_t> exits{0};
    install(**vm, exits);
    if (!(*vm)->start_core(0, loaded->entry)) return state.SkipWithError("start failed");
    measure_event_rate(state, [&] { return exits.load(std::memory_order_relaxed); });
    (*vm)->stop();
    (*vm)->run();
}

/// Runs `guest` under the raw-KVM baseline; `on_exit(vm)` checks and completes each exit
/// (false: not the exit the guest should make). Reports the time per exit.
template <typename OnExit>
void raw_kvm_exit_rate(benchmark::State &state, const char *guest, OnExit &&on_exit) {
    using Clock = std::chrono::steady_clock;
    rawkvm vm;
    auto image = guest_image(guest);
    if (rawkvm_open(&vm, 4 << 20) < 0 || rawkvm_load_elf(&vm, image.data(), image.size()) < 0 ||
        rawkvm_setup_long_mode(&vm, vm.entry) < 0) {
        rawkvm_close(&vm);
        return state.SkipWithError("raw KVM setup failed (no /dev/kvm?)");
    }
    constexpr std::uint64_t kBatch = 2000;
    while (state.KeepRunningBatch(kBatch)) {
        auto t0 = Clock::now();
        for (std::uint64_t i = 0; i < kBatch; ++i) {
            if (!on_exit(vm, rawkvm_run_once(&vm))) {
                rawkvm_close(&vm);
                return state.SkipWithError("unexpected exit");
            }
        }
        state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    rawkvm_close(&vm);
}

}  // namespace guestvm::bench

// Port-I/O exit round trip: guestvm's vCPU loop (KVM_RUN → typed exit → bus lookup → handler →
// KVM_RUN) against a raw KVM_RUN loop, both running the pio_loop guest (`out` to port 0x510
// forever). Reported per exit; compare the two in one run (the machine is shared and noisy).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/vm.hpp"
#include "raw_kvm_lib.h"

namespace {

using Clock = std::chrono::steady_clock;

void BM_guestvm_pio_exit(benchmark::State &state) {
    auto host = guestvm::Host::create();
    if (!host) return state.SkipWithError(host.error().message().c_str());
    guestvm::VmConfig config;
    config.ram_bytes = 4 << 20;
    auto vm = guestvm::Vm::create(*host, config);
    if (!vm) return state.SkipWithError(vm.error().message().c_str());
    auto image = guestvm::bench::guest_image("pio_loop");
    auto loaded = guestvm::load_elf((*vm)->vspace(), image);
    if (!loaded) return state.SkipWithError(loaded.error().message().c_str());
    std::atomic<std::uint64_t> exits{0};
    (void)(*vm)->add_io_handler(0x510, 4, "bench",
                                [&](guestvm::ExitContext &, guestvm::IoAccess &) {
                                    exits.fetch_add(1, std::memory_order_relaxed);
                                    return guestvm::ExitAction::kContinue;
                                });
    if (!(*vm)->start_core(0, loaded->entry.rip, 0)) return state.SkipWithError("start failed");
    guestvm::bench::measure_event_rate(state,
                                       [&] { return exits.load(std::memory_order_relaxed); });
    (*vm)->stop();
    (*vm)->run();
}
BENCHMARK(BM_guestvm_pio_exit)->UseManualTime()->MinTime(2.0);

void BM_raw_kvm_pio_exit(benchmark::State &state) {
    rawkvm vm;
    auto image = guestvm::bench::guest_image("pio_loop");
    if (rawkvm_open(&vm, 4 << 20) < 0 || rawkvm_load_elf(&vm, image.data(), image.size()) < 0 ||
        rawkvm_setup_long_mode(&vm, vm.entry) < 0) {
        rawkvm_close(&vm);
        return state.SkipWithError("raw KVM setup failed (no /dev/kvm?)");
    }
    constexpr std::uint64_t kBatch = 2000;
    while (state.KeepRunningBatch(kBatch)) {
        auto t0 = Clock::now();
        for (std::uint64_t i = 0; i < kBatch; ++i) {
            if (rawkvm_run_once(&vm) != KVM_EXIT_IO || vm.run->io.port != 0x510) {
                rawkvm_close(&vm);
                return state.SkipWithError("unexpected exit");
            }
        }
        state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    rawkvm_close(&vm);
}
BENCHMARK(BM_raw_kvm_pio_exit)->UseManualTime()->MinTime(2.0);

}  // namespace

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

#include "exit_rate.hpp"

namespace {

void BM_guestvm_pio_exit(benchmark::State &state) {
    guestvm::bench::guestvm_exit_rate(state, "pio_loop", [](guestvm::Vm &vm, auto &exits) {
        (void)vm.add_io_handler(0x510, 4, "bench",
                                [&](guestvm::ExitContext &, guestvm::IoAccess &) {
                                    exits.fetch_add(1, std::memory_order_relaxed);
                                    return guestvm::ExitAction::kContinue;
                                });
    });
}
BENCHMARK(BM_guestvm_pio_exit)->UseManualTime()->MinTime(2.0);

void BM_raw_kvm_pio_exit(benchmark::State &state) {
    guestvm::bench::raw_kvm_exit_rate(state, "pio_loop", [](rawkvm &vm, int exit) {
        return exit == KVM_EXIT_IO && vm.run->io.port == 0x510;
    });
}
BENCHMARK(BM_raw_kvm_pio_exit)->UseManualTime()->MinTime(2.0);

}  // namespace

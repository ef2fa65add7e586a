// Port-I/O exit round trip: guestvm's vCPU loop (KVM_RUN → typed exit → bus lookup → handler →
// KVM_RUN) against a raw KVM_RUN loop, both running the pio_loop guest (`out` to port 0x510
// forever). guestvm's in both handler modes: parallel (handlers run on their vCPU threads at
// once) and serialized (each takes the VM's handler turn: libsel4vm's semantics, the C API's
// default), through the C++ API and through libsel4vm's C API (vm_io_port_add_handler).
// Reported per exit; compare them in one run (the machine is shared and noisy).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "exit_rate.hpp"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/boot.h"
#include "sel4vm/guest_vm.h"
#include "sel4vm/guestvm.h"

namespace {

void pio_exit(benchmark::State &state, bool serialized) {
    guestvm::bench::guestvm_exit_rate(
        state, "pio_loop",
        [](guestvm::Vm &vm, auto &exits) {
            (void)vm.add_io_handler(0x510, 4, "bench",
                                    [&](guestvm::ExitContext &, guestvm::IoAccess &) {
                                        exits.fetch_add(1, std::memory_order_relaxed);
                                        return guestvm::ExitAction::kContinue;
                                    });
        },
        serialized);
}

void BM_guestvm_pio_exit(benchmark::State &state) { pio_exit(state, false); }
BENCHMARK(BM_guestvm_pio_exit)->UseManualTime()->MinTime(2.0);

void BM_guestvm_pio_exit_serialized(benchmark::State &state) { pio_exit(state, true); }
BENCHMARK(BM_guestvm_pio_exit_serialized)->UseManualTime()->MinTime(2.0);

std::atomic<std::uint64_t> c_exits{0};

ioport_fault_result_t count_out(vm_vcpu_t *, void *, unsigned int, unsigned int, unsigned int) {
    c_exits.fetch_add(1, std::memory_order_relaxed);
    return IO_FAULT_HANDLED;
}

/// The same guest under libsel4vm's C API, in handler mode `mode`.
void capi_pio_exit(benchmark::State &state, guestvm_handler_mode_t mode) {
    vm_t vm{};
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4 << 20;
    opts.handler_mode = mode;
    if (guestvm_vm_init(&vm, "bench", &opts) != 0) return state.SkipWithError(guestvm_last_error());
    const std::string guest = std::string(GUESTVM_GUEST_DIR) + "/pio_loop.elf";
    vm_ioport_interface_t iface{nullptr, nullptr, count_out, "bench"};
    vm_vcpu_t *vcpu = nullptr;
    if (vm_io_port_add_handler(&vm, vm_ioport_range_t{0x510, 0x513}, iface) != 0 ||
        guestvm_vm_load_elf(&vm, guest.c_str()) != 0 ||
        (vcpu = vm_create_vcpu(&vm, 100)) == nullptr || vcpu_start(vcpu) != 0) {
        state.SkipWithError(guestvm_last_error());
    } else {
        c_exits = 0;
        guestvm::bench::measure_event_rate(state,
                                           [] { return c_exits.load(std::memory_order_relaxed); });
        (void)guestvm_vm_stop(&vm);
        (void)vm_run(&vm);
    }
    (void)vm_destroy(&vm);
}

void BM_capi_pio_exit_serialized(benchmark::State &state) {
    capi_pio_exit(state, GUESTVM_HANDLERS_SERIALIZED);
}
BENCHMARK(BM_capi_pio_exit_serialized)->UseManualTime()->MinTime(2.0);

void BM_capi_pio_exit_parallel(benchmark::State &state) {
    capi_pio_exit(state, GUESTVM_HANDLERS_PARALLEL);
}
BENCHMARK(BM_capi_pio_exit_parallel)->UseManualTime()->MinTime(2.0);

void BM_raw_kvm_pio_exit(benchmark::State &state) {
    guestvm::bench::raw_kvm_exit_rate(state, "pio_loop", [](rawkvm &vm, int exit) {
        return exit == KVM_EXIT_IO && vm.run->io.port == 0x510;
    });
}
BENCHMARK(BM_raw_kvm_pio_exit)->UseManualTime()->MinTime(2.0);

}  // namespace

// Guest-driven SMP: how long a guest takes to bring up N cores through CPU_ON (from starting
// core 0 to the VM's stop; VM creation excluded), and what one platform call costs against a
// raw-KVM port-I/O round trip (see exit_roundtrip_bench for the raw side in the same run).
#include <benchmark/benchmark.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "bench_util.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void BM_guest_brings_up_cores(benchmark::State &state) {
    auto host = guestvm::bench::shared_host();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    const int n = static_cast<int>(state.range(0));
    if (n > host->max_vcpus()) return state.SkipWithError("more vCPUs than KVM allows");
    auto elf = guestvm::bench::guest_image("bringup");
    for (auto _ : state) {
        guestvm::MachineConfig config;
        config.ram_bytes = 16 << 20;
        config.vcpus = n;
        auto vm = guestvm::build_machine(host, config);
        if (!vm) return state.SkipWithError(vm.error().message().c_str());
        auto loaded = guestvm::load_elf((*vm)->vspace(), elf);
        if (!loaded) return state.SkipWithError(loaded.error().message().c_str());
        auto t0 = Clock::now();
        if (!(*vm)->start_core(0, loaded->entry.rip, 0)) return state.SkipWithError("start failed");
        auto stop = (*vm)->run();
        state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
        if (stop.reason != guestvm::StopReason::kPowerOff)
            return state.SkipWithError(stop.message.c_str());
    }
    state.counters["cores"] = n;
}
BENCHMARK(BM_guest_brings_up_cores)
    ->Arg(2)
    ->Arg(64)
    ->Arg(1024)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_guestvm_platform_call(benchmark::State &state) {
    auto host = guestvm::bench::shared_host();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    guestvm::MachineConfig config;
    config.ram_bytes = 4 << 20;
    auto vm = guestvm::build_machine(host, config);
    auto loaded = vm ? guestvm::load_elf((*vm)->vspace(), guestvm::bench::guest_image("pcall_loop"))
                     : std::unexpected(vm.error());
    if (!loaded || !(*vm)->start_core(0, loaded->entry.rip, 0))
        return state.SkipWithError("set-up failed");
    auto calls = [&] { return (*vm)->port_exits("platform-call"); };
    guestvm::bench::measure_event_rate(state, calls);
    (*vm)->stop();
    (*vm)->run();
}
BENCHMARK(BM_guestvm_platform_call)->UseManualTime()->MinTime(2.0);

}  // namespace

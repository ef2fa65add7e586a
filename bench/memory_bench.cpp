// Guest memory: region lookup at 1, 64 and 1024 regions (O(log n)); the bounds-checked
// read/write helpers against plain memcpy on the same host memory; and an MMIO exit served by
// a reservation handler against a raw KVM_RUN loop running the same guest (mmio_loop).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "exit_rate.hpp"

namespace {

void BM_region_lookup(benchmark::State &state) {
    auto host = guestvm::bench::shared_host();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    guestvm::MachineConfig config;
    config.ram_bytes = 0;
    auto vm = guestvm::build_machine(host, config);
    if (!vm) return state.SkipWithError(vm.error().message().c_str());
    const int n = static_cast<int>(state.range(0));
    for (int i = 0; i < n; ++i) {  // 4 KiB regions with 4 KiB gaps between them
        auto added =
            (*vm)->vspace().add_ram(guestvm::GuestPhysAddr(0x100000 + i * 0x2000ull), 0x1000, "r");
        if (!added) return state.SkipWithError(added.error().message().c_str());
    }
    std::uint64_t i = 0;
    for (auto _ : state) {
        auto gpa = guestvm::GuestPhysAddr(0x100000 + (i % n) * 0x2000ull + 0x800);
        benchmark::DoNotOptimize((*vm)->vspace().find(gpa));
        i += 7919;  // a prime stride: no two consecutive lookups hit neighbouring regions
    }
}
BENCHMARK(BM_region_lookup)->Arg(1)->Arg(64)->Arg(1024);

struct RamFixture {
    std::unique_ptr<guestvm::Vm> vm;
    std::uint8_t *host = nullptr;
    RamFixture() {
        auto h = guestvm::bench::shared_host();
        if (!h) return;
        guestvm::MachineConfig config;
        config.ram_bytes = 8 << 20;
        auto v = guestvm::build_machine(h, config);
        if (!v) return;
        vm = std::move(*v);
        host = *vm->vspace().translate(guestvm::GuestPhysAddr(0x400000), 1 << 20);
        std::memset(host, 0x5a, 1 << 20);  // touch it: measure copies, not page faults
    }
};

RamFixture &ram() {
    static RamFixture f;
    return f;
}

void BM_guest_read_helper(benchmark::State &state) {
    auto &f = ram();
    if (!f.vm) return state.SkipWithError("no usable /dev/kvm");
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        auto r = f.vm->vspace().read(guestvm::GuestPhysAddr(0x400000), buf);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(buf.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_guest_read_helper)->Arg(64)->Arg(4096)->Arg(65536);

void BM_guest_write_helper(benchmark::State &state) {
    auto &f = ram();
    if (!f.vm) return state.SkipWithError("no usable /dev/kvm");
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(state.range(0)), 0x33);
    for (auto _ : state) {
        auto r = f.vm->vspace().write(guestvm::GuestPhysAddr(0x400000), buf);
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_guest_write_helper)->Arg(64)->Arg(4096)->Arg(65536);

void BM_memcpy_same_memory(benchmark::State &state) {
    auto &f = ram();
    if (!f.vm) return state.SkipWithError("no usable /dev/kvm");
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        std::memcpy(buf.data(), f.host, buf.size());
        benchmark::DoNotOptimize(buf.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_memcpy_same_memory)->Arg(64)->Arg(4096)->Arg(65536);

void BM_guestvm_mmio_exit(benchmark::State &state) {
    guestvm::bench::guestvm_exit_rate(state, "mmio_loop", [](guestvm::Vm &vm, auto &exits) {
        (void)vm.vspace().reserve(guestvm::GuestPhysAddr(0xd0000000), 0x1000, "bench",
                                  [&](guestvm::ExitContext &, guestvm::MmioAccess &a) {
                                      std::memset(a.data.data(), 0, a.data.size());
                                      exits.fetch_add(1, std::memory_order_relaxed);
                                      return guestvm::ExitAction::kContinue;
                                  });
    });
}
BENCHMARK(BM_guestvm_mmio_exit)->UseManualTime()->MinTime(2.0);

void BM_raw_kvm_mmio_exit(benchmark::State &state) {
    guestvm::bench::raw_kvm_exit_rate(state, "mmio_loop", [](rawkvm &vm, int exit) {
        if (exit != KVM_EXIT_MMIO) return false;
        std::memset(vm.run->mmio.data, 0, sizeof vm.run->mmio.data);
        return true;
    });
}
BENCHMARK(BM_raw_kvm_mmio_exit)->UseManualTime()->MinTime(2.0);

}  // namespace

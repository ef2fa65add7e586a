// Interrupt round trip through an EOI callback: the irq_loop guest takes IRQ 3 and EOIs it; the
// VMM, told of the EOI, raises IRQ 3 again. guestvm (Vm::set_irq_ack_handler: its watcher
// thread calls the handler, which pulses the line) against a raw-KVM program of our own doing
// the same with one resample irqfd, one thread polling it and two KVM_IRQ_LINE calls. Reported
// per round trip; compare the two in one run.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <string>
#include <thread>

#include "bench_util.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"
#include "raw_kvm_lib.h"

namespace {

using guestvm::bench::measure_event_rate;

void BM_guestvm_irq_ack_roundtrip(benchmark::State &state) {
    auto host = guestvm::bench::shared_host();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    std::atomic<bool> ready{false};
    guestvm::MachineConfig config;
    config.ram_bytes = 4 << 20;
    config.irqchip = true;
    config.serial_sink = [&](int, std::string_view bytes) {
        if (bytes.find('\n') != std::string_view::npos) ready = true;
    };
    auto vm = guestvm::build_machine(host, config);
    if (!vm) return state.SkipWithError(vm.error().message().c_str());
    auto image = guestvm::bench::guest_image("irq_loop");
    auto loaded = guestvm::load_elf((*vm)->vspace(), image);
    if (!loaded) return state.SkipWithError(loaded.error().message().c_str());
    guestvm::Vm &v = **vm;
    std::atomic<std::uint64_t> acks{0};
    if (!v.set_irq_ack_handler(3, [&](int) {
            acks.fetch_add(1, std::memory_order_relaxed);
            (void)v.pulse_irq(3);
        })) {
        return state.SkipWithError("set_irq_ack_handler failed");
    }
    if (!v.start_core(0, loaded->entry)) return state.SkipWithError("start failed");
    while (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    (void)v.pulse_irq(3);
    const std::uint64_t exits_before = v.exit_counts().total(), acks_before = acks.load();
    measure_event_rate(
        state, [&] { return acks.load(std::memory_order_relaxed); }, 200);
    // Exits to the VMM per round trip (0 when interrupts stay in the kernel, as they should).
    state.counters["exits_per_ack"] =
        static_cast<double>(v.exit_counts().total() - exits_before) /
        static_cast<double>(std::max<std::uint64_t>(1, acks.load() - acks_before));
    v.stop();
    v.run();
}
BENCHMARK(BM_guestvm_irq_ack_roundtrip)->UseManualTime()->MinTime(2.0);

void pulse(int vm_fd, std::uint32_t irq) {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = 1;
    (void)ioctl(vm_fd, KVM_IRQ_LINE, &line);
    line.level = 0;
    (void)ioctl(vm_fd, KVM_IRQ_LINE, &line);
}

void BM_raw_kvm_irq_ack_roundtrip(benchmark::State &state) {
    rawkvm vm;
    auto image = guestvm::bench::guest_image("irq_loop");
    if (rawkvm_open_with_irqchip(&vm, 4 << 20) < 0 ||
        rawkvm_load_elf(&vm, image.data(), image.size()) < 0 ||
        rawkvm_setup_long_mode(&vm, vm.entry) < 0) {
        rawkvm_close(&vm);
        return state.SkipWithError("raw KVM setup failed (no /dev/kvm?)");
    }
    const int trigger = eventfd(0, EFD_CLOEXEC), resample = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<std::uint32_t>(trigger);
    irqfd.gsi = 3;
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<std::uint32_t>(resample);
    if (ioctl(vm.vm_fd, KVM_IRQFD, &irqfd) < 0) {
        close(trigger), close(resample), rawkvm_close(&vm);
        return state.SkipWithError("KVM_IRQFD failed");
    }
    // The vCPU thread answers the guest's console (LSR: transmitter empty) and is kicked out
    // of KVM_RUN at the end by a signal with an empty handler.
    struct sigaction kick {};
    kick.sa_handler = [](int) {};
    sigaction(SIGUSR2, &kick, nullptr);
    std::atomic<bool> stop{false}, ready{false};
    std::thread vcpu([&] {
        while (!stop) {
            int exit = rawkvm_run_once(&vm);
            if (exit == KVM_EXIT_IO) {
                auto *data = reinterpret_cast<std::uint8_t *>(vm.run) + vm.run->io.data_offset;
                if (vm.run->io.direction == KVM_EXIT_IO_IN) {
                    *data = 0x60;
                } else if (vm.run->io.port == 0x3f8 && *data == '\n') {
                    ready = true;
                }
            } else if (exit != KVM_EXIT_INTR && exit != -1) {
                break;
            }
        }
    });
    std::atomic<std::uint64_t> acks{0};
    std::thread acker([&] {
        pollfd fd{resample, POLLIN, 0};
        while (!stop) {
            if (poll(&fd, 1, 10) <= 0) continue;
            std::uint64_t count = 0;
            if (read(resample, &count, sizeof count) != sizeof count) continue;
            acks.fetch_add(count, std::memory_order_relaxed);
            pulse(vm.vm_fd, 3);
        }
    });
    while (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    pulse(vm.vm_fd, 3);
    measure_event_rate(
        state, [&] { return acks.load(std::memory_order_relaxed); }, 200);
    stop = true;
    acker.join();
    while (vcpu.joinable()) {
        vm.run->immediate_exit = 1;
        pthread_kill(vcpu.native_handle(), SIGUSR2);
        vcpu.join();
    }
    close(trigger);
    close(resample);
    rawkvm_close(&vm);
}
BENCHMARK(BM_raw_kvm_irq_ack_roundtrip)->UseManualTime()->MinTime(2.0);

}  // namespace

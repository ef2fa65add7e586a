// A minimal VMM in C++ against guestvm's own API: loads an ELF guest, starts core 0, lets the
// guest bring up its other cores through the platform call, prints the guest's serial lines and,
// when the guest stops, which vCPU served each core.
//
//   example_cpp_vmm GUEST.elf [VCPUS]        (exit 77 when /dev/kvm is unusable)
#include <cstdio>
#include <cstdlib>
#include <guestvm/loader.hpp>
#include <guestvm/machine.hpp>
#include <guestvm/serial.hpp>
#include <string>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s GUEST.elf [VCPUS]\n", argv[0]);
        return 2;
    }
    const int vcpus = argc > 2 ? std::atoi(argv[2]) : 2;
    auto host = guestvm::Host::create();
    if (!host) {
        std::fprintf(stderr, "no KVM: %s\n", host.error().message().c_str());
        return 77;
    }
    guestvm::LineBuffer lines([](int vcpu, std::string_view text) {
        std::printf("[vcpu %d] %.*s\n", vcpu, static_cast<int>(text.size()), text.data());
    });
    guestvm::MachineConfig config;
    config.name = "example";
    config.vcpus = vcpus;
    config.serial_sink = lines.sink();
    auto vm = guestvm::build_machine(*host, config);
    if (!vm) {
        std::fprintf(stderr, "%s\n", vm.error().message().c_str());
        return 1;
    }
    auto image = guestvm::read_file(argv[1]);
    if (!image) {
        std::fprintf(stderr, "%s\n", image.error().message().c_str());
        return 1;
    }
    // Plan against the VM's RAM, write, enter: a malformed image is refused before any write.
    auto plan = guestvm::plan_elf(*image, guestvm::ram_ranges((*vm)->vspace()));
    if (!plan) {
        std::fprintf(stderr, "%s: %s\n", argv[1], plan.error().message().c_str());
        return 1;
    }
    if (auto ok = guestvm::write_plan((*vm)->vspace(), *plan); !ok) return 1;
    if (auto ok = (*vm)->start_core(0, plan->entry); !ok) {
        std::fprintf(stderr, "%s\n", ok.error().message().c_str());
        return 1;
    }
    guestvm::StopInfo stop = (*vm)->run();
    lines.flush();
    std::printf("stopped: %s (%s)\n", guestvm::stop_reason_name(stop.reason), stop.message.c_str());
    for (int core = 0; core < (*vm)->vcpu_count(); ++core) {
        guestvm::Vcpu *v = (*vm)->vcpu_for_target(core);  // vm_vcpu_for_target_cpu
        std::printf("core %d -> vCPU %d\n", core, v != nullptr ? v->id().value() : -1);
    }
    return stop.reason == guestvm::StopReason::kPowerOff ? 0 : 1;
}

// Each loader running a real guest built from guests/: real mode from a flat binary, ELF32 in
// protected mode, PVH and the 64-bit boot protocol checked from inside the guest, the UART's
// interrupt and VMM-raised IRQs through the in-kernel irqchip, and failed loads leaving no trace.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "kvm_fixture.hpp"
#include "sel4vm/arch/guest_x86_context.h"
#include "sel4vm/boot.h"
#include "sel4vm/guest_irq_controller.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

std::string guest_file(const std::string &name) {
    return std::string(GUESTVM_GUEST_DIR) + "/" + name;
}

std::vector<std::uint8_t> read_guest(const std::string &name) {
    auto bytes = read_file(guest_file(name));
    EXPECT_TRUE(bytes) << (bytes ? "" : bytes.error().message());
    return bytes ? std::move(*bytes) : std::vector<std::uint8_t>{};
}

using Planner = std::function<Result<LoadPlan>(std::span<const RamRange>)>;

struct Booted {
    StopInfo stop;
    std::vector<std::string> lines;
    LoadPlan plan;
};

// Creates a VM, plans and writes the image, enters it on core 0 and runs it to its stop
// (a watchdog stops a guest that hangs).
Booted boot(std::shared_ptr<Host> host, const Planner &planner, bool irqchip = false,
            std::function<void(Vm &, test::Capture &)> while_running = {}) {
    test::Capture capture;
    MachineConfig config = test::config("loader", 64ull << 20);
    config.serial_sink = capture.sink();
    config.irqchip = irqchip;
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return {};
    Booted out;
    auto plan = planner(ram_ranges((*vm)->vspace()));
    EXPECT_TRUE(plan) << (plan ? "" : plan.error().message());
    if (!plan) return out;
    EXPECT_TRUE(write_plan((*vm)->vspace(), *plan));
    (*vm)->set_boot_mode(plan->entry.mode);
    auto started = (*vm)->start_core(0, plan->entry);
    EXPECT_TRUE(started) << (started ? "" : started.error().message());
    std::jthread watchdog([&](std::stop_token stop) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, stop, std::chrono::seconds(60), [] { return false; })) {
            (*vm)->stop({StopReason::kError, "watchdog: the guest did not stop in 60 s"});
        }
    });
    std::jthread helper;
    if (while_running) helper = std::jthread([&] { while_running(**vm, capture); });
    out.stop = (*vm)->run();
    watchdog = {};
    helper = {};
    out.lines = capture.lines();
    out.plan = std::move(*plan);
    return out;
}

std::string joined(const std::vector<std::string> &lines) {
    std::string all;
    for (const auto &l : lines) all += l + "\n";
    return all;
}

std::string hex64(std::uint64_t v) { return fmt::format("{:#018x}", v); }

std::uint32_t guest_hash(std::span<const std::uint8_t> bytes) {
    std::uint32_t h = 0;
    for (std::uint8_t b : bytes) h = h * 31 + b;
    return h;
}

TEST(Loaders, FlatBinaryRunsInRealModeAtItsLoadAddress) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_guest("real_mode.bin");
    for (auto [at, expect] :
         {std::pair<std::uint64_t, const char *>{kDefaultFlatLoadAddr,
                                                 "real mode: cs=0x1000 ip=0x0000 cr0.pe=0x0000"},
          {0x7c00, "real mode: cs=0x0000 ip=0x7c00 cr0.pe=0x0000"},
          {0x23450, "real mode: cs=0x2000 ip=0x3450 cr0.pe=0x0000"}}) {
        SCOPED_TRACE(fmt::format("load address {:#x}", at));
        Booted b = boot(host, [&](auto ram) { return plan_flat(image, ram, at); });
        EXPECT_EQ(b.stop.reason, StopReason::kPowerOff) << b.stop.message;
        ASSERT_EQ(b.lines.size(), 1u) << joined(b.lines);
        EXPECT_EQ(b.lines[0], expect);
    }
}

TEST(Loaders, Elf32RunsInProtectedModeWithPagingOff) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_guest("probe32.elf");
    Booted b = boot(host, [&](auto ram) { return plan_elf(image, ram); });
    EXPECT_EQ(b.plan.format, "elf32");
    EXPECT_EQ(b.stop.reason, StopReason::kPowerOff) << b.stop.message;
    ASSERT_FALSE(b.lines.empty());
    EXPECT_EQ(b.lines[0], "probe32: cr0.pe=1 cr0.pg=0 cs=0x08 entry=elf");
}

TEST(Loaders, PvhGuestSeesStartInfoCmdlineMemoryMapAndInitrd) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_guest("probe32.elf");
    auto initrd = read_guest("real_mode.bin");  // any bytes will do; the guest hashes them
    const std::string cmdline = "console=ttyS0 guestvm.test=pvh";
    Booted b = boot(host, [&](auto ram) { return plan_linux_pvh(image, {cmdline, initrd}, ram); });
    EXPECT_EQ(b.stop.reason, StopReason::kPowerOff) << b.stop.message;
    std::vector<std::string> want{"probe32: cr0.pe=1 cr0.pg=0 cs=0x08 entry=pvh",
                                  "pvh: magic=0x336ec578 version=1 modules=1 rsdp=" + hex64(0),
                                  "pvh: cmdline=" + cmdline};
    for (const auto &e : b.plan.memory_map) {
        want.push_back(
            fmt::format("pvh: memmap {} {} type={}", hex64(e.addr), hex64(e.size), e.type));
    }
    const auto &rd = b.plan.pieces.at(b.plan.pieces.size() - 2);  // the initrd precedes boot data
    ASSERT_EQ(rd.what, "initrd");
    want.push_back(fmt::format("pvh: module {} {} hash={:#010x}", hex64(rd.gpa),
                               hex64(initrd.size()), guest_hash(initrd)));
    EXPECT_EQ(b.lines, want) << joined(b.lines);
    ASSERT_EQ(b.plan.memory_map.size(), 3u);  // low, legacy hole, the rest
}

TEST(Loaders, BzImage64EntryGetsBootParamsAsTheProtocolSays) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_guest("bzimage_probe.bin");
    auto initrd = read_guest("probe32.elf");
    Booted b = boot(host, [&](auto ram) {
        return plan_linux_bzimage(image, {"root=/dev/vda ro", initrd}, ram);
    });
    EXPECT_EQ(b.stop.reason, StopReason::kPowerOff) << b.stop.message;
    std::vector<std::string> want{
        "bzimage64: cs=0x10 ds=0x18 ss=0x18 boot_params=0x00010000 startup_64=0x00100200",
        "bzimage64: type_of_loader=0xff loadflags=0x01 version=0x020f",
        "bzimage64: cmdline=root=/dev/vda ro"};
    for (const auto &e : b.plan.memory_map) {
        want.push_back(
            fmt::format("bzimage64: e820 {} {} type={}", hex64(e.addr), hex64(e.size), e.type));
    }
    const auto &rd = b.plan.pieces.at(1);
    ASSERT_EQ(rd.what, "initrd");
    want.push_back(fmt::format("bzimage64: initrd {} {} hash={:#010x}", hex64(rd.gpa),
                               hex64(initrd.size()), guest_hash(initrd)));
    EXPECT_EQ(b.lines, want) << joined(b.lines);
}

// A boot-protocol image whose payload fields are zero (no compressed Linux inside) runs its own
// 64-bit code where the protocol loads it; PVH, which needs a payload, refuses it and says why.
TEST(Loaders, BzImageWithoutPayloadRunsByTheBootProtocol) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_guest("bzimage_bare.bin");
    auto header = parse_bzimage(image);
    ASSERT_TRUE(header) << header.error().message();
    ASSERT_TRUE(header->payload.empty());
    ASSERT_EQ(header->version, 0x20c);
    Booted b = boot(host, [&](auto ram) { return plan_linux_bzimage(image, {"x", {}}, ram); });
    EXPECT_EQ(b.stop.reason, StopReason::kPowerOff) << b.stop.message;
    EXPECT_EQ(b.lines, (std::vector<std::string>{"bzimage_bare: 64-bit entry at 0x00100200, "
                                                 "boot_params at 0x00010000"}))
        << joined(b.lines);
    auto pvh = plan_linux_pvh(image, {}, std::vector<RamRange>{{0, 64 << 20}});
    ASSERT_FALSE(pvh);
    EXPECT_EQ(pvh.error().code(), Errc::kMalformedImage);
    EXPECT_NE(pvh.error().message().find("no payload to decompress"), std::string::npos)
        << pvh.error().message();
}

TEST(Loaders, BzImageWithoutACompressedPayloadIsRefusedForPvh) {
    auto image = read_guest("bzimage_probe.bin");
    auto plan = plan_linux_pvh(image, {}, std::vector<RamRange>{{0, 64 << 20}});
    ASSERT_FALSE(plan);
    EXPECT_EQ(plan.error().code(), Errc::kMalformedImage);
    EXPECT_NE(plan.error().message().find("unknown compression"), std::string::npos);
}

TEST(Interrupts, GuestTakesTheUartInterruptAndAVmmRaisedIrq) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_guest("uart_irq.elf");
    Booted b = boot(
        host, [&](auto ram) { return plan_elf(image, ram); }, true,
        [](Vm &vm, test::Capture &capture) {
            // The guest waits for IRQ 3, which no device drives: the VMM raises it.
            for (int i = 0; i < 6000 && !vm.stopped(); ++i) {
                if (capture.has_complete_line("uart_irq: waiting for IRQ 3")) {
                    EXPECT_TRUE(vm.pulse_irq(3));
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            ADD_FAILURE() << "the guest never asked for IRQ 3";
        });
    EXPECT_EQ(b.stop.reason, StopReason::kPowerOff) << b.stop.message;
    const std::vector<std::string> want{
        "uart_irq: PIC and LAPIC ready",         "uart_irq: interrupt 1 iir=0x02",
        "uart_irq: interrupt 2 iir=0x02",        "uart_irq: interrupt 3 iir=0x02",
        "uart_irq: 3 interrupts on vector 0x24", "uart_irq: waiting for IRQ 3",
        "uart_irq: IRQ 3 taken on vector 0x23"};
    EXPECT_EQ(b.lines, want) << joined(b.lines);
}

TEST(Interrupts, IrqLinesNeedTheIrqchipAndAValidLine) {
    GUESTVM_REQUIRE_KVM(host);
    auto plain = build_machine(host, test::config("no-irqchip"));
    ASSERT_TRUE(plain);
    auto r = (*plain)->set_irq_line(4, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::kBadState);
    // Too late once a vCPU exists; fine before.
    EXPECT_EQ((*plain)->enable_irqchip().error().code(), Errc::kBadState);
    auto later = build_machine(host, test::config("later", 4 << 20, 0));
    ASSERT_TRUE(later);
    ASSERT_TRUE((*later)->enable_irqchip());
    ASSERT_TRUE((*later)->enable_irqchip());  // idempotent
    ASSERT_TRUE((*later)->add_vcpu());
    EXPECT_TRUE((*later)->pulse_irq(0));
    EXPECT_TRUE((*later)->set_irq_line(23, true));
    for (int bad : {-1, 24, 1 << 20}) {
        auto e = (*later)->set_irq_line(bad, true);
        ASSERT_FALSE(e);
        EXPECT_EQ(e.error().code(), Errc::kInvalidArgument);
    }
}

TEST(Interrupts, CApiCreatesTheControllerAndInjects) {
    GUESTVM_REQUIRE_KVM(host);
    EXPECT_EQ(vm_create_default_irq_controller(nullptr), -1);
    EXPECT_EQ(vm_inject_irq(nullptr, 4), -1);
    EXPECT_EQ(vm_set_irq_level(nullptr, 4, 1), -1);
    vm_t vm{};
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "irq"), 0) << guestvm_last_error();
    ASSERT_EQ(vm_create_default_irq_controller(&vm), 0) << guestvm_last_error();
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    ASSERT_NE(vcpu, nullptr);
    EXPECT_EQ(vm_create_default_irq_controller(&vm), 0);  // already there
    EXPECT_EQ(vm_inject_irq(vcpu, 4), 0) << guestvm_last_error();
    EXPECT_EQ(vm_set_irq_level(vcpu, 9, 1), 0);
    EXPECT_EQ(vm_set_irq_level(vcpu, 9, 0), 0);
    EXPECT_EQ(vm_inject_irq(vcpu, 99), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("IRQ 99"), std::string::npos);
    EXPECT_EQ(vm_destroy(&vm), 0);

    // libsel4vm's order: the controller after vm_create_vcpu is fine (the KVM vCPU comes later)...
    vm_t after{};
    ASSERT_EQ(vm_init(&after, nullptr, nullptr, none, nullptr, 0, "after"), 0);
    ASSERT_NE(vm_create_vcpu(&after, 100), nullptr);
    EXPECT_EQ(vm_inject_irq(after.vcpus[0], 4), -1);  // no controller yet
    EXPECT_EQ(vm_create_default_irq_controller(&after), 0) << guestvm_last_error();
    EXPECT_EQ(vm_inject_irq(after.vcpus[0], 4), 0) << guestvm_last_error();
    EXPECT_EQ(vm_destroy(&after), 0);

    // ...but not once a vCPU's registers were used: KVM has that vCPU then.
    vm_t late{};
    ASSERT_EQ(vm_init(&late, nullptr, nullptr, none, nullptr, 0, "late"), 0);
    ASSERT_NE(vm_create_vcpu(&late, 100), nullptr);
    seL4_Word eax = 1;
    EXPECT_EQ(vm_get_thread_context_reg(late.vcpus[0], VCPU_CONTEXT_EAX, &eax), 0);
    EXPECT_EQ(vm_create_default_irq_controller(&late), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("before any vCPU is started"),
              std::string::npos)
        << guestvm_last_error();
    EXPECT_EQ(vm_inject_irq(late.vcpus[0], 4), -1);  // no controller
    EXPECT_EQ(vm_destroy(&late), 0);
}

TEST(Loaders, AFailedLoadWritesNothing) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = build_machine(host, test::config("untouched", 4 << 20));
    ASSERT_TRUE(vm);
    auto good = read_guest("tiny.elf");
    auto ram = ram_ranges((*vm)->vspace());
    auto plan = plan_elf(good, ram);
    ASSERT_TRUE(plan);
    std::vector<std::uint8_t> before(64 << 10), after(64 << 10);
    ASSERT_TRUE((*vm)->vspace().read(GuestPhysAddr(0x100000), before));
    const std::vector<RamRange> smaller{{0, 0x100010}};  // the image does not fit
    EXPECT_FALSE(plan_elf(good, smaller));
    const auto &last = plan->pieces.back();
    const auto cut =
        static_cast<std::size_t>(last.bytes.data() - good.data()) + last.bytes.size() - 1;
    auto loaded = load_elf((*vm)->vspace(), std::span(good).first(cut));
    EXPECT_FALSE(loaded);
    ASSERT_TRUE((*vm)->vspace().read(GuestPhysAddr(0x100000), after));
    EXPECT_EQ(before, after);
    // A truncated image is refused before anything is written.
    // The C API's loader says so and leaves the entry alone too.
    vm_t cvm{};
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4 << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(&cvm, "c", &opts), 0);
    cvm.entry = 0x1234;
    EXPECT_EQ(guestvm_vm_load_elf(&cvm, guest_file("real_mode.bin").c_str()), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("no ELF magic"), std::string::npos);
    EXPECT_EQ(cvm.entry, 0x1234u);
    EXPECT_EQ(vm_destroy(&cvm), 0);
}

// The C API maps an ELF and checks its size against the guest's RAM first: a 1 TiB sparse file
// is refused at once by name and both sizes (it was "std::bad_alloc"), as is a directory, and
// a guest image still loads.
TEST(Loaders, CApiRefusesAnImageLargerThanGuestRamUnread) {
    GUESTVM_REQUIRE_KVM(host);
    const auto dir =
        std::filesystem::path(::testing::TempDir()) / ("capi_images_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string huge = (dir / "huge.elf").string();
    std::ofstream{huge};
    ASSERT_EQ(::truncate(huge.c_str(), static_cast<off_t>(1ull << 40)), 0);
    vm_t cvm{};
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4 << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(&cvm, "c", &opts), 0) << guestvm_last_error();
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(guestvm_vm_load_elf(&cvm, huge.c_str()), -1);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
    const std::string error = guestvm_last_error();
    for (const std::string &want :
         {huge, std::string("1099511627776 bytes (1 TiB)"), std::string("4194304 bytes (4 MiB)")}) {
        EXPECT_NE(error.find(want), std::string::npos) << error;
    }
    EXPECT_EQ(guestvm_vm_load_elf(&cvm, dir.c_str()), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("is a directory"), std::string::npos)
        << guestvm_last_error();
    EXPECT_EQ(guestvm_vm_load_elf(&cvm, guest_file("tiny.elf").c_str()), 0) << guestvm_last_error();
    EXPECT_NE(cvm.entry, 0u);
    EXPECT_EQ(vm_destroy(&cvm), 0);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace guestvm

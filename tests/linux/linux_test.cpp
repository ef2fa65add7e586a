// Debian's own kernel (fetched by scripts/fetch-linux.sh) booted by guestvm, checked by what
// the kernel itself prints through guestvm's serial port: its banner, the command line it was
// given and the e820 map it was given. Here, where KVM emulates CPL-0 guest code, that is as far
// as a test can wait for; on a host with hardware virtualisation the full-boot tests go on to
// the busybox initramfs's /init.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "../kvm/kvm_fixture.hpp"

namespace guestvm {
namespace {

const std::string kLinuxDir = GUESTVM_LINUX_DIR;

std::vector<std::uint8_t> read_or_fail(const std::string &path) {
    auto bytes = read_file(path);
    EXPECT_TRUE(bytes) << (bytes ? "" : bytes.error().message())
                       << " (scripts/setup.sh fetches it: scripts/fetch-linux.sh)";
    return bytes ? std::move(*bytes) : std::vector<std::uint8_t>{};
}

enum class Path { kPvh, kBzImage };

struct KernelRun {
    LoadPlan plan;
    std::vector<std::string> lines;
    StopInfo stop;
    double seconds = 0;
};

// Boots the kernel by `path` and runs it until a serial line contains `until` (then stops the
// VM) or `limit` passes.
KernelRun boot_kernel(std::shared_ptr<Host> host, Path path, const std::string &cmdline,
                      std::span<const std::uint8_t> initrd, const std::string &until,
                      std::chrono::seconds limit) {
    KernelRun out;
    auto kernel = read_or_fail(kLinuxDir + "/vmlinuz");
    if (kernel.empty()) return out;
    test::Capture capture;
    MachineConfig config = test::config("linux", 256ull << 20);
    config.serial_sink = capture.sink();
    config.irqchip = true;
    config.unhandled_io = UnhandledIoPolicy::kAllOnes;
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return out;
    auto ram = ram_ranges((*vm)->vspace());
    LinuxBootOptions options{cmdline, initrd};
    auto plan = path == Path::kPvh ? plan_linux_pvh(kernel, options, ram)
                                   : plan_linux_bzimage(kernel, options, ram);
    EXPECT_TRUE(plan) << (plan ? "" : plan.error().message());
    if (!plan) return out;
    EXPECT_TRUE(write_plan((*vm)->vspace(), *plan));
    (*vm)->set_boot_mode(plan->entry.mode);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE((*vm)->start_core(0, plan->entry));
    std::jthread watcher([&](std::stop_token stop) {
        while (!stop.stop_requested() && !(*vm)->stopped()) {
            if (capture.has_complete_line(until)) {
                (*vm)->stop({StopReason::kRequested, "seen: " + until});
                return;
            }
            if (std::chrono::steady_clock::now() - t0 > limit) {
                (*vm)->stop({StopReason::kError,
                             fmt::format("no \"{}\" within {} s", until, limit.count())});
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    out.stop = (*vm)->run();
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    watcher = {};
    out.lines = capture.lines();
    out.plan = std::move(*plan);
    return out;
}

// The e820 map as the kernel printed it ("BIOS-e820: [mem 0xA-0xB] usable").
std::vector<MemoryMapEntry> printed_e820(const std::vector<std::string> &lines) {
    static const std::regex re(R"(BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\w+))");
    std::vector<MemoryMapEntry> map;
    for (const auto &l : lines) {
        std::smatch m;
        if (!std::regex_search(l, m, re)) continue;
        std::uint64_t first = std::stoull(m[1], nullptr, 16), last = std::stoull(m[2], nullptr, 16);
        auto type = m[3] == "usable" ? MemoryMapEntry::kUsable : MemoryMapEntry::kReserved;
        map.push_back({first, last - first + 1, type});
    }
    return map;
}

std::string all(const std::vector<std::string> &lines) {
    std::string s;
    for (const auto &l : lines) s += l + "\n";
    return s;
}

void expect_early_boot(Path path) {
    GUESTVM_REQUIRE_KVM(host);
    const std::string cmdline = fmt::format("earlyprintk=ttyS0 console=ttyS0 guestvm.path={}",
                                            path == Path::kPvh ? "pvh" : "bzimage");
    // The boot console is announced right after the e820 map is printed.
    KernelRun run = boot_kernel(host, path, cmdline, {}, "bootconsole [earlyser0] enabled",
                                std::chrono::seconds(420));
    ASSERT_FALSE(run.lines.empty()) << run.stop.message;
    EXPECT_EQ(run.stop.reason, StopReason::kRequested) << run.stop.message << "\n"
                                                       << all(run.lines);
    const auto banner = std::find_if(run.lines.begin(), run.lines.end(), [](const auto &l) {
        return l.find("Linux version 6.") != std::string::npos;
    });
    EXPECT_NE(banner, run.lines.end()) << all(run.lines);
    const bool has_cmdline = std::any_of(run.lines.begin(), run.lines.end(), [&](const auto &l) {
        return l.ends_with("Command line: " + cmdline);
    });
    EXPECT_TRUE(has_cmdline) << all(run.lines);
    ASSERT_FALSE(run.plan.memory_map.empty());
    EXPECT_EQ(printed_e820(run.lines), run.plan.memory_map) << all(run.lines);
    std::printf("[ figures  ] %s: the kernel's boot console came up %.1f s after entry\n",
                path == Path::kPvh ? "PVH" : "bzImage 64-bit entry", run.seconds);
}

TEST(LinuxPlan, DebianKernelPlansByBothPaths) {
    auto kernel = read_or_fail(kLinuxDir + "/vmlinuz");
    ASSERT_FALSE(kernel.empty());
    auto header = parse_bzimage(kernel);
    ASSERT_TRUE(header) << header.error().message();
    EXPECT_EQ(detect_compression(header->payload), Compression::kLz4);  // Debian's choice
    const std::vector<RamRange> ram{{0, 256ull << 20}};
    auto pvh = plan_linux_pvh(kernel, {"console=ttyS0", {}}, ram);
    ASSERT_TRUE(pvh) << pvh.error().message();
    EXPECT_EQ(pvh->entry.mode, BootMode::kProtected32);
    EXPECT_EQ(pvh->entry.rbx, kLinuxBootDataAddr);
    EXPECT_GE(pvh->pieces.front().gpa, 16u << 20);  // vmlinux's physical load address
    auto bz = plan_linux_bzimage(kernel, {"console=ttyS0", {}}, ram);
    ASSERT_TRUE(bz) << bz.error().message();
    EXPECT_EQ(bz->entry.rip, header->pref_address + 0x200);
    EXPECT_EQ(bz->entry.rsi, kLinuxBootDataAddr);
    // Too little RAM for the kernel is an error, not a crash.
    const std::vector<RamRange> tiny{{0, 8ull << 20}};
    EXPECT_FALSE(plan_linux_pvh(kernel, {}, tiny));
    EXPECT_FALSE(plan_linux_bzimage(kernel, {}, tiny));
}

TEST(Linux, DebianKernelByPvhPrintsBannerCommandLineAndE820) { expect_early_boot(Path::kPvh); }

TEST(Linux, DebianKernelByBzImage64EntryPrintsBannerCommandLineAndE820) {
    expect_early_boot(Path::kBzImage);
}

// Full boots need CPL-0 guest code to run natively.
bool hardware_virtualisation(std::string *why) {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("flags", 0) == 0 &&
            (std::regex_search(line, std::regex(R"(\b(vmx|svm)\b)")))) {
            return true;
        }
    }
    *why =
        "this host's CPU flags show no vmx/svm: KVM here is nested and emulates CPL-0 guest "
        "code (about 1 us an instruction), so booting Linux to user space would take far "
        "longer than a test may";
    return false;
}

void expect_full_boot(Path path) {
    GUESTVM_REQUIRE_KVM(host);
    std::string why;
    if (!hardware_virtualisation(&why)) GTEST_SKIP() << why;
    auto initrd = read_or_fail(kLinuxDir + "/initramfs.cpio");
    ASSERT_FALSE(initrd.empty());
    KernelRun run = boot_kernel(host, path, "console=ttyS0 panic=-1", initrd,
                                "guestvm-init: ready ", std::chrono::seconds(120));
    EXPECT_EQ(run.stop.reason, StopReason::kRequested) << run.stop.message << "\n"
                                                       << all(run.lines);
}

TEST(LinuxFullBoot, ByPvhToTheInitramfs) { expect_full_boot(Path::kPvh); }
TEST(LinuxFullBoot, ByBzImage64EntryToTheInitramfs) { expect_full_boot(Path::kBzImage); }

}  // namespace
}  // namespace guestvm

// The guestvm command line, run as a user would: output, JSON, exit statuses, bad input.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kvm_fixture.hpp"
#include "support/images.hpp"

namespace guestvm {
namespace {

struct Ran {
    int status;
    std::string out;  // stdout + stderr
};

// With `kill_after` seconds, coreutils' timeout kills a CLI that runs longer (status 124).
// Standard input is the output of the shell command `feed`, or /dev/null (never the terminal
// of whoever runs the tests).
Ran run_cli(const std::string &args, bool merge_stderr = true, int kill_after = 0,
            const std::string &feed = "") {
    std::string cmd = fmt::format(
        "{}{}{} {}{}", feed.empty() ? "" : feed + " | ",
        kill_after > 0 ? fmt::format("timeout {} ", kill_after) : "", GUESTVM_CLI, args,
        (merge_stderr ? " 2>&1" : " 2>/dev/null") + std::string(feed.empty() ? " </dev/null" : ""));
    Ran r{-1, {}};
    FILE *p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

struct RanMeasured {
    int status = -1;
    std::string out;  // stdout only, or stdout + stderr
    long peak_rss_kib = -1;
    double seconds = -1;  // from spawn to exit
};

// Runs the CLI without a shell in between, so that wait4 reports the CLI's own peak RSS.
// stderr goes to /dev/null, or with `merge_stderr` into `out`.
RanMeasured run_cli_measured(std::vector<std::string> args, bool merge_stderr = false) {
    const auto started = std::chrono::steady_clock::now();
    RanMeasured r;
    args.insert(args.begin(), GUESTVM_CLI);
    std::vector<char *> argv;
    for (std::string &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return r;
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    if (merge_stderr) {
        ::posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
    } else {
        ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = -1;
    const int spawned = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    char buf[1 << 16];
    for (ssize_t n; spawned == 0 && (n = ::read(out[0], buf, sizeof buf)) > 0;) {
        r.out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int st = 0;
    struct rusage usage {};
    if (spawned != 0 || ::wait4(pid, &st, 0, &usage) != pid) return r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.peak_rss_kib = usage.ru_maxrss;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return r;
}

// A directory of its own under the test's temporary directory, removed at the end.
class TempFiles {
  public:
    explicit TempFiles(const std::string &name)
        : dir_(std::filesystem::path(::testing::TempDir()) /
               (name + "_" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(dir_);
    }
    ~TempFiles() { std::filesystem::remove_all(dir_); }
    std::string path(const std::string &name) const { return (dir_ / name).string(); }
    // A sparse file: its size costs no disk and no memory unless something reads it.
    std::string sparse(const std::string &name, std::uint64_t size) const {
        const std::string p = path(name);
        std::ofstream{p};
        EXPECT_EQ(::truncate(p.c_str(), static_cast<off_t>(size)), 0);
        return p;
    }
    std::string write(const std::string &name, const std::vector<std::uint8_t> &bytes) const {
        const std::string p = path(name);
        std::ofstream(p, std::ios::binary)
            .write(reinterpret_cast<const char *>(bytes.data()),
                   static_cast<std::streamsize>(bytes.size()));
        return p;
    }

  private:
    std::filesystem::path dir_;
};

TEST(Cli, HelpAndBadFlags) {
    Ran help = run_cli("--help");
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("run"), std::string::npos);
    Ran run_help = run_cli("run --help");
    EXPECT_EQ(run_help.status, 0);
    EXPECT_NE(run_help.out.find("--vcpus"), std::string::npos);
    Ran bad = run_cli("run --bogus");
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.out.find("guestvm: "), std::string::npos);
    EXPECT_EQ(run_cli("run --vcpus 0").status, 2);
    EXPECT_EQ(run_cli("run --mem lots").status, 2);
    EXPECT_EQ(run_cli("").status, 2);
}

TEST(Cli, VersionIsTheProjectVersion) {
    // The build's CMakeCache.txt, next to the guests, holds the version project() declared.
    std::ifstream cache(std::filesystem::path(GUESTVM_GUEST_DIR).parent_path() / "CMakeCache.txt");
    const std::string key = "CMAKE_PROJECT_VERSION:STATIC=";
    std::string version;
    for (std::string line; std::getline(cache, line);) {
        if (line.rfind(key, 0) == 0) version = line.substr(key.size());
    }
    ASSERT_FALSE(version.empty());
    Ran r = run_cli("--version", false);
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "guestvm " + version + "\n");
}

TEST(Cli, MissingAndMalformedImagesAreRefusedInOneLine) {
    Ran missing = run_cli("run /nonexistent/guest.elf");
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.out.find("/nonexistent/guest.elf"), std::string::npos);
    std::string path = ::testing::TempDir() + "/not-an-elf.bin";
    std::ofstream(path) << "this is not an ELF file at all, just text that is long enough........";
    GUESTVM_REQUIRE_KVM(host);
    Ran bad = run_cli("run " + path);
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.out.find("no ELF magic"), std::string::npos) << bad.out;
    EXPECT_EQ(std::count(bad.out.begin(), bad.out.end(), '\n'), 1) << bad.out;
}

TEST(Cli, DemoWith16VcpusPrintsGreetingsAndTheUtilTable) {
    GUESTVM_REQUIRE_KVM(host);
    Ran r = run_cli("run --vcpus 16");
    ASSERT_EQ(r.status, 0) << r.out;
    for (int c = 1; c < 16; ++c) {
        EXPECT_NE(
            r.out.find(fmt::format("hello from core {} (context id {:#010x})", c, 0xC0DE0000u | c)),
            std::string::npos)
            << c;
    }
    EXPECT_NE(r.out.find("VM stopped: power-off"), std::string::npos);
    EXPECT_NE(r.out.find("   15     15      no"), std::string::npos) << r.out;
}

class CliJson : public ::testing::TestWithParam<int> {};

// The util table in the JSON agrees with what the guest printed: every greeting came from the
// vCPU the table says serves that core, and every core was brought up by the guest itself.
TEST_P(CliJson, IsOneDocumentThatAgreesWithTheGuest) {
    GUESTVM_REQUIRE_KVM(host);
    const int n = GetParam();
    Ran r = run_cli(fmt::format("run --vcpus {} --json", n), false);
    ASSERT_EQ(r.status, 0) << r.out;
    auto doc = nlohmann::json::parse(r.out);
    EXPECT_EQ(doc["stop"]["reason"], "power-off");
    ASSERT_EQ(doc["vcpus"].size(), static_cast<std::size_t>(n));
    std::map<int, int> vcpu_of_core;
    for (const auto &v : doc["vcpus"]) {
        EXPECT_FALSE(v["online"].get<bool>());
        EXPECT_NE(v["tcb_cptr"].get<std::uint64_t>(), 0u);
        EXPECT_NE(v["vcpu_cptr"].get<std::uint64_t>(), 0u);
        vcpu_of_core[v["target_core"].get<int>()] = v["id"].get<int>();
    }
    ASSERT_EQ(vcpu_of_core.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(vcpu_of_core.begin()->first, 0);
    EXPECT_EQ(vcpu_of_core.rbegin()->first, n - 1);
    std::set<int> greeted;
    for (const auto &l : doc["serial"]) {
        std::string line = l["line"];
        if (line.rfind("hello from core ", 0) != 0) continue;
        int core = std::stoi(line.substr(16));
        EXPECT_EQ(vcpu_of_core.at(core), l["vcpu"].get<int>()) << line;
        EXPECT_NE(line.find("context id"), std::string::npos)
            << "not started by the guest: " << line;
        greeted.insert(core);
    }
    EXPECT_EQ(greeted.size(), static_cast<std::size_t>(n - 1));
    EXPECT_GE(doc["exits"]["platform_call"].get<int>(), 3 * n);
}

INSTANTIATE_TEST_SUITE_P(Vcpus, CliJson, ::testing::Values(4, 64),
                         [](const auto &info) { return fmt::format("n{}", info.param); });

TEST(Cli, GuestFaultsAndResetGiveTheirStatus) {
    GUESTVM_REQUIRE_KVM(host);
    Ran fault = run_cli("run " + test::guest_path("triple_fault"));
    EXPECT_EQ(fault.status, 1);
    EXPECT_NE(fault.out.find("guest-fault"), std::string::npos) << fault.out;
    Ran reset = run_cli("run " + test::guest_path("psci_probe"));
    EXPECT_EQ(reset.status, 3) << reset.out;
    EXPECT_NE(reset.out.find("psci version 0x00010000"), std::string::npos) << reset.out;
    EXPECT_NE(reset.out.find("unknown -> -1"), std::string::npos) << reset.out;
    EXPECT_NE(reset.out.find("affinity 0 -> 0"), std::string::npos) << reset.out;
    Ran tiny = run_cli("run " + test::guest_path("tiny"));
    EXPECT_EQ(tiny.status, 0);
    EXPECT_EQ(tiny.out.rfind("hello from guestvm\n", 0), 0u) << tiny.out;
    Ran each = run_cli("run --start-all --vcpus 3 " + test::guest_path("hello_each"));
    EXPECT_EQ(each.status, 0) << each.out;
    EXPECT_NE(each.out.find("all-vcpus-off"), std::string::npos);
    EXPECT_NE(each.out.find("core 2: hello"), std::string::npos);
    // The built-in demo with every core started by the VMM: each core reports once, and core 0
    // does not bring up (or count) a core again that already came up and went off.
    for (int i = 0; i < 5; ++i) {
        Ran all = run_cli("run --start-all --vcpus 4");
        EXPECT_EQ(all.status, 0) << all.out;
        EXPECT_NE(all.out.find("4 of 4 cores came up"), std::string::npos) << all.out;
        for (int core = 1; core < 4; ++core) {
            const std::string hello = fmt::format("hello from core {} ", core);
            std::size_t seen = 0;
            for (auto at = all.out.find(hello); at != std::string::npos;
                 at = all.out.find(hello, at + 1)) {
                ++seen;
            }
            EXPECT_EQ(seen, 1u) << all.out;
        }
    }
}

TEST(Cli, LoaderFlagsAreCheckedBeforeAnythingRuns) {
    const std::string g = std::string(GUESTVM_GUEST_DIR) + "/";
    for (const char *args :
         {"run --flat a.bin --kernel b", "run --kernel a --flat b", "run x.elf --flat a.bin",
          "run --initrd r x.elf", "run --cmdline s x.elf", "run --load-addr 0x7c00 x.elf",
          "run --kernel k --boot elf", "run --timeout -1",
          "run --flat a.bin --load-addr nowhere"}) {
        Ran r = run_cli(args);
        EXPECT_EQ(r.status, std::string(args).find("nowhere") != std::string::npos ? 1 : 2)
            << args << "\n"
            << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
    }
    GUESTVM_REQUIRE_KVM(host);
    Ran high = run_cli("run --flat " + g + "real_mode.bin --load-addr 0x100000");
    EXPECT_EQ(high.status, 1);
    EXPECT_NE(high.out.find("below 1 MiB"), std::string::npos) << high.out;
    Ran no_note = run_cli("run --kernel " + test::guest_path("tiny"));
    EXPECT_EQ(no_note.status, 1);
    EXPECT_NE(no_note.out.find("CONFIG_PVH"), std::string::npos) << no_note.out;
}

TEST(Cli, RunsEachImageFormat) {
    GUESTVM_REQUIRE_KVM(host);
    const std::string g = std::string(GUESTVM_GUEST_DIR) + "/";
    Ran flat = run_cli("run --flat " + g + "real_mode.bin --load-addr 0x7c00");
    EXPECT_EQ(flat.status, 0) << flat.out;
    EXPECT_EQ(flat.out.rfind("real mode: cs=0x0000 ip=0x7c00 cr0.pe=0x0000\n", 0), 0u) << flat.out;
    Ran elf32 = run_cli("run " + g + "probe32.elf");
    EXPECT_EQ(elf32.status, 0) << elf32.out;
    EXPECT_EQ(elf32.out.rfind("probe32: cr0.pe=1 cr0.pg=0 cs=0x08 entry=elf\n", 0), 0u);
    Ran pvh = run_cli("run --mem 32M --emulation-assist off --kernel " + g +
                          "probe32.elf --cmdline 'a b c' --initrd " + g + "real_mode.bin --json",
                      false);
    EXPECT_EQ(pvh.status, 0) << pvh.out;
    auto doc = nlohmann::json::parse(pvh.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << pvh.out;
    EXPECT_EQ(doc["format"], "linux-pvh");
    std::string serial;
    for (const auto &l : doc["serial"]) serial += l["line"].get<std::string>() + "\n";
    EXPECT_NE(serial.find("pvh: cmdline=a b c\n"), std::string::npos) << serial;
    EXPECT_NE(serial.find("pvh: memmap 0x0000000000100000 0x0000000001f00000 type=1"),
              std::string::npos)
        << serial;
    EXPECT_NE(serial.find("modules=1"), std::string::npos) << serial;
    Ran bz = run_cli("run --emulation-assist off --kernel " + g +
                     "bzimage_probe.bin --boot bzimage --cmdline x=1");
    EXPECT_EQ(bz.status, 0) << bz.out;
    EXPECT_NE(bz.out.find("bzimage64: cmdline=x=1\n"), std::string::npos) << bz.out;
    // With the emulation assist on, the kernel is also told which features to leave alone.
    Ran assisted = run_cli("run --emulation-assist on --kernel " + g +
                           "bzimage_probe.bin --boot bzimage --cmdline x=1");
    EXPECT_EQ(assisted.status, 0) << assisted.out;
    EXPECT_NE(assisted.out.find("bzimage64: cmdline=x=1 noxsave clearcpuid="), std::string::npos)
        << assisted.out;
    // A boot-protocol image with no payload: it runs by the boot protocol, not by PVH.
    Ran bare = run_cli("run --kernel " + g + "bzimage_bare.bin --boot bzimage");
    EXPECT_EQ(bare.status, 0) << bare.out;
    EXPECT_NE(bare.out.find("bzimage_bare: 64-bit entry at 0x00100200"), std::string::npos)
        << bare.out;
    Ran bare_pvh = run_cli("run --kernel " + g + "bzimage_bare.bin", true);
    EXPECT_EQ(bare_pvh.status, 1) << bare_pvh.out;
    EXPECT_NE(bare_pvh.out.find("no payload to decompress"), std::string::npos) << bare_pvh.out;
    // With the in-kernel local APICs, cores the guest starts must still run (not wait for SIPI).
    Ran smp = run_cli("run --irqchip --vcpus 4");
    EXPECT_EQ(smp.status, 0) << smp.out;
    EXPECT_NE(smp.out.find("4 of 4 cores came up"), std::string::npos) << smp.out;
    Ran irq = run_cli("run --irqchip --timeout 3 " + test::guest_path("uart_irq"));
    EXPECT_EQ(irq.status, 4) << irq.out;  // it waits for an IRQ 3 nobody raises
    EXPECT_NE(irq.out.find("uart_irq: 3 interrupts on vector 0x24"), std::string::npos) << irq.out;
    EXPECT_NE(irq.out.find("requested (--timeout 3 s)"), std::string::npos) << irq.out;
}

// A path is bytes too: one that is not UTF-8 still gives a valid document (with U+FFFD).
TEST(Cli, JsonReplacesBytesThatAreNotUtf8) {
    GUESTVM_REQUIRE_KVM(host);
    const std::string path = ::testing::TempDir() + "/tiny\xff.elf";
    std::filesystem::copy_file(test::guest_path("tiny"), path,
                               std::filesystem::copy_options::overwrite_existing);
    Ran r = run_cli("run --json '" + path + "'", false);
    ASSERT_EQ(r.status, 0) << r.out;
    auto doc = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << r.out;
    EXPECT_EQ(doc["guest"], ::testing::TempDir() + "/tiny\uFFFD.elf");
    ASSERT_EQ(doc["serial"].size(), 1u);
    EXPECT_EQ(doc["serial"][0]["line"], "hello from guestvm");
    EXPECT_EQ(doc["serial_dropped_lines"], 0);
    EXPECT_EQ(doc["serial_dropped_bytes"], 0);
}

// cli_noise prints forever: line k is "\xff<k / 16>" when k % 16 == 0, else empty. --json keeps
// the last 1000 of its lines, counts the rest, and the CLI's memory stays bounded.
TEST(Cli, JsonKeepsABoundedTailOfAGuestThatPrintsForever) {
    GUESTVM_REQUIRE_KVM(host);
    const std::string noise = test::guest_path("cli_noise");
    RanMeasured quiet = run_cli_measured({"run", "--json", test::guest_path("tiny")});
    ASSERT_EQ(quiet.status, 0);
    RanMeasured r = run_cli_measured({"run", "--json", "--timeout", "2", noise});
    ASSERT_EQ(r.status, 4) << r.out.substr(0, 4096);
    auto doc = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << r.out.substr(0, 4096);
    EXPECT_EQ(doc["stop"]["reason"], "requested");
    // Keeping every line peaked ~30 MB above the quiet run here; the tail stays within ~1 MB.
    EXPECT_LT(r.peak_rss_kib, quiet.peak_rss_kib + 12 * 1024)
        << "a run of tiny peaked at " << quiet.peak_rss_kib << " KiB";
    const auto &serial = doc["serial"];
    ASSERT_EQ(serial.size(), 1000u);
    const std::uint64_t dropped = doc["serial_dropped_lines"];
    ASSERT_GT(dropped, 0u);
    auto expected_line = [](std::uint64_t k) {
        return k % 16 == 0 ? "\uFFFD" + std::to_string(k / 16) : std::string();
    };
    for (std::size_t i = 0; i < serial.size(); ++i) {
        const std::string line = serial[i]["line"];
        const std::string want = expected_line(dropped + i);
        if (i + 1 < serial.size()) {
            ASSERT_EQ(line, want) << "tail line " << i;
        } else {  // the last line may have been cut off by the stop
            EXPECT_EQ(want.rfind(line, 0), 0u) << line;
        }
    }
    std::uint64_t dropped_bytes = 0;  // 0xFF and the digits of each numbered line
    for (std::uint64_t k = 0; k < dropped; k += 16)
        dropped_bytes += 1 + std::to_string(k / 16).size();
    EXPECT_EQ(doc["serial_dropped_bytes"], dropped_bytes);
    // Text mode streams every line as it comes, bytes as they are.
    Ran text = run_cli("run --timeout 1 " + noise, false);
    EXPECT_EQ(text.status, 4);
    const std::string first_groups =
        std::string("\xff") + "0" + std::string(16, '\n') + "\xff" + "1\n";
    EXPECT_EQ(text.out.rfind(first_groups, 0), 0u);
    EXPECT_GT(std::count(text.out.begin(), text.out.end(), '\n'), 1000);
}

// A sparse file far larger than the guest's RAM, as each kind of image: refused from its size
// in one line naming it and both sizes, at once and without reading it. (A 1 TiB file was
// "internal error: std::bad_alloc"; a 256 MiB one was read whole before "no ELF magic".)
TEST(Cli, ImagesLargerThanGuestRamAreRefusedUnread) {
    GUESTVM_REQUIRE_KVM(host);
    TempFiles dir("cli_images");
    const std::string tiny = test::guest_path("tiny");
    RanMeasured quiet = run_cli_measured({"run", "--mem", "64M", tiny});
    ASSERT_EQ(quiet.status, 0);
    const std::pair<std::string, const char *> files[] = {
        {dir.sparse("huge.img", 1ull << 40), "1099511627776 bytes (1 TiB)"},
        {dir.sparse("over.img", 256u << 20), "268435456 bytes (256 MiB)"}};
    for (const auto &[file, size] : files) {
        for (std::vector<std::string> args :
             std::vector<std::vector<std::string>>{{file},
                                                   {"--flat", file},
                                                   {"--kernel", file},
                                                   {"--kernel", tiny, "--initrd", file}}) {
            args.insert(args.begin(), {"run", "--mem", "64M"});
            SCOPED_TRACE(fmt::format("{}", fmt::join(args, " ")));
            RanMeasured r = run_cli_measured(args, true);
            EXPECT_EQ(r.status, 1) << r.out;
            EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
            for (const std::string &want :
                 {file, std::string(size), std::string("67108864 bytes")}) {
                EXPECT_NE(r.out.find(want), std::string::npos) << r.out;
            }
            EXPECT_LT(r.seconds, 1.0);
            EXPECT_LT(r.peak_rss_kib, quiet.peak_rss_kib + 16 * 1024)
                << "a run of tiny peaked at " << quiet.peak_rss_kib << " KiB";
        }
    }
}

// A FIFO (whose open waited for a writer forever), a directory and a device are refused with
// what they are, as a guest and as an initrd.
TEST(Cli, ImagesThatAreNotRegularFilesAreRefused) {
    GUESTVM_REQUIRE_KVM(host);
    TempFiles dir("cli_fifo");
    const std::string fifo = dir.path("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::filesystem::create_directory(dir.path("sub"));
    const std::pair<std::string, const char *> cases[] = {{fifo, "is a FIFO"},
                                                          {dir.path("sub"), "is a directory"},
                                                          {"/dev/zero", "is a character device"}};
    for (const auto &[file, what] : cases) {
        for (const std::string &args :
             {file, "--kernel " + test::guest_path("tiny") + " --initrd " + file}) {
            SCOPED_TRACE(args);
            Ran r = run_cli("run --mem 64M " + args, true, 10);
            EXPECT_EQ(r.status, 1) << r.out;
            EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
            EXPECT_NE(r.out.find(file + " " + what), std::string::npos) << r.out;
        }
    }
}

// A 2 KiB bzImage whose gzip payload states 1 GiB but holds 4 KiB: with 512 MiB of guest RAM
// it is refused from the stated size; with 2 GiB it decodes what is there and is refused,
// peaking far below 1 GiB (zero-filling the stated size peaked at 1.05 GB).
TEST(Cli, KernelPayloadStatingMoreThanItHoldsCostsWhatItHolds) {
    GUESTVM_REQUIRE_KVM(host);
    TempFiles dir("cli_bomb");
    test_images::Bytes payload = test_images::gzip(test_images::sample(4096));
    test_images::put<std::uint32_t>(payload, payload.size() - 4, 1u << 30);
    const std::string bomb = dir.write("bomb.bzImage", test_images::make_bzimage(0x20f, payload));
    RanMeasured quiet = run_cli_measured({"run", "--mem", "2G", test::guest_path("tiny")});
    ASSERT_EQ(quiet.status, 0);
    RanMeasured small = run_cli_measured({"run", "--kernel", bomb}, true);
    EXPECT_EQ(small.status, 1) << small.out;
    EXPECT_EQ(std::count(small.out.begin(), small.out.end(), '\n'), 1) << small.out;
    EXPECT_NE(small.out.find("states 0x40000000 bytes"), std::string::npos) << small.out;
    EXPECT_NE(small.out.find("0x20000000 bytes of guest RAM"), std::string::npos) << small.out;
    RanMeasured big = run_cli_measured({"run", "--mem", "2G", "--kernel", bomb}, true);
    EXPECT_EQ(big.status, 1) << big.out;
    EXPECT_EQ(std::count(big.out.begin(), big.out.end(), '\n'), 1) << big.out;
    EXPECT_NE(big.out.find("0x1000 bytes decoded"), std::string::npos) << big.out;
    for (const RanMeasured *r : {&small, &big}) {
        EXPECT_LT(r->peak_rss_kib, quiet.peak_rss_kib + 32 * 1024)
            << "a run of tiny peaked at " << quiet.peak_rss_kib << " KiB";
    }
}

// ---- standard input to COM1 ----

TEST(Cli, PipedInputReachesTheGuest) {
    GUESTVM_REQUIRE_KVM(host);
    Ran irq =
        run_cli("run --irqchip " + test::guest_path("uart_echo"), true, 30, "printf 'hello\\n'");
    EXPECT_EQ(irq.status, 0) << irq.out;
    EXPECT_NE(irq.out.find("uart_echo: ready\necho: hello\n"), std::string::npos) << irq.out;
    Ran poll = run_cli("run " + test::guest_path("uart_echo_poll"), true, 30, "printf 'polled\\r'");
    EXPECT_EQ(poll.status, 0) << poll.out;
    EXPECT_NE(poll.out.find("echo: polled\n"), std::string::npos) << poll.out;
    // Input that comes in pieces, with pauses, is one stream.
    Ran slow = run_cli("run --irqchip " + test::guest_path("uart_echo"), true, 30,
                       "(printf 'he'; sleep 0.3; printf 'llo'; sleep 0.3; printf '\\n')");
    EXPECT_EQ(slow.status, 0) << slow.out;
    EXPECT_NE(slow.out.find("echo: hello\n"), std::string::npos) << slow.out;
    Ran json =
        run_cli("run --json --irqchip " + test::guest_path("uart_echo"), false, 30, "echo json");
    ASSERT_EQ(json.status, 0) << json.out;
    auto doc = nlohmann::json::parse(json.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << json.out;
    ASSERT_GE(doc["serial"].size(), 2u) << json.out;
    EXPECT_EQ(doc["serial"][1]["line"], "echo: json");
}

// The end of a pipe ends forwarding, not the VM: the guest still waits for its newline when
// --timeout stops it. --stdin none leaves standard input alone.
TEST(Cli, EndOfInputDoesNotStopTheVm) {
    GUESTVM_REQUIRE_KVM(host);
    Ran eof = run_cli("run --timeout 2 --irqchip " + test::guest_path("uart_echo"), true, 30,
                      "printf 'no newline'");
    EXPECT_EQ(eof.status, 4) << eof.out;
    EXPECT_NE(eof.out.find("uart_echo: ready"), std::string::npos) << eof.out;
    EXPECT_EQ(eof.out.find("\necho:"), std::string::npos) << eof.out;
    EXPECT_NE(eof.out.find("requested (--timeout 2 s)"), std::string::npos) << eof.out;
    Ran none = run_cli("run --stdin none --timeout 1 " + test::guest_path("uart_echo_poll"), true,
                       30, "printf 'hello\\n'");
    EXPECT_EQ(none.status, 4) << none.out;
    EXPECT_EQ(none.out.find("\necho:"), std::string::npos) << none.out;
    EXPECT_EQ(run_cli("run --stdin sometimes").status, 2);
}

bool is_raw(const termios &t) {
    return (t.c_lflag & (ICANON | ECHO | ISIG | IEXTEN)) == 0 &&
           (t.c_iflag & (ICRNL | IXON)) == 0 && (t.c_oflag & OPOST) != 0;
}

// The CLI on a pseudo-terminal of its own, as a shell starts a foreground job: a new session
// whose controlling terminal is the pty, with standard input, output and error on it.
class PtyCli {
  public:
    explicit PtyCli(std::vector<std::string> args) {
        char name[128];
        if (::openpty(&master_, &slave_, nullptr, nullptr, nullptr) != 0 ||
            ::ptsname_r(master_, name, sizeof name) != 0 || ::tcgetattr(slave_, &before_) != 0) {
            ADD_FAILURE() << "openpty: " << std::strerror(errno);
            return;
        }
        args.insert(args.begin(), GUESTVM_CLI);
        std::vector<char *> argv;
        for (std::string &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawnattr_t attr;
        ::posix_spawnattr_init(&attr);
        ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
        posix_spawn_file_actions_t actions;
        ::posix_spawn_file_actions_init(&actions);
        ::posix_spawn_file_actions_addclose(&actions, master_);
        ::posix_spawn_file_actions_addclose(&actions, slave_);
        // Opened after setsid: it becomes the controlling terminal.
        ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, name, O_RDWR, 0);
        ::posix_spawn_file_actions_adddup2(&actions, STDIN_FILENO, STDOUT_FILENO);
        ::posix_spawn_file_actions_adddup2(&actions, STDIN_FILENO, STDERR_FILENO);
        if (::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ) != 0) pid_ = -1;
        ::posix_spawn_file_actions_destroy(&actions);
        ::posix_spawnattr_destroy(&attr);
        EXPECT_GT(pid_, 0);
    }
    ~PtyCli() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (master_ >= 0) ::close(master_);
        if (slave_ >= 0) ::close(slave_);
    }

    /// Reads the terminal until `needle` has appeared or `seconds` passed.
    bool wait_for(const std::string &needle, double seconds) {
        const auto until = deadline(seconds);
        while (out.find(needle) == std::string::npos && std::chrono::steady_clock::now() < until) {
            drain(50);
        }
        return out.find(needle) != std::string::npos;
    }
    /// Waits for the uart_echo guest's first line, which must come with the terminal raw.
    ::testing::AssertionResult raw_when_ready() {
        if (!wait_for("uart_echo: ready", 30)) {
            return ::testing::AssertionFailure() << "the guest never got ready:\n" << out;
        }
        if (!is_raw(attributes())) return ::testing::AssertionFailure() << "not in raw mode";
        return ::testing::AssertionSuccess();
    }
    void type(std::string_view keys) {
        EXPECT_EQ(::write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
    }
    /// The wait status once the CLI has exited (reading the terminal meanwhile), or -1.
    int wait_exit(double seconds) {
        const auto until = deadline(seconds);
        while (std::chrono::steady_clock::now() < until) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                drain(0);
                return status;
            }
            drain(20);
        }
        return -1;
    }
    void signal(int signo) { ::kill(pid_, signo); }
    termios attributes() const {
        termios now{};
        EXPECT_EQ(::tcgetattr(slave_, &now), 0);
        return now;
    }
    const termios &before() const { return before_; }
    /// Whether `t` is the terminal as it was before the CLI started.
    bool restored(const termios &t) const {
        return t.c_iflag == before_.c_iflag && t.c_oflag == before_.c_oflag &&
               t.c_cflag == before_.c_cflag && t.c_lflag == before_.c_lflag &&
               t.c_cc[VMIN] == before_.c_cc[VMIN] && t.c_cc[VTIME] == before_.c_cc[VTIME];
    }

    std::string out;  // everything the CLI wrote to the terminal

  private:
    static std::chrono::steady_clock::time_point deadline(double seconds) {
        return std::chrono::steady_clock::now() +
               std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    }
    void drain(int timeout_ms) {
        pollfd p{master_, POLLIN, 0};
        while (::poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN) != 0) {
            char buf[4096];
            const ssize_t n = ::read(master_, buf, sizeof buf);
            if (n <= 0) return;
            out.append(buf, static_cast<std::size_t>(n));
            timeout_ms = 0;
        }
    }

    int master_ = -1, slave_ = -1;
    pid_t pid_ = -1;
    termios before_{};
};

// On a terminal: raw mode while the guest runs, so keys go to it as typed (Enter as '\r',
// Ctrl-A Ctrl-A as one Ctrl-A) and its output shows as it comes; Ctrl-A h prints the help;
// the terminal is itself again afterwards.
TEST(Cli, ATerminalIsARawConsoleWithEscapeKeys) {
    GUESTVM_REQUIRE_KVM(host);
    PtyCli cli({"run", "--irqchip", test::guest_path("uart_echo")});
    ASSERT_FALSE(is_raw(cli.before()));
    ASSERT_TRUE(cli.raw_when_ready());
    cli.type("\x01h");
    EXPECT_TRUE(cli.wait_for("Ctrl-A  send Ctrl-A to the guest", 10)) << cli.out;
    cli.type(
        "a\x01\x01"
        "b\r");
    const int status = cli.wait_exit(30);
    ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << cli.out;
    EXPECT_EQ(WEXITSTATUS(status), 0) << cli.out;
    EXPECT_NE(cli.out.find("echo: a\x01"
                           "b\r\n"),
              std::string::npos)
        << cli.out;
    EXPECT_NE(cli.out.find("VM stopped: power-off"), std::string::npos) << cli.out;
    EXPECT_TRUE(cli.restored(cli.attributes()));
}

// Ctrl-A x stops the VM at once: exit status 0 (not --timeout's 4), the stop says why, and
// the terminal is restored.
TEST(Cli, CtrlAXQuitsTheConsole) {
    GUESTVM_REQUIRE_KVM(host);
    PtyCli cli({"run", "--irqchip", "--timeout", "60", test::guest_path("uart_echo")});
    ASSERT_TRUE(cli.raw_when_ready());
    cli.type("typed but no Enter");
    cli.type("\x01x");
    const int status = cli.wait_exit(30);
    ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << cli.out;
    EXPECT_EQ(WEXITSTATUS(status), 0) << cli.out;
    EXPECT_NE(cli.out.find("VM stopped: requested (quit from the console (Ctrl-A x))"),
              std::string::npos)
        << cli.out;
    EXPECT_EQ(cli.out.find("\necho:"), std::string::npos) << cli.out;
    EXPECT_TRUE(cli.restored(cli.attributes()));
}

// A signal that ends the CLI still restores the terminal first, then takes its default course.
TEST(Cli, SignalsRestoreTheTerminal) {
    GUESTVM_REQUIRE_KVM(host);
    for (int signo : {SIGTERM, SIGINT, SIGHUP}) {
        SCOPED_TRACE(signo);
        PtyCli cli({"run", "--irqchip", test::guest_path("uart_echo")});
        ASSERT_TRUE(cli.raw_when_ready());
        cli.signal(signo);
        const int status = cli.wait_exit(30);
        ASSERT_TRUE(WIFSIGNALED(status)) << status << "\n" << cli.out;
        EXPECT_EQ(WTERMSIG(status), signo);
        EXPECT_TRUE(cli.restored(cli.attributes()));
    }
}

// With --json the document is the output: a terminal is neither read nor made raw.
TEST(Cli, JsonLeavesATerminalAlone) {
    GUESTVM_REQUIRE_KVM(host);
    PtyCli cli({"run", "--json", "--irqchip", "--timeout", "1", test::guest_path("uart_echo")});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cli.type("hello\n");
    const termios during = cli.attributes();
    const int status = cli.wait_exit(30);
    ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << cli.out;
    EXPECT_EQ(WEXITSTATUS(status), 4) << cli.out;  // the guest never got the line
    EXPECT_TRUE(cli.restored(during));
    EXPECT_EQ(cli.out.find("echo: hello"), std::string::npos) << cli.out;
}

}  // namespace
}  // namespace guestvm

namespace guestvm {
namespace {

// --sample-rip: a guest that spins in one small loop is found there; the samples land in both
// the text and the JSON report. A bad period is refused before anything runs.
TEST(Cli, SampleRipFindsWhereTheGuestSpins) {
    GUESTVM_REQUIRE_KVM(host);
    const std::string spin = test::guest_path("spin");
    RanMeasured r =
        run_cli_measured({"run", "--json", "--sample-rip", "2", "--timeout", "1", spin});
    ASSERT_EQ(r.status, 4) << r.out.substr(0, 4096);
    auto doc = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << r.out.substr(0, 4096);
    ASSERT_TRUE(doc.contains("rip_samples")) << r.out.substr(0, 4096);
    const std::uint64_t total = doc["rip_samples"]["total"];
    EXPECT_GT(total, 5u);  // ~1 s at one sample per 2 ms; a loaded CI host gives far fewer
    std::uint64_t in_loop = 0;
    for (const auto &s : doc["rip_samples"]["top"]) {
        const std::uint64_t rip = s["rip"];
        if (rip >= 0x100000 && rip < 0x101000) in_loop += s["samples"].get<std::uint64_t>();
    }
    EXPECT_EQ(in_loop, total) << "every sample is in the guest's one page of code";
    Ran text = run_cli(fmt::format("run --sample-rip 2 --timeout 0.5 {}", spin));
    EXPECT_NE(text.out.find("guest RIP samples:"), std::string::npos) << text.out;
    Ran bad = run_cli(fmt::format("run --sample-rip 0 {}", spin));
    EXPECT_NE(bad.status, 0);
}

}  // namespace
}  // namespace guestvm

// The test initramfs that scripts/fetch-linux.sh builds (.cache/linux/initramfs.cpio), checked
// without booting it: busybox and an /init that busybox's sh parses, and the kernel's virtio
// modules, each built for the kernel beside it (vermagic), with every module modules.dep names
// for it, in a load order that puts each module after its dependencies.
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "guestvm/loader.hpp"

namespace guestvm {
namespace {

const std::string kLinuxDir = GUESTVM_LINUX_DIR;
const std::string kFetchHint = " (scripts/fetch-linux.sh builds it)";

// What /init must be able to load: the virtio drivers guestvm's devices need and the root
// file system's driver (built into Debian's cloud kernel, then listed in modules.builtin).
const std::vector<std::string> kWanted{"virtio",     "virtio_ring",    "virtio_pci", "virtio_blk",
                                       "virtio_net", "virtio_console", "virtio-rng", "ext4"};

struct Entry {
    std::uint32_t mode = 0;
    std::string data;  // a symlink's target
};
using Archive = std::map<std::string, Entry>;

std::string text(std::span<const std::uint8_t> bytes) {
    return {reinterpret_cast<const char *>(bytes.data()), bytes.size()};
}

// Reads a cpio "newc" archive (what the kernel unpacks): a 110-byte ASCII header, the name,
// the data, each padded to 4 bytes, up to "TRAILER!!!". Any fault is a test failure.
Archive read_newc(const std::string &bytes) {
    Archive out;
    std::size_t at = 0;
    auto pad = [](std::size_t n) { return (n + 3) & ~std::size_t{3}; };
    auto field = [&](std::size_t i) {
        return static_cast<std::uint32_t>(std::stoul(bytes.substr(at + 6 + i * 8, 8), nullptr, 16));
    };
    while (true) {
        if (at + 110 > bytes.size() || bytes.compare(at, 6, "070701") != 0) {
            ADD_FAILURE() << "no newc header at offset " << at;
            return out;
        }
        const std::uint32_t mode = field(1), filesize = field(6), namesize = field(11);
        const std::size_t name_at = at + 110, data_at = pad(name_at + namesize);
        if (namesize == 0 || data_at + filesize > bytes.size()) {
            ADD_FAILURE() << "entry at offset " << at << " runs past the archive's end";
            return out;
        }
        std::string name = bytes.substr(name_at, namesize - 1);
        if (name == "TRAILER!!!") return out;
        EXPECT_FALSE(out.contains(name)) << name << " is in the archive twice";
        out[name] = {mode, bytes.substr(data_at, filesize)};
        at = pad(data_at + filesize);
    }
}

std::string read_text(const std::string &path) {
    auto bytes = read_file(path);
    EXPECT_TRUE(bytes) << (bytes ? "" : bytes.error().message()) << kFetchHint;
    return bytes ? text(*bytes) : std::string{};
}

// The kernel's release ("6.1.0-56-cloud-amd64") from its bzImage: the setup header's
// kernel_version field points (from offset 0x200) at "release (builder) #1 ...".
std::string kernel_release(const std::string &bz) {
    if (bz.size() < 0x210) return {};
    std::uint16_t ptr;
    std::memcpy(&ptr, bz.data() + 0x20e, 2);
    const std::size_t at = 0x200 + std::size_t{ptr};
    if (ptr == 0 || at >= bz.size()) return {};
    return bz.substr(at, bz.find_first_of(std::string(" \0", 2), at) - at);
}

// The key=value strings of an ELF64 module's .modinfo section.
std::multimap<std::string, std::string> modinfo(const std::string &ko) {
    std::multimap<std::string, std::string> out;
    Elf64_Ehdr eh;
    if (ko.size() < sizeof eh || ko.compare(0, 4, ELFMAG) != 0 || ko[EI_CLASS] != ELFCLASS64) {
        return out;
    }
    std::memcpy(&eh, ko.data(), sizeof eh);
    auto section = [&](std::size_t i) {
        Elf64_Shdr sh{};
        const std::uint64_t at = eh.e_shoff + i * std::uint64_t{sizeof sh};
        if (eh.e_shentsize == sizeof sh && at + sizeof sh <= ko.size()) {
            std::memcpy(&sh, ko.data() + at, sizeof sh);
        }
        return sh;
    };
    auto bytes_of = [&](const Elf64_Shdr &sh) {
        if (sh.sh_offset > ko.size() || sh.sh_size > ko.size() - sh.sh_offset) return std::string{};
        return ko.substr(sh.sh_offset, sh.sh_size);
    };
    const std::string names = bytes_of(section(eh.e_shstrndx));
    for (std::size_t i = 0; i < eh.e_shnum; ++i) {
        const Elf64_Shdr sh = section(i);
        if (sh.sh_name >= names.size() ||
            std::strcmp(names.c_str() + sh.sh_name, ".modinfo") != 0) {
            continue;
        }
        std::istringstream strings(bytes_of(sh));
        for (std::string s; std::getline(strings, s, '\0');) {
            if (auto eq = s.find('='); eq != std::string::npos) {
                out.emplace(s.substr(0, eq), s.substr(eq + 1));
            }
        }
    }
    return out;
}

std::string one(const std::multimap<std::string, std::string> &info, const std::string &key) {
    auto it = info.find(key);
    return it == info.end() ? std::string{} : it->second;
}

// "kernel/drivers/char/hw_random/virtio-rng.ko" -> "virtio_rng" (the kernel's module name).
std::string module_name(const std::string &path) {
    std::string name = path.substr(path.rfind('/') + 1);
    name = name.substr(0, name.find(".ko"));
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

std::vector<std::string> words(const std::string &s, char sep = ' ') {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string w; std::getline(in, w, sep);) {
        if (!w.empty()) out.push_back(w);
    }
    return out;
}

// The initramfs and what its kernel says about itself.
struct Initramfs {
    Archive files;
    std::string release;
    std::string moddir;  // "lib/modules/<release>/"

    static Initramfs load() {
        Initramfs out;
        out.files = read_newc(read_text(kLinuxDir + "/initramfs.cpio"));
        out.release = kernel_release(read_text(kLinuxDir + "/vmlinuz"));
        EXPECT_FALSE(out.release.empty()) << "no kernel_version string in vmlinuz";
        out.moddir = "lib/modules/" + out.release + "/";
        return out;
    }
    const Entry *find(const std::string &name) const {
        auto it = files.find(name);
        return it == files.end() ? nullptr : &it->second;
    }
    // modules.dep: each module's path and the paths of all it depends on.
    std::map<std::string, std::vector<std::string>> modules_dep() const {
        std::map<std::string, std::vector<std::string>> dep;
        const Entry *file = find(moddir + "modules.dep");
        EXPECT_NE(file, nullptr) << moddir << "modules.dep is missing";
        for (const auto &line : words(file ? file->data : "", '\n')) {
            const auto colon = line.find(':');
            EXPECT_NE(colon, std::string::npos) << line;
            if (colon != std::string::npos)
                dep[line.substr(0, colon)] = words(line.substr(colon + 1));
        }
        return dep;
    }
};

// Runs argv, returning its exit status (-1 if it could not run or was killed); `quiet` sends
// its standard error to /dev/null.
int run(const std::vector<std::string> &argv, bool quiet = false) {
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (quiet) ::freopen("/dev/null", "w", stderr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

void write(const std::filesystem::path &path, const std::string &bytes, mode_t mode) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    ::chmod(path.c_str(), mode);
}

TEST(Initramfs, HoldsBusyboxAndAnInitItsShellAccepts) {
    const Initramfs fs = Initramfs::load();
    const Entry *init = fs.find("init"), *busybox = fs.find("bin/busybox"), *sh = fs.find("bin/sh");
    ASSERT_TRUE(init && busybox && sh) << "init, bin/busybox or bin/sh is missing" << kFetchHint;
    EXPECT_TRUE(S_ISREG(init->mode) && (init->mode & 0111) == 0111) << std::oct << init->mode;
    EXPECT_TRUE(init->data.starts_with("#!/bin/busybox sh\n"));
    EXPECT_TRUE(S_ISREG(busybox->mode) && (busybox->mode & 0111) == 0111);
    EXPECT_TRUE(busybox->data.starts_with(ELFMAG));
    EXPECT_TRUE(S_ISLNK(sh->mode));
    EXPECT_EQ(sh->data, "busybox");
    for (const char *dir : {"proc", "sys", "dev"}) {
        const Entry *d = fs.find(dir);
        EXPECT_TRUE(d && S_ISDIR(d->mode)) << dir << " (a mount point /init needs)";
    }

    // The initramfs's own busybox parses /init, and tells a broken script from it.
    const auto dir =
        std::filesystem::path(::testing::TempDir()) / ("initramfs_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    write(dir / "busybox", busybox->data, 0755);
    write(dir / "init", init->data, 0644);
    write(dir / "broken", init->data + "\nif then fi\n", 0644);
    const std::string bb = (dir / "busybox").string();
    EXPECT_EQ(run({bb, "sh", "-n", (dir / "init").string()}), 0) << "busybox sh -n init";
    EXPECT_NE(run({bb, "sh", "-n", (dir / "broken").string()}, true), 0)
        << "sh -n took a broken script";
    std::filesystem::remove_all(dir);
}

TEST(Initramfs, EveryModuleIsBuiltForTheKernelBesideIt) {
    const Initramfs fs = Initramfs::load();
    ASSERT_FALSE(fs.release.empty());
    EXPECT_NE(read_text(kLinuxDir + "/VERSION").find("linux-image-" + fs.release + " "),
              std::string::npos)
        << "VERSION names another kernel package than vmlinuz's " << fs.release;
    int modules = 0;
    for (const auto &[name, entry] : fs.files) {
        if (name.find(".ko") == std::string::npos) continue;
        ++modules;
        EXPECT_TRUE(name.starts_with(fs.moddir + "kernel/")) << name << " is outside " << fs.moddir;
        // Debian 12 ships modules uncompressed; busybox's insmod loads them as they are.
        ASSERT_TRUE(name.ends_with(".ko")) << name << ": compressed, not read by this test";
        const auto info = modinfo(entry.data);
        const auto vermagic = words(one(info, "vermagic"));
        ASSERT_FALSE(vermagic.empty()) << name << " has no vermagic in .modinfo";
        EXPECT_EQ(vermagic.front(), fs.release) << name;
        EXPECT_EQ(one(info, "name"), module_name(name)) << name;
    }
    EXPECT_GE(modules, 1) << "no modules in the initramfs" << kFetchHint;
}

TEST(Initramfs, EveryWantedModuleComesWithItsDependenciesInLoadOrder) {
    const Initramfs fs = Initramfs::load();
    ASSERT_FALSE(fs.release.empty());
    const auto dep = fs.modules_dep();
    const Entry *builtin = fs.find(fs.moddir + "modules.builtin");
    ASSERT_NE(builtin, nullptr) << "modules.builtin is missing";
    std::set<std::string> builtin_names, dep_names;
    for (const auto &line : words(builtin->data, '\n')) builtin_names.insert(module_name(line));
    for (const auto &[path, deps] : dep) dep_names.insert(module_name(path));
    for (std::string want : kWanted) {
        want = module_name(want);
        EXPECT_TRUE(dep_names.contains(want) != builtin_names.contains(want))
            << want << ": wanted either as a module or built in (exactly one)";
    }
    for (const auto &[path, deps] : dep) {
        const Entry *ko = fs.find(fs.moddir + path);
        ASSERT_NE(ko, nullptr) << path << " is in modules.dep but not in the initramfs";
        std::set<std::string> closure;
        for (const auto &d : deps) {
            EXPECT_TRUE(dep.contains(d)) << path << " needs " << d << ", which has no line";
            EXPECT_NE(fs.find(fs.moddir + d), nullptr) << path << " needs " << d;
            closure.insert(module_name(d));
        }
        // The module's own record of what it links against (modpost's depends=) agrees.
        for (const auto &d : words(one(modinfo(ko->data), "depends"), ',')) {
            EXPECT_TRUE(closure.contains(module_name(d))) << path << " depends on " << d;
        }
    }
    // load-order: each module in modules.dep once, after everything it depends on.
    const Entry *order = fs.find(fs.moddir + "load-order");
    ASSERT_NE(order, nullptr) << "load-order is missing";
    std::set<std::string> loaded;
    for (const auto &path : words(order->data, '\n')) {
        ASSERT_TRUE(dep.contains(path)) << path << " is in load-order, not in modules.dep";
        for (const auto &d : dep.at(path)) {
            EXPECT_TRUE(loaded.contains(d)) << path << " is loaded before " << d;
        }
        EXPECT_TRUE(loaded.insert(path).second) << path << " is loaded twice";
    }
    EXPECT_EQ(loaded.size(), dep.size()) << "load-order leaves out modules of modules.dep";
}

}  // namespace
}  // namespace guestvm

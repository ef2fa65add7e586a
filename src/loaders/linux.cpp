// Linux kernels: the bzImage setup header, PVH boot (hvm_start_info) and the x86 boot
// protocol's 64-bit entry (boot_params).
#include <fmt/format.h>

#include <algorithm>

#include "loaders/acpi.hpp"
#include "loaders/loader_util.hpp"

namespace guestvm {

namespace {

using loaders::malformed;
using loaders::put_le;
using loaders::read_le;

constexpr std::string_view kBzKind = "bzImage";
constexpr std::string_view kKernelKind = "Linux kernel";
constexpr std::uint64_t k4GiB = 1ull << 32;

// Setup-header fields (offsets in the image and in boot_params alike).
constexpr std::uint64_t kSetupSects = 0x1f1, kSyssize = 0x1f4, kBootFlag = 0x1fe, kJump = 0x200,
                        kMagic = 0x202, kVersion = 0x206, kTypeOfLoader = 0x210, kLoadflags = 0x211,
                        kCode32Start = 0x214, kRamdiskImage = 0x218, kRamdiskSize = 0x21c,
                        kCmdLinePtr = 0x228, kInitrdAddrMax = 0x22c, kKernelAlignment = 0x230,
                        kRelocatable = 0x234, kXloadflags = 0x236, kCmdlineSize = 0x238,
                        kPayloadOffset = 0x248, kPayloadLength = 0x24c, kPrefAddress = 0x258,
                        kInitSize = 0x260;
// boot_params fields outside the setup header.
constexpr std::uint64_t kAcpiRsdpAddr = 0x070, kExtRamdiskImage = 0x0c0, kExtRamdiskSize = 0x0c4,
                        kExtCmdLinePtr = 0x0c8, kE820Entries = 0x1e8, kE820Table = 0x2d0;
constexpr std::size_t kE820Max = 128, kE820EntrySize = 20;
constexpr std::uint8_t kLoadedHigh = 0x01, kCanUseHeap = 0x80;
constexpr std::uint16_t kXlfKernel64 = 0x01;
constexpr std::uint64_t kRealModeMax = 32 << 10;  // boot sector + setup code

// Where a setup header of protocol `version` must reach at least: past the last field the
// loaders read that the version has (2.00 loadflags, 2.03 initrd_addr_max, 2.05 alignment and
// relocatable_kernel, 2.06 cmdline_size, 2.08 payload, 2.10 pref_address and init_size).
constexpr std::uint64_t header_end_for(std::uint16_t version) {
    if (version >= 0x20a) return kInitSize + 4;
    if (version >= 0x208) return kPayloadLength + 4;
    if (version >= 0x206) return kCmdlineSize + 4;
    if (version >= 0x205) return kRelocatable + 1;
    if (version >= 0x203) return kInitrdAddrMax + 4;
    return kLoadflags + 1;
}
constexpr std::uint16_t kProtocolAcpiRsdp = 0x20e;  // boot_params.acpi_rsdp_addr: 2.14 on

// hvm_start_info and friends (Xen's public start_info.h, version 1).
constexpr std::uint32_t kHvmStartMagic = 0x336ec578;
constexpr std::size_t kStartInfoSize = 56, kModlistEntrySize = 32, kMemmapEntrySize = 24;

// Boot-data layout at kLinuxBootDataAddr.
constexpr std::uint64_t kModlistOffset = 0x40, kMemmapOffset = 0x80, kCmdlineOffset = 0x1000,
                        kBootDataSize = 0x2000;
constexpr std::size_t kMemmapMax = (kCmdlineOffset - kMemmapOffset) / kMemmapEntrySize;
constexpr std::size_t kCmdlineRoom = kBootDataSize - kCmdlineOffset;  // NUL included

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Status check_cmdline(const std::string &cmdline, std::size_t limit, std::string_view kind) {
    if (cmdline.find('\0') != std::string::npos) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("{}: the command line contains a NUL byte", kind));
    }
    if (cmdline.size() > limit) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("{}: the command line is {} bytes; the kernel takes at most {}", kind,
                        cmdline.size(), limit));
    }
    return {};
}

// Puts the initrd as high as it fits below `limit`, above everything loaded so far.
Result<std::uint64_t> place_initrd(LoadPlan &plan, const LinuxBootOptions &options,
                                   std::span<const RamRange> ram, std::uint64_t limit,
                                   std::string_view kind) {
    std::uint64_t floor = 0;
    for (const auto &p : plan.pieces) floor = std::max(floor, p.gpa + p.memsz);
    auto at = loaders::place_high(ram, options.initrd.size(), floor, limit);
    if (!at) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("{}: an initrd of {:#x} bytes does not fit in guest RAM "
                                      "between the kernel's end {:#x} and {:#x}",
                                      kind, options.initrd.size(), floor, limit));
    }
    plan.pieces.push_back({"initrd", *at, options.initrd.size(), options.initrd});
    return *at;
}

// The initrd (if any) as high as it fits below `limit`, and the PC memory map of `ram` (at most
// `max_entries`): what both Linux boot paths hand the kernel.
Result<std::optional<std::uint64_t>> place_initrd_and_map(
    LoadPlan &plan, const LinuxBootOptions &options, std::span<const RamRange> ram,
    std::uint64_t limit, std::size_t max_entries, std::string_view kind) {
    std::optional<std::uint64_t> initrd_at;
    if (!options.initrd.empty()) {
        GUESTVM_TRY_ASSIGN(at, place_initrd(plan, options, ram, limit, kind));
        initrd_at = at;
    }
    plan.memory_map = loaders::pc_memory_map(ram);
    if (plan.memory_map.size() > max_entries) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("{}: guest RAM has too many ranges", kind));
    }
    return initrd_at;
}

// The ACPI tables, when the options ask for them: their RSDP's address, or 0.
Result<std::uint64_t> add_acpi(LoadPlan &plan, const LinuxBootOptions &options) {
    if (options.acpi.vcpus == 0) return 0;
    return acpi::add_tables(plan, options.acpi);
}

// Writes the memory map as e820-style entries (addr, size, type) every `stride` bytes from
// `offset`, then the command line at kCmdlineOffset.
void write_map_and_cmdline(std::vector<std::uint8_t> &d, const LoadPlan &plan, std::size_t offset,
                           std::size_t stride, const std::string &cmdline) {
    for (std::size_t i = 0; i < plan.memory_map.size(); ++i) {
        const auto &e = plan.memory_map[i];
        const std::size_t at = offset + i * stride;
        put_le<std::uint64_t>(d, at, e.addr);
        put_le<std::uint64_t>(d, at + 8, e.size);
        put_le<std::uint32_t>(d, at + 16, e.type);
    }
    std::copy(cmdline.begin(), cmdline.end(), d.begin() + kCmdlineOffset);
}

}  // namespace

bool looks_like_bzimage(std::span<const std::uint8_t> image) noexcept {
    auto flag = read_le<std::uint16_t>(image, kBootFlag);
    auto magic = read_le<std::uint32_t>(image, kMagic);
    return flag && magic && *flag == 0xaa55 && *magic == 0x53726448;  // "HdrS"
}

Result<BzImageHeader> parse_bzimage(std::span<const std::uint8_t> image) {
    if (image.size() < kVersion + 2) {
        return malformed(kBzKind,
                         fmt::format("{} bytes is too short for a setup header", image.size()));
    }
    if (!looks_like_bzimage(image)) {
        return malformed(kBzKind, "no boot sector signature 0xaa55 and \"HdrS\" magic");
    }
    BzImageHeader h;
    h.version = *read_le<std::uint16_t>(image, kVersion);
    h.setup_sects = image[kSetupSects] == 0 ? 4 : image[kSetupSects];
    h.setup_bytes = (std::uint64_t{h.setup_sects} + 1) * 512;
    if (h.setup_bytes > kRealModeMax) {
        return malformed(kBzKind,
                         fmt::format("{} setup sectors make {:#x} bytes of real-mode code; "
                                     "the protocol allows at most {:#x}",
                                     h.setup_sects, h.setup_bytes, kRealModeMax));
    }
    if (h.setup_bytes >= image.size()) {
        return malformed(kBzKind, fmt::format("{} setup sectors leave no kernel in {} bytes",
                                              h.setup_sects, image.size()));
    }
    // The jump at 0x200 gives the header's length (a signed offset from 0x202); it must hold
    // every field the loaders read that its version has.
    const std::uint64_t header_end = kMagic + static_cast<std::int8_t>(image[kJump + 1]);
    const std::uint64_t needed = header_end_for(h.version);
    if (image[kJump] != 0xeb || header_end < needed || header_end > h.setup_bytes) {
        return malformed(kBzKind,
                         fmt::format("the setup header's length (its jump) is "
                                     "inconsistent: it ends at {:#x}, protocol {}.{:02} "
                                     "needs {:#x}",
                                     header_end, h.version >> 8, h.version & 0xff, needed));
    }
    h.header = image.subspan(kSetupSects, header_end - kSetupSects);  // header_end < size
    h.protected_mode = image.subspan(h.setup_bytes);
    h.loadflags = image[kLoadflags];
    if ((h.loadflags & kLoadedHigh) == 0) {
        return malformed(kBzKind, "not a bzImage (LOADED_HIGH is clear: a zImage)");
    }
    // Fields a version does not have take the values the protocol gives older kernels.
    auto field = [&]<typename T>(std::uint64_t offset, std::uint16_t since, T otherwise) -> T {
        return h.version >= since ? *read_le<T>(image, offset) : otherwise;
    };
    // syssize (2.04+) counts the protected-mode code in 16-byte paragraphs: a file with fewer
    // is cut short.
    const std::uint64_t syssize = field(kSyssize, 0x204, std::uint32_t{0});
    if (syssize > (h.protected_mode.size() + 15) / 16) {
        return malformed(kBzKind, fmt::format("the kernel is truncated: syssize says {:#x} bytes "
                                              "of protected-mode code, the file holds {:#x}",
                                              syssize * 16, h.protected_mode.size()));
    }
    h.initrd_addr_max = field(kInitrdAddrMax, 0x203, std::uint32_t{0x37ffffff});
    h.kernel_alignment = field(kKernelAlignment, 0x205, std::uint32_t{0});
    h.relocatable = field(kRelocatable, 0x205, std::uint8_t{0}) != 0;
    h.cmdline_size = field(kCmdlineSize, 0x206, std::uint32_t{255});
    h.xloadflags = field(kXloadflags, 0x20c, std::uint16_t{0});
    h.pref_address = field(kPrefAddress, 0x20a, std::uint64_t{0x100000});
    h.init_size = field(kInitSize, 0x20a, std::uint32_t{0});
    // The payload (2.08+, for PVH's host-side decompression) is optional: a length of 0 says
    // there is none. One that is stated must lie inside the kernel.
    const std::uint64_t offset = field(kPayloadOffset, 0x208, std::uint32_t{0});
    const std::uint64_t length = field(kPayloadLength, 0x208, std::uint32_t{0});
    if (length != 0) {
        if (offset > h.protected_mode.size() || length > h.protected_mode.size() - offset) {
            return malformed(kBzKind, fmt::format("payload [{:#x}, +{:#x}) is outside the "
                                                  "{:#x}-byte kernel",
                                                  offset, length, h.protected_mode.size()));
        }
        h.payload = h.protected_mode.subspan(offset, length);
    }
    if (h.relocatable &&
        (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1)) != 0)) {
        return malformed(kBzKind, fmt::format("kernel_alignment {:#x} is not a power of two",
                                              h.kernel_alignment));
    }
    return h;
}

Result<LoadPlan> plan_linux_pvh(std::span<const std::uint8_t> kernel,
                                const LinuxBootOptions &options, std::span<const RamRange> ram) {
    LoadPlan plan;
    plan.format = "linux-pvh";
    std::span<const std::uint8_t> vmlinux = kernel;
    if (looks_like_bzimage(kernel)) {
        GUESTVM_TRY_ASSIGN(header, parse_bzimage(kernel));
        if (header.payload.empty()) {
            return malformed(
                kBzKind,
                fmt::format("no payload to decompress for PVH ({}): boot it with --boot bzimage",
                            header.version < 0x208 ? "boot protocol older than 2.08"
                                                   : "payload_length is 0"));
        }
        // The vmlinux must fit in guest RAM: never decode (or allocate) more than it holds.
        const std::uint64_t ram_bytes = ram_total(ram);
        auto unpacked =
            decompress_kernel(header.payload, std::min(options.max_kernel_bytes, ram_bytes));
        if (!unpacked) {
            Error e = std::move(unpacked).error();
            if (ram_bytes >= options.max_kernel_bytes) return std::unexpected(std::move(e));
            return std::unexpected(std::move(e).context(
                fmt::format("bzImage for {:#x} bytes of guest RAM", ram_bytes)));
        }
        auto owned = std::make_shared<const std::vector<std::uint8_t>>(std::move(*unpacked));
        vmlinux = *owned;
        plan.owned.push_back(std::move(owned));
    }
    GUESTVM_TRY_ASSIGN(elf, loaders::read_elf(vmlinux, kKernelKind));
    if (!elf.pvh_entry) {
        return malformed(kKernelKind,
                         "no XEN_ELFNOTE_PHYS32_ENTRY note: the kernel was built "
                         "without CONFIG_PVH (boot it with --boot bzimage)");
    }
    GUESTVM_TRY(check_cmdline(options.cmdline, kCmdlineRoom - 1, kKernelKind));
    loaders::add_segments(plan, elf, vmlinux);
    const std::uint64_t entry = *elf.pvh_entry;
    if (entry >= k4GiB || std::none_of(plan.pieces.begin(), plan.pieces.end(), [&](auto &p) {
            return entry >= p.gpa && entry - p.gpa < p.bytes.size();
        })) {
        return malformed(
            kKernelKind,
            fmt::format("PVH entry {:#x} is not inside a loaded segment below 4 GiB", entry));
    }
    GUESTVM_TRY_ASSIGN(initrd_at,
                       place_initrd_and_map(plan, options, ram, k4GiB, kMemmapMax, kKernelKind));
    GUESTVM_TRY_ASSIGN(rsdp, add_acpi(plan, options));

    auto data = std::make_shared<std::vector<std::uint8_t>>(kBootDataSize, 0);
    std::vector<std::uint8_t> &d = *data;
    const std::uint64_t base = kLinuxBootDataAddr;
    put_le<std::uint32_t>(d, 0, kHvmStartMagic);
    put_le<std::uint32_t>(d, 4, 1);  // version
    put_le<std::uint32_t>(d, 12, initrd_at ? 1 : 0);
    put_le<std::uint64_t>(d, 16, initrd_at ? base + kModlistOffset : 0);
    put_le<std::uint64_t>(d, 24, base + kCmdlineOffset);
    put_le<std::uint64_t>(d, 32, rsdp);  // rsdp_paddr (0: no ACPI tables)
    put_le<std::uint64_t>(d, 40, base + kMemmapOffset);
    put_le<std::uint32_t>(d, 48, static_cast<std::uint32_t>(plan.memory_map.size()));
    if (initrd_at) {
        put_le<std::uint64_t>(d, kModlistOffset, *initrd_at);
        put_le<std::uint64_t>(d, kModlistOffset + 8, options.initrd.size());
    }
    write_map_and_cmdline(d, plan, kMemmapOffset, kMemmapEntrySize, options.cmdline);
    static_assert(kStartInfoSize <= kModlistOffset &&
                  kModlistEntrySize <= kMemmapOffset - kModlistOffset);
    plan.pieces.push_back({"boot data (hvm_start_info)", base, kBootDataSize, d});
    plan.owned.push_back(std::move(data));
    GUESTVM_TRY(loaders::check_placement(plan, ram, kBootAreaEnd, kKernelKind));

    plan.entry.mode = BootMode::kProtected32;
    plan.entry.rip = entry;
    plan.entry.rbx = base;
    return plan;
}

Result<LoadPlan> plan_linux_bzimage(std::span<const std::uint8_t> kernel,
                                    const LinuxBootOptions &options,
                                    std::span<const RamRange> ram) {
    GUESTVM_TRY_ASSIGN(h, parse_bzimage(kernel));
    if (h.version < 0x20c || (h.xloadflags & kXlfKernel64) == 0) {
        return malformed(kBzKind, fmt::format("protocol {}.{:02}, xloadflags {:#x}: no 64-bit "
                                              "entry (needs 2.12 and XLF_KERNEL_64)",
                                              h.version >> 8, h.version & 0xff, h.xloadflags));
    }
    const std::size_t cmdline_max = std::min<std::uint64_t>(h.cmdline_size, kCmdlineRoom - 1);
    GUESTVM_TRY(check_cmdline(options.cmdline, cmdline_max, kBzKind));
    LoadPlan plan;
    plan.format = "linux-bzimage";

    // The kernel needs init_size bytes from where it is loaded: pref_address when that is RAM,
    // else (relocatable) the lowest kernel_alignment-aligned place above 1 MiB that is.
    const std::uint64_t need = std::max<std::uint64_t>(h.init_size, h.protected_mode.size());
    std::optional<std::uint64_t> load;
    if (h.pref_address >= kBootAreaEnd + kBootDataSize &&
        loaders::ram_holding(ram, h.pref_address, need) != nullptr) {
        load = h.pref_address;
    } else if (h.relocatable) {
        for (const RamRange &r : ram) {
            std::uint64_t at =
                align_up(std::max<std::uint64_t>(r.base, 1u << 20), h.kernel_alignment);
            if (at >= r.base && at < r.end() && r.end() - at >= need && (!load || at < *load)) {
                load = at;
            }
        }
    }
    if (!load) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("bzImage: needs {:#x} bytes of RAM at {:#x}{}", need, h.pref_address,
                        h.relocatable ? " or any aligned place" : ""));
    }
    plan.pieces.push_back({"kernel", *load, need, h.protected_mode});
    const std::uint64_t initrd_limit =
        std::min<std::uint64_t>(std::uint64_t{h.initrd_addr_max} + 1, k4GiB);
    GUESTVM_TRY_ASSIGN(initrd_at,
                       place_initrd_and_map(plan, options, ram, initrd_limit, kE820Max, kBzKind));
    GUESTVM_TRY_ASSIGN(rsdp, add_acpi(plan, options));

    // The zero page: the setup header as the kernel has it, then what the loader fills in.
    auto data = std::make_shared<std::vector<std::uint8_t>>(kBootDataSize, 0);
    std::vector<std::uint8_t> &d = *data;
    const std::uint64_t base = kLinuxBootDataAddr;
    std::copy(h.header.begin(), h.header.end(), d.begin() + kSetupSects);
    d[kTypeOfLoader] = 0xff;  // undefined boot loader
    d[kLoadflags] = static_cast<std::uint8_t>((h.loadflags | kLoadedHigh) & ~kCanUseHeap);
    put_le<std::uint32_t>(d, kCode32Start, static_cast<std::uint32_t>(*load));
    put_le<std::uint32_t>(d, kCmdLinePtr, static_cast<std::uint32_t>(base + kCmdlineOffset));
    put_le<std::uint32_t>(d, kExtCmdLinePtr, 0);
    if (initrd_at) {
        put_le<std::uint32_t>(d, kRamdiskImage, static_cast<std::uint32_t>(*initrd_at));
        put_le<std::uint32_t>(d, kRamdiskSize, static_cast<std::uint32_t>(options.initrd.size()));
        put_le<std::uint32_t>(d, kExtRamdiskImage, static_cast<std::uint32_t>(*initrd_at >> 32));
        put_le<std::uint32_t>(d, kExtRamdiskSize,
                              static_cast<std::uint32_t>(options.initrd.size() >> 32));
    } else {
        put_le<std::uint32_t>(d, kRamdiskImage, 0);
        put_le<std::uint32_t>(d, kRamdiskSize, 0);
    }
    // Older kernels do not read acpi_rsdp_addr; they find the RSDP by the BIOS-area scan.
    if (h.version >= kProtocolAcpiRsdp) put_le<std::uint64_t>(d, kAcpiRsdpAddr, rsdp);
    d[kE820Entries] = static_cast<std::uint8_t>(plan.memory_map.size());
    write_map_and_cmdline(d, plan, kE820Table, kE820EntrySize, options.cmdline);
    plan.pieces.push_back({"boot data (zero page)", base, kBootDataSize, d});
    plan.owned.push_back(std::move(data));
    GUESTVM_TRY(loaders::check_placement(plan, ram, kBootAreaEnd, kBzKind));

    plan.entry.mode = BootMode::kLong64;
    plan.entry.rip = *load + 0x200;
    plan.entry.rsi = base;
    plan.entry.linux_selectors = true;
    return plan;
}

}  // namespace guestvm

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "guestvm/loader.hpp"
#include "guestvm/vspace.hpp"
#include "kvm/unique_fd.hpp"

namespace guestvm {

namespace {

std::unexpected<Error> malformed(std::string what) {
    return make_error(Errc::kMalformedImage, "ELF image: " + std::move(what));
}

struct Load {
    std::uint64_t offset, paddr, vaddr, filesz, memsz;
    bool exec;
};

}  // namespace

Result<LoadedImage> load_elf64(GuestVSpace &memory, std::span<const std::uint8_t> image,
                               std::uint64_t reserved_below) {
    if (image.size() < sizeof(Elf64_Ehdr)) {
        return malformed(fmt::format("{} bytes is shorter than an ELF header", image.size()));
    }
    Elf64_Ehdr eh;
    std::memcpy(&eh, image.data(), sizeof(eh));
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return malformed("no ELF magic");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) return malformed("not ELF64 (ELFCLASS64)");
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return malformed("not little-endian");
    if (eh.e_ident[EI_VERSION] != EV_CURRENT) return malformed("unknown ELF version");
    if (eh.e_type != ET_EXEC) return malformed(fmt::format("e_type {} is not ET_EXEC", eh.e_type));
    if (eh.e_machine != EM_X86_64) {
        return malformed(fmt::format("e_machine {} is not x86-64", eh.e_machine));
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr)) {
        return malformed(
            fmt::format("e_phentsize {} is not {}", eh.e_phentsize, sizeof(Elf64_Phdr)));
    }
    if (eh.e_phnum == 0) return malformed("no program headers");
    if (eh.e_phoff > image.size() ||
        std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr) > image.size() - eh.e_phoff) {
        return malformed("program headers run past the end of the file");
    }
    const std::uint64_t ram = memory.ram_bytes();
    std::vector<Load> loads;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
        if (ph.p_type != PT_LOAD) continue;
        if (ph.p_filesz > ph.p_memsz) {
            return malformed(fmt::format("segment {}: p_filesz {:#x} > p_memsz {:#x}", i,
                                         ph.p_filesz, ph.p_memsz));
        }
        if (ph.p_offset > image.size() || ph.p_filesz > image.size() - ph.p_offset) {
            return malformed(fmt::format("segment {}: file range [{:#x}, +{:#x}) past end ({:#x})",
                                         i, ph.p_offset, ph.p_filesz, image.size()));
        }
        if (ph.p_memsz > ram) {
            return malformed(fmt::format("segment {}: {:#x} bytes is more than guest RAM ({:#x})",
                                         i, ph.p_memsz, ram));
        }
        if (ph.p_memsz == 0) continue;
        if (ph.p_paddr + ph.p_memsz < ph.p_paddr || ph.p_vaddr + ph.p_memsz < ph.p_vaddr) {
            return malformed(fmt::format("segment {}: address range wraps", i));
        }
        if (ph.p_paddr < reserved_below) {
            return malformed(
                fmt::format("segment {}: [{:#x}, +{:#x}) overlaps the VMM's boot area "
                            "[0, {:#x})",
                            i, ph.p_paddr, ph.p_memsz, reserved_below));
        }
        if (!memory.find(GuestPhysAddr(ph.p_paddr), ph.p_memsz)) {
            return malformed(fmt::format("segment {}: [{:#x}, +{:#x}) is not inside guest RAM", i,
                                         ph.p_paddr, ph.p_memsz));
        }
        loads.push_back({ph.p_offset, ph.p_paddr, ph.p_vaddr, ph.p_filesz, ph.p_memsz,
                         (ph.p_flags & PF_X) != 0});
    }
    if (loads.empty()) return malformed("no loadable segment");
    std::sort(loads.begin(), loads.end(),
              [](const Load &a, const Load &b) { return a.paddr < b.paddr; });
    for (std::size_t i = 1; i < loads.size(); ++i) {
        if (loads[i].paddr < loads[i - 1].paddr + loads[i - 1].memsz) {
            return malformed(fmt::format("segments at {:#x} and {:#x} overlap", loads[i - 1].paddr,
                                         loads[i].paddr));
        }
    }
    // The guest starts with identity paging, so the entry must be a virtual address inside an
    // executable segment; it runs at that segment's physical counterpart.
    auto entry_seg = std::find_if(loads.begin(), loads.end(), [&](const Load &l) {
        return l.exec && eh.e_entry >= l.vaddr && eh.e_entry - l.vaddr < l.memsz;
    });
    if (entry_seg == loads.end()) {
        return malformed(
            fmt::format("entry {:#x} is not inside an executable segment", eh.e_entry));
    }
    LoadedImage out;
    out.entry = entry_seg->paddr + (eh.e_entry - entry_seg->vaddr);
    for (const Load &l : loads) {
        GUESTVM_TRY_ASSIGN(host, memory.translate(GuestPhysAddr(l.paddr), l.memsz));
        std::memcpy(host, image.data() + l.offset, l.filesz);
        // Fresh guest RAM is already zero; only clear BSS bytes that are not, so an untouched
        // BSS costs no host memory.
        std::uint8_t *bss = host + l.filesz;
        std::uint64_t n = l.memsz - l.filesz;
        for (std::uint64_t off = 0; off < n;) {
            std::uint64_t chunk = std::min<std::uint64_t>(
                4096 - ((reinterpret_cast<std::uintptr_t>(bss + off)) & 4095), n - off);
            if (std::any_of(bss + off, bss + off + chunk, [](std::uint8_t b) { return b != 0; })) {
                std::memset(bss + off, 0, chunk);
            }
            off += chunk;
        }
        out.segments.push_back({l.paddr, l.filesz, l.memsz});
    }
    return out;
}

Result<std::vector<std::uint8_t>> read_file(const std::string &path) {
    kvm::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error(fmt::format("open {}", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return errno_error(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode)) {
        return make_error(Errc::kInvalidArgument, fmt::format("{} is not a regular file", path));
    }
    std::vector<std::uint8_t> data(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error(fmt::format("read {}", path));
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    data.resize(done);
    return data;
}

}  // namespace guestvm

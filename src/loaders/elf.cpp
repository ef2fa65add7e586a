#include <elf.h>
#include <fmt/format.h>

#include <algorithm>

#include "loaders/loader_util.hpp"

namespace guestvm {

namespace loaders {

namespace {

constexpr std::uint32_t kXenElfnotePhys32Entry = 18;

struct Elf32 {
    using Ehdr = Elf32_Ehdr;
    using Phdr = Elf32_Phdr;
    static constexpr int kClass = ELFCLASS32;
    static constexpr int kMachine = EM_386;
    static constexpr const char *kMachineName = "i386";
};
struct Elf64 {
    using Ehdr = Elf64_Ehdr;
    using Phdr = Elf64_Phdr;
    static constexpr int kClass = ELFCLASS64;
    static constexpr int kMachine = EM_X86_64;
    static constexpr const char *kMachineName = "x86-64";
};

// Walks one PT_NOTE's notes for Xen's PVH entry (name "Xen", type 18, a 32- or 64-bit address).
Status find_pvh_note(std::span<const std::uint8_t> notes, std::string_view kind, unsigned index,
                     ElfFile &out) {
    auto align4 = [](std::uint64_t v) { return (v + 3) & ~std::uint64_t{3}; };
    std::uint64_t pos = 0;
    while (notes.size() - pos >= 12) {
        auto namesz = *read_le<std::uint32_t>(notes, pos);
        auto descsz = *read_le<std::uint32_t>(notes, pos + 4);
        auto type = *read_le<std::uint32_t>(notes, pos + 8);
        std::uint64_t name_at = pos + 12;
        std::uint64_t desc_at = name_at + align4(namesz);
        if (desc_at > notes.size() || align4(descsz) > notes.size() - desc_at) {
            return malformed(kind, fmt::format("segment {}: a note runs past its segment", index));
        }
        std::string_view name(reinterpret_cast<const char *>(notes.data() + name_at),
                              namesz == 0 ? 0 : namesz - 1);
        if (name == "Xen" && type == kXenElfnotePhys32Entry) {
            auto desc = notes.subspan(desc_at, descsz);
            if (descsz == 4) {
                out.pvh_entry = *read_le<std::uint32_t>(desc, 0);
            } else if (descsz == 8) {
                out.pvh_entry = *read_le<std::uint64_t>(desc, 0);
            } else {
                return malformed(kind, fmt::format("PVH entry note of {} bytes", descsz));
            }
        }
        pos = desc_at + align4(descsz);
    }
    return {};
}

template <typename E>
Result<ElfFile> read_elf_as(std::span<const std::uint8_t> image, std::string_view kind) {
    typename E::Ehdr eh;
    if (image.size() < sizeof(eh)) {
        return malformed(kind, fmt::format("{} bytes is shorter than an ELF{} header", image.size(),
                                           E::kClass == ELFCLASS64 ? 64 : 32));
    }
    std::memcpy(&eh, image.data(), sizeof(eh));
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return malformed(kind, "not little-endian");
    if (eh.e_ident[EI_VERSION] != EV_CURRENT) return malformed(kind, "unknown ELF version");
    if (eh.e_type != ET_EXEC) {
        return malformed(kind, fmt::format("e_type {} is not ET_EXEC", eh.e_type));
    }
    if (eh.e_machine != E::kMachine) {
        return malformed(kind,
                         fmt::format("e_machine {} is not {}", eh.e_machine, E::kMachineName));
    }
    if (eh.e_phentsize != sizeof(typename E::Phdr)) {
        return malformed(kind, fmt::format("e_phentsize {} is not {}", eh.e_phentsize,
                                           sizeof(typename E::Phdr)));
    }
    if (eh.e_phnum == 0) return malformed(kind, "no program headers");
    if (eh.e_phoff > image.size() ||
        std::uint64_t{eh.e_phnum} * sizeof(typename E::Phdr) > image.size() - eh.e_phoff) {
        return malformed(kind, "program headers run past the end of the file");
    }
    ElfFile out;
    out.bits = E::kClass == ELFCLASS64 ? 64 : 32;
    out.entry = eh.e_entry;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        typename E::Phdr ph;
        std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE) continue;
        if (ph.p_offset > image.size() || ph.p_filesz > image.size() - ph.p_offset) {
            return malformed(kind, fmt::format("segment {}: file range [{:#x}, +{:#x}) runs past "
                                               "the end ({:#x})",
                                               i, ph.p_offset, ph.p_filesz, image.size()));
        }
        if (ph.p_type == PT_NOTE) {
            GUESTVM_TRY(find_pvh_note(image.subspan(ph.p_offset, ph.p_filesz), kind, i, out));
            continue;
        }
        if (ph.p_filesz > ph.p_memsz) {
            return malformed(kind, fmt::format("segment {}: p_filesz {:#x} > p_memsz {:#x}", i,
                                               ph.p_filesz, ph.p_memsz));
        }
        if (ph.p_memsz == 0) continue;
        if (std::uint64_t{ph.p_vaddr} + ph.p_memsz < ph.p_vaddr) {
            return malformed(kind, fmt::format("segment {}: virtual range wraps around", i));
        }
        if (E::kClass == ELFCLASS32 && std::uint64_t{ph.p_paddr} + ph.p_memsz > (1ull << 32)) {
            return malformed(kind, fmt::format("segment {}: ends above 4 GiB", i));
        }
        out.segments.push_back({i, ph.p_offset, ph.p_paddr, ph.p_vaddr, ph.p_filesz, ph.p_memsz,
                                (ph.p_flags & PF_X) != 0});
    }
    if (out.segments.empty()) return malformed(kind, "no loadable segment");
    return out;
}

}  // namespace

Result<ElfFile> read_elf(std::span<const std::uint8_t> image, std::string_view kind) {
    if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
        return malformed(kind, "no ELF magic");
    }
    switch (image[EI_CLASS]) {
        case ELFCLASS64:
            return read_elf_as<Elf64>(image, kind);
        case ELFCLASS32:
            return read_elf_as<Elf32>(image, kind);
        default:
            return malformed(kind,
                             fmt::format("ELF class {} is neither 32 nor 64-bit", image[EI_CLASS]));
    }
}

void add_segments(LoadPlan &plan, const ElfFile &elf, std::span<const std::uint8_t> image) {
    for (const ElfSegment &s : elf.segments) {
        plan.pieces.push_back({fmt::format("segment {}", s.index), s.paddr, s.memsz,
                               image.subspan(s.offset, s.filesz)});
    }
}

}  // namespace loaders

Result<LoadPlan> plan_elf(std::span<const std::uint8_t> image, std::span<const RamRange> ram,
                          std::uint64_t reserved_below) {
    constexpr std::string_view kKind = "ELF image";
    GUESTVM_TRY_ASSIGN(elf, loaders::read_elf(image, kKind));
    LoadPlan plan;
    plan.format = elf.bits == 64 ? "elf64" : "elf32";
    loaders::add_segments(plan, elf, image);
    GUESTVM_TRY(loaders::check_placement(plan, ram, reserved_below, kKind));
    // The guest starts with identity paging (or none), so the entry is a virtual address inside
    // an executable segment and runs at that segment's physical counterpart.
    auto seg = std::find_if(elf.segments.begin(), elf.segments.end(), [&](const auto &s) {
        return s.exec && elf.entry >= s.vaddr && elf.entry - s.vaddr < s.memsz;
    });
    if (seg == elf.segments.end()) {
        return loaders::malformed(
            kKind, fmt::format("entry {:#x} is not inside an executable segment", elf.entry));
    }
    plan.entry.rip = seg->paddr + (elf.entry - seg->vaddr);
    plan.entry.mode = elf.bits == 64 ? BootMode::kLong64 : BootMode::kProtected32;
    return plan;
}

}  // namespace guestvm

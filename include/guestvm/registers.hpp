// guestvm — x86-64 register state as the C++ API sees it (independent of <linux/kvm.h>).
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cstdint>

namespace guestvm {

/// General-purpose registers, instruction pointer and flags of one vCPU.
struct Registers {
    std::uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rsp = 0, rbp = 0;
    std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
    std::uint64_t rip = 0, rflags = 0x2;
};

/// One segment register as the CPU caches it.
struct Segment {
    std::uint64_t base = 0;
    std::uint32_t limit = 0;
    std::uint16_t selector = 0;
    std::uint8_t type = 0;
    bool present = false, dpl_user = false, db = false, s = false, l = false, g = false,
         avl = false, unusable = false;
    std::uint8_t dpl = 0;
};

/// A descriptor-table register (GDTR, IDTR).
struct DescriptorTable {
    std::uint64_t base = 0;
    std::uint16_t limit = 0;
};

/// Control, segment and descriptor-table state of one vCPU (the "architectural" state).
struct SpecialRegisters {
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTable gdt, idt;
    std::uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0, apic_base = 0;
};

}  // namespace guestvm

#pragma GCC visibility pop

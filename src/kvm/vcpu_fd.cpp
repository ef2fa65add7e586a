#include "kvm/vcpu_fd.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "kvm/cpuid_abi.hpp"
#include "kvm/fault_injection.hpp"

namespace guestvm::kvm {

namespace {

// The kvm_run of the vCPU that the current thread runs, for the kick signal handler.
thread_local kvm_run *tls_kick_target = nullptr;

void kick_handler(int) {
    kvm_run *run = tls_kick_target;
    if (run != nullptr) {
        // Only this thread writes immediate_exit while armed; the handler runs on it too.
        *static_cast<volatile std::uint8_t *>(&run->immediate_exit) = 1;
    }
}

Segment from_kvm(const kvm_segment &k) {
    Segment s;
    s.base = k.base;
    s.limit = k.limit;
    s.selector = k.selector;
    s.type = k.type;
    s.present = k.present != 0;
    s.dpl = k.dpl;
    s.db = k.db != 0;
    s.s = k.s != 0;
    s.l = k.l != 0;
    s.g = k.g != 0;
    s.avl = k.avl != 0;
    s.unusable = k.unusable != 0;
    return s;
}

kvm_segment to_kvm(const Segment &s) {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    k.avl = s.avl;
    k.unusable = s.unusable;
    return k;
}

Registers from_kvm(const kvm_regs &k) {
    return Registers{k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8,
                     k.r9,  k.r10, k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
}

kvm_regs to_kvm(const Registers &g) {
    kvm_regs k{};
    k.rax = g.rax, k.rbx = g.rbx, k.rcx = g.rcx, k.rdx = g.rdx, k.rsi = g.rsi, k.rdi = g.rdi;
    k.rsp = g.rsp, k.rbp = g.rbp, k.r8 = g.r8, k.r9 = g.r9, k.r10 = g.r10, k.r11 = g.r11;
    k.r12 = g.r12, k.r13 = g.r13, k.r14 = g.r14, k.r15 = g.r15, k.rip = g.rip;
    k.rflags = g.rflags;
    return k;
}

}  // namespace

VcpuFd::VcpuFd(UniqueFd fd, Mapping run, int id, bool sync_regs, std::size_t xsave_size)
    : fd_(std::move(fd)),
      run_map_(std::move(run)),
      id_(id),
      sync_regs_(sync_regs),
      xsave_size_(std::max(xsave_size, sizeof(XsaveRegion))) {
    // api.rst (kvm_valid_regs): ask KVM to store the GPRs in kvm_run on every exit.
    if (sync_regs_) run_struct()->kvm_valid_regs = KVM_SYNC_X86_REGS;
}

Result<Registers> VcpuFd::exit_regs() const {
    if (!sync_regs_) return get_regs();
    return from_kvm(run_struct()->s.regs.regs);
}

Status VcpuFd::set_exit_regs(const Registers &regs) {
    if (!sync_regs_) return set_regs(regs);
    run_struct()->s.regs.regs = to_kvm(regs);
    run_struct()->kvm_dirty_regs |= KVM_SYNC_X86_REGS;  // KVM loads them on the next KVM_RUN
    return {};
}

Status VcpuFd::install_kick_handler(int signo) {
    static std::mutex mu;
    static std::vector<int> installed;
    std::lock_guard lock(mu);
    for (int s : installed) {
        if (s == signo) return {};
    }
    struct sigaction sa {};
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: VMM code blocked in a system call on a vCPU thread (an exit handler reading a
    // file, say) is not woken with EINTR by a kick. KVM_RUN still returns: it answers -EINTR
    // itself when a signal is pending (or immediate_exit is set), and -EINTR is never restarted.
    sa.sa_flags = SA_RESTART;
    if (::sigaction(signo, &sa, nullptr) < 0) {
        return errno_error(fmt::format("sigaction({})", signo));
    }
    installed.push_back(signo);
    return {};
}

void VcpuFd::arm_kick_on_this_thread() noexcept { tls_kick_target = run_struct(); }
void VcpuFd::disarm_kick_on_this_thread() noexcept { tls_kick_target = nullptr; }

void VcpuFd::request_immediate_exit() noexcept {
    *static_cast<volatile std::uint8_t *>(&run_struct()->immediate_exit) = 1;
}
void VcpuFd::clear_immediate_exit() noexcept {
    *static_cast<volatile std::uint8_t *>(&run_struct()->immediate_exit) = 0;
}

Result<Exit> VcpuFd::run() {
    // api.rst 4.10: KVM_RUN has no arguments; the exit is described in the kvm_run area.
    if (fault::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            return Exit{InterruptedExit{}};
        }
        return errno_error(fmt::format("KVM_RUN vcpu {}", id_));
    }
    return decode_exit();
}

Exit VcpuFd::decode_exit() noexcept {
    kvm_run *r = run_struct();
    switch (r->exit_reason) {
        case KVM_EXIT_IO: {
            auto *base = run_map_.data() + r->io.data_offset;
            std::size_t bytes = std::size_t{r->io.size} * r->io.count;
            if (r->io.data_offset + bytes > run_map_.size()) {
                return UnknownExit{r->exit_reason};
            }
            return IoExit{r->io.port, r->io.size, r->io.direction == KVM_EXIT_IO_OUT, r->io.count,
                          std::span<std::uint8_t>(base, bytes)};
        }
        case KVM_EXIT_MMIO: {
            std::uint32_t len = r->mmio.len > 8 ? 8 : r->mmio.len;
            return MmioExit{r->mmio.phys_addr, len, r->mmio.is_write != 0,
                            std::span<std::uint8_t>(r->mmio.data, len)};
        }
        case KVM_EXIT_HLT:
            return HltExit{};
        case KVM_EXIT_SHUTDOWN:
            return ShutdownExit{};
        case KVM_EXIT_FAIL_ENTRY:
            return FailEntryExit{r->fail_entry.hardware_entry_failure_reason};
        case KVM_EXIT_INTERNAL_ERROR: {
            InternalErrorExit e{r->internal.suberror};
            const auto &f = r->emulation_failure;
            // api.rst: ndata counts the 64-bit words after it; flags and the 16 bytes of
            // insn_size + insn_bytes are three of them.
            if (f.suberror == KVM_INTERNAL_ERROR_EMULATION && f.ndata >= 3 &&
                (f.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0) {
                e.insn_len = std::min<std::uint8_t>(f.insn_size, 15);
                std::memcpy(e.insn.data(), f.insn_bytes, e.insn_len);
            }
            return e;
        }
        case KVM_EXIT_SYSTEM_EVENT:
            return SystemEventExit{r->system_event.type};
        case KVM_EXIT_INTR:
            return InterruptedExit{};
        default:
            return UnknownExit{r->exit_reason};
    }
}

Result<Registers> VcpuFd::get_regs() const {
    kvm_regs k{};
    if (fault::ioctl(fd_.get(), KVM_GET_REGS, &k) < 0) {
        return errno_error(fmt::format("KVM_GET_REGS vcpu {}", id_));
    }
    return Registers{k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8,
                     k.r9,  k.r10, k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
}

Status VcpuFd::set_regs(const Registers &g) const {
    kvm_regs k = to_kvm(g);
    if (fault::ioctl(fd_.get(), KVM_SET_REGS, &k) < 0) {
        return errno_error(fmt::format("KVM_SET_REGS vcpu {}", id_));
    }
    return {};
}

Result<SpecialRegisters> VcpuFd::get_sregs() const {
    kvm_sregs k{};
    if (fault::ioctl(fd_.get(), KVM_GET_SREGS, &k) < 0) {
        return errno_error(fmt::format("KVM_GET_SREGS vcpu {}", id_));
    }
    SpecialRegisters s;
    s.cs = from_kvm(k.cs), s.ds = from_kvm(k.ds), s.es = from_kvm(k.es), s.fs = from_kvm(k.fs);
    s.gs = from_kvm(k.gs), s.ss = from_kvm(k.ss), s.tr = from_kvm(k.tr), s.ldt = from_kvm(k.ldt);
    s.gdt = {k.gdt.base, k.gdt.limit};
    s.idt = {k.idt.base, k.idt.limit};
    s.cr0 = k.cr0, s.cr2 = k.cr2, s.cr3 = k.cr3, s.cr4 = k.cr4, s.cr8 = k.cr8;
    s.efer = k.efer, s.apic_base = k.apic_base;
    return s;
}

Status VcpuFd::set_sregs(const SpecialRegisters &s) const {
    // Read first so the interrupt bitmap and anything we do not model is preserved.
    kvm_sregs k{};
    if (fault::ioctl(fd_.get(), KVM_GET_SREGS, &k) < 0) {
        return errno_error(fmt::format("KVM_GET_SREGS vcpu {}", id_));
    }
    k.cs = to_kvm(s.cs), k.ds = to_kvm(s.ds), k.es = to_kvm(s.es), k.fs = to_kvm(s.fs);
    k.gs = to_kvm(s.gs), k.ss = to_kvm(s.ss), k.tr = to_kvm(s.tr), k.ldt = to_kvm(s.ldt);
    k.gdt.base = s.gdt.base, k.gdt.limit = s.gdt.limit;
    k.idt.base = s.idt.base, k.idt.limit = s.idt.limit;
    k.cr0 = s.cr0, k.cr2 = s.cr2, k.cr3 = s.cr3, k.cr4 = s.cr4, k.cr8 = s.cr8;
    k.efer = s.efer, k.apic_base = s.apic_base;
    if (fault::ioctl(fd_.get(), KVM_SET_SREGS, &k) < 0) {
        return errno_error(fmt::format("KVM_SET_SREGS vcpu {}", id_));
    }
    return {};
}

Status VcpuFd::set_cpuid(std::span<const kvm_cpuid_entry2> entries) const {
    std::vector<std::uint8_t> buf(kCpuidEntriesOffset + entries.size_bytes());
    CpuidHeader header{static_cast<std::uint32_t>(entries.size()), 0};
    std::memcpy(buf.data(), &header, sizeof(header));
    std::memcpy(buf.data() + kCpuidEntriesOffset, entries.data(), entries.size_bytes());
    if (fault::ioctl(fd_.get(), kIoctlSetCpuid2, buf.data()) < 0) {
        return errno_error(fmt::format("KVM_SET_CPUID2 vcpu {}", id_));
    }
    return {};
}

Result<std::uint32_t> VcpuFd::mp_state() const {
    kvm_mp_state state{};
    if (fault::ioctl(fd_.get(), KVM_GET_MP_STATE, &state) < 0) {
        return errno_error(fmt::format("KVM_GET_MP_STATE vcpu {}", id_));
    }
    return state.mp_state;
}

Result<kvm_fpu> VcpuFd::get_fpu() const {
    kvm_fpu fpu{};
    if (fault::ioctl(fd_.get(), KVM_GET_FPU, &fpu) < 0) {
        return errno_error(fmt::format("KVM_GET_FPU vcpu {}", id_));
    }
    return fpu;
}

Status VcpuFd::set_fpu(const kvm_fpu &fpu) const {
    if (fault::ioctl(fd_.get(), KVM_SET_FPU, const_cast<kvm_fpu *>(&fpu)) < 0) {
        return errno_error(fmt::format("KVM_SET_FPU vcpu {}", id_));
    }
    return {};
}

Result<std::vector<std::uint8_t>> VcpuFd::get_xsave() const {
    std::vector<std::uint8_t> area(xsave_size_);
    // KVM_GET_XSAVE answers EINVAL when the guest's area is larger than struct kvm_xsave.
    const unsigned long request =
        xsave_size_ > sizeof(XsaveRegion) ? kIoctlGetXsave2 : kIoctlGetXsave;
    if (fault::ioctl(fd_.get(), request, area.data()) < 0) {
        return errno_error(fmt::format("KVM_GET_XSAVE{} vcpu {} ({} bytes)",
                                       request == kIoctlGetXsave ? "" : "2", id_, area.size()));
    }
    return area;
}

Status VcpuFd::set_xsave(std::span<const std::uint8_t> area) const {
    if (area.size() < sizeof(XsaveRegion)) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("KVM_SET_XSAVE vcpu {}: {} bytes, under the {} it reads", id_,
                                      area.size(), sizeof(XsaveRegion)));
    }
    if (fault::ioctl(fd_.get(), kIoctlSetXsave, const_cast<std::uint8_t *>(area.data())) < 0) {
        return errno_error(fmt::format("KVM_SET_XSAVE vcpu {}", id_));
    }
    return {};
}

Result<Translation> VcpuFd::translate(std::uint64_t linear) const {
    kvm_translation t{};
    t.linear_address = linear;
    if (fault::ioctl(fd_.get(), KVM_TRANSLATE, &t) < 0) {
        return errno_error(fmt::format("KVM_TRANSLATE vcpu {}", id_));
    }
    return Translation{t.physical_address, t.valid != 0, t.writeable != 0, t.usermode != 0};
}

Status VcpuFd::set_exception(std::optional<std::uint8_t> vector,
                             std::optional<std::uint32_t> error_code) const {
    kvm_vcpu_events ev{};
    if (fault::ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &ev) < 0) {
        return errno_error(fmt::format("KVM_GET_VCPU_EVENTS vcpu {}", id_));
    }
    if (!vector && !ev.exception.injected && !ev.exception.pending) return {};
    // api.rst 4.31: an exception marked injected is delivered on the next entry; any one KVM
    // queued itself (the #UD of a failed emulation) is replaced or dropped.
    ev.exception.injected = vector ? 1 : 0;
    ev.exception.pending = 0;
    ev.exception.nr = vector.value_or(0);
    ev.exception.has_error_code = error_code.has_value() ? 1 : 0;
    ev.exception.error_code = error_code.value_or(0);
    ev.exception_has_payload = 0;
    ev.flags = 0;
    if (fault::ioctl(fd_.get(), KVM_SET_VCPU_EVENTS, &ev) < 0) {
        return errno_error(fmt::format("KVM_SET_VCPU_EVENTS vcpu {}", id_));
    }
    return {};
}

Status VcpuFd::inject_exception(std::uint8_t vector,
                                std::optional<std::uint32_t> error_code) const {
    return set_exception(vector, error_code);
}

Status VcpuFd::clear_pending_exception() const { return set_exception(std::nullopt, std::nullopt); }

Status VcpuFd::make_runnable() const {
    kvm_mp_state state{};
    state.mp_state = KVM_MP_STATE_RUNNABLE;
    if (fault::ioctl(fd_.get(), KVM_SET_MP_STATE, &state) < 0) {
        return errno_error(fmt::format("KVM_SET_MP_STATE vcpu {}", id_));
    }
    return {};
}

}  // namespace guestvm::kvm

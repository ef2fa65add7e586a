#include "kvm/fault_injection.hpp"

#include <fmt/format.h>
#include <linux/kvm.h>

#include <mutex>
#include <stdexcept>
#include <system_error>

#include "kvm/cpuid_abi.hpp"

namespace guestvm::kvm::fault {

namespace {

// Enough to name every call of a creation walk; a rule armed for a long run stops recording
// names (it still counts) rather than grow without bound.
constexpr std::size_t kMaxRecordedCalls = 4096;

struct State {
    std::mutex mu;
    bool active = false;
    Rule rule;
    std::thread::id owner;
    std::uint64_t seen = 0;
    std::uint64_t failed = 0;
    std::vector<std::string> calls;
    std::string last_failed;
};

State &state() {
    static State s;
    return s;
}

bool matches(const Match &m, Op op, unsigned long request) {
    if (m.op == Op::kAny) return true;
    if (m.op != op) return false;
    return op != Op::kIoctl || m.request == 0 || m.request == request;
}

const char *ioctl_name(unsigned long request) {
    switch (request) {
        case KVM_GET_API_VERSION:
            return "KVM_GET_API_VERSION";
        case KVM_CREATE_VM:
            return "KVM_CREATE_VM";
        case KVM_CHECK_EXTENSION:
            return "KVM_CHECK_EXTENSION";
        case KVM_GET_VCPU_MMAP_SIZE:
            return "KVM_GET_VCPU_MMAP_SIZE";
        case kIoctlGetSupportedCpuid:
            return "KVM_GET_SUPPORTED_CPUID";
        case KVM_CREATE_VCPU:
            return "KVM_CREATE_VCPU";
        case KVM_RUN:
            return "KVM_RUN";
        case KVM_GET_REGS:
            return "KVM_GET_REGS";
        case KVM_SET_REGS:
            return "KVM_SET_REGS";
        case KVM_GET_SREGS:
            return "KVM_GET_SREGS";
        case KVM_SET_SREGS:
            return "KVM_SET_SREGS";
        case kIoctlSetCpuid2:
            return "KVM_SET_CPUID2";
        case KVM_SET_MP_STATE:
            return "KVM_SET_MP_STATE";
        case KVM_SET_USER_MEMORY_REGION:
            return "KVM_SET_USER_MEMORY_REGION";
        case KVM_CREATE_IRQCHIP:
            return "KVM_CREATE_IRQCHIP";
        case KVM_CREATE_PIT2:
            return "KVM_CREATE_PIT2";
        case KVM_IRQ_LINE:
            return "KVM_IRQ_LINE";
        case KVM_IRQFD:
            return "KVM_IRQFD";
        case KVM_SET_TSS_ADDR:
            return "KVM_SET_TSS_ADDR";
        case KVM_SET_IDENTITY_MAP_ADDR:
            return "KVM_SET_IDENTITY_MAP_ADDR";
        case KVM_ENABLE_CAP:
            return "KVM_ENABLE_CAP";
        case KVM_GET_MP_STATE:
            return "KVM_GET_MP_STATE";
        case KVM_GET_FPU:
            return "KVM_GET_FPU";
        case KVM_SET_FPU:
            return "KVM_SET_FPU";
        case kIoctlGetXsave:
            return "KVM_GET_XSAVE";
        case kIoctlGetXsave2:
            return "KVM_GET_XSAVE2";
        case kIoctlSetXsave:
            return "KVM_SET_XSAVE";
        case KVM_TRANSLATE:
            return "KVM_TRANSLATE";
        case KVM_GET_VCPU_EVENTS:
            return "KVM_GET_VCPU_EVENTS";
        case KVM_SET_VCPU_EVENTS:
            return "KVM_SET_VCPU_EVENTS";
        default:
            return nullptr;
    }
}

}  // namespace

std::string call_name(Op op, unsigned long request) {
    switch (op) {
        case Op::kIoctl: {
            const char *name = ioctl_name(request);
            return name != nullptr ? name : fmt::format("ioctl {:#x}", request);
        }
        case Op::kMmap:
            return "mmap";
        case Op::kMremap:
            return "mremap";
        case Op::kOpen:
            return "open";
        case Op::kMemfd:
            return "memfd_create";
        case Op::kEventfd:
            return "eventfd";
        case Op::kThreadCreate:
            return "thread creation";
        case Op::kAny:
            break;
    }
    return "any call";
}

std::atomic<bool> detail::armed{false};

int detail::check_armed(Op op, unsigned long request) noexcept {
    State &s = state();
    std::lock_guard lock(s.mu);
    if (!s.active || !matches(s.rule.match, op, request)) return 0;
    if (!s.rule.all_threads && std::this_thread::get_id() != s.owner) return 0;
    ++s.seen;
    const bool fail = s.rule.every || s.rule.nth == s.seen;
    if (s.calls.size() < kMaxRecordedCalls || fail) {
        try {
            std::string name = call_name(op, request);
            if (fail) s.last_failed = name;
            if (s.calls.size() < kMaxRecordedCalls) s.calls.push_back(std::move(name));
        } catch (...) {
            // Out of memory for a name: the count and the failure still hold.
        }
    }
    if (!fail) return 0;
    ++s.failed;
    return s.rule.error;
}

Injection::Injection(Rule rule) {
    State &s = state();
    std::lock_guard lock(s.mu);
    if (s.active) throw std::logic_error("fault::Injection: another rule is armed");
    s.active = true;
    s.rule = rule;
    s.owner = std::this_thread::get_id();
    s.seen = 0;
    s.failed = 0;
    s.calls.clear();
    s.last_failed.clear();
    detail::armed.store(true, std::memory_order_relaxed);
}

Injection::~Injection() {
    State &s = state();
    std::lock_guard lock(s.mu);
    s.active = false;
    detail::armed.store(false, std::memory_order_relaxed);
}

std::uint64_t Injection::seen() const {
    std::lock_guard lock(state().mu);
    return state().seen;
}

std::uint64_t Injection::failed() const {
    std::lock_guard lock(state().mu);
    return state().failed;
}

std::vector<std::string> Injection::calls() const {
    std::lock_guard lock(state().mu);
    return state().calls;
}

std::string Injection::last_failed() const {
    std::lock_guard lock(state().mu);
    return state().last_failed;
}

void check_thread_create() {
    if (int e = check(Op::kThreadCreate)) {
        throw std::system_error(e, std::generic_category(), "thread creation (injected)");
    }
}

}  // namespace guestvm::kvm::fault

#include "guestvm/vcpu.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <system_error>

#include "arch/x86/boot.hpp"
#include "core/objects.hpp"
#include "core/vcpu_state.hpp"
#include "guestvm/vm.hpp"
#include "kvm/fault_injection.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

using namespace std::chrono_literals;

namespace {
constexpr auto kKickRetry = 2ms;
constexpr auto kPauseTimeout = 5s;
}  // namespace

const char *vcpu_state_name(VcpuState state) noexcept {
    switch (state) {
        case VcpuState::kCreated:
            return "created";
        case VcpuState::kRunning:
            return "running";
        case VcpuState::kSuspended:
            return "suspended";
        case VcpuState::kOff:
            return "off";
        case VcpuState::kStopped:
            return "stopped";
        case VcpuState::kWaiting:
            return "waiting";
    }
    return "unknown";
}

Vcpu::Vcpu(PrivateTag, Vm &vm, VcpuId id, void *user_data, std::unique_ptr<State> state)
    : vm_(vm), id_(id), user_data_(user_data), s_(std::move(state)) {}

void Vcpu::count(ExitKind kind) noexcept {
    auto &c = s_->exits_[static_cast<std::size_t>(kind)];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

Vcpu::~Vcpu() { (void)stop_and_join(std::nullopt); }  // no deadline: cannot fail

// The one place that knows which lifecycle transitions are legal.
bool Vcpu::set_state_locked(VcpuState to) {
    VcpuState from = state_.load(std::memory_order_relaxed);
    bool ok = false;
    switch (from) {
        case VcpuState::kCreated:
        case VcpuState::kOff:
            ok =
                to == VcpuState::kRunning || to == VcpuState::kStopped || to == VcpuState::kWaiting;
            break;
        case VcpuState::kWaiting:
            ok = to == VcpuState::kRunning || to == VcpuState::kStopped;
            break;
        case VcpuState::kRunning:
            ok = to == VcpuState::kSuspended || to == VcpuState::kOff || to == VcpuState::kStopped;
            break;
        case VcpuState::kSuspended:
            ok = to == VcpuState::kRunning || to == VcpuState::kOff || to == VcpuState::kStopped;
            break;
        case VcpuState::kStopped:
            ok = false;
            break;
    }
    if (!ok) return false;
    state_.store(to, std::memory_order_release);
    vm_.notify_vcpu_state(*this, to);
    return true;
}

Status Vcpu::start(std::uint64_t entry, BootMode mode, std::uint64_t arg) {
    EntryState state;
    state.mode = mode;
    state.rip = entry;
    state.rdi = arg;
    return start(state);
}

Status Vcpu::start(const EntryState &state) { return start_impl(&state); }

Status Vcpu::start_current() { return start_impl(nullptr); }

Status Vcpu::await_sipi() {
    if (!vm_.has_irqchip()) {
        return make_error(Errc::kBadState,
                          fmt::format("vCPU {}: waiting for INIT/SIPI needs the in-kernel local "
                                      "APICs (the irqchip)",
                                      id_.value()));
    }
    std::unique_lock lock(s_->mutex_);
    if (vm_.stopped() || state_ == VcpuState::kStopped) {
        return make_error(Errc::kBadState,
                          fmt::format("vCPU {}: VM {} has stopped", id_.value(), vm_.name()));
    }
    if (state_ != VcpuState::kCreated) {
        return make_error(Errc::kAlreadyExists,
                          fmt::format("vCPU {} is {}: only a vCPU that never ran waits for SIPI",
                                      id_.value(), vcpu_state_name(state_)));
    }
    // KVM created it uninitialised (an application processor): KVM_RUN blocks until INIT/SIPI.
    GUESTVM_TRY(ensure_kvm_locked());
    GUESTVM_TRY(start_thread_locked());
    set_state_locked(VcpuState::kWaiting);
    s_->cv_.notify_all();
    return {};
}

void Vcpu::note_started_by_sipi() {
    // KVM_RUN returns (EAGAIN) when INIT arrives, or the vCPU exits running guest code: either
    // way another vCPU has started it.
    auto mp = s_->fd_->mp_state();
    if (mp && *mp == KVM_MP_STATE_UNINITIALIZED) return;
    std::lock_guard lock(s_->mutex_);
    if (state_ != VcpuState::kWaiting) return;
    set_state_locked(VcpuState::kRunning);
    vm_.on_vcpu_online();
    s_->cv_.notify_all();
}

Status Vcpu::start_thread_locked() {
    if (s_->thread_.joinable()) return {};
    try {
        kvm::fault::check_thread_create();
        s_->thread_ = std::jthread([this] { thread_main(); });
    } catch (const std::system_error &e) {
        return make_error(
            Errc::kResourceExhausted,
            fmt::format("vCPU {}: cannot create its thread: {}", id_.value(), e.what()));
    }
    return {};
}

Status Vcpu::prepare(const EntryState &state) {
    std::unique_lock lock(s_->mutex_);
    if (online()) {
        return make_error(
            Errc::kAlreadyExists,
            fmt::format("vCPU {} is online; suspend is not enough to re-enter it", id_.value()));
    }
    s_->cv_.wait(lock, [&] { return !s_->in_guest_; });
    GUESTVM_TRY(ensure_kvm_locked());
    return x86::apply_entry_state(*s_->fd_, state);
}

Status Vcpu::ensure_kvm_locked() {
    if (s_->fd_) return {};
    GUESTVM_TRY(vm_.create_kvm_vcpu(*this, s_->pending_entry_.get()));
    s_->pending_entry_.reset();
    return {};
}

Status Vcpu::ensure_kvm() {
    std::lock_guard lock(s_->mutex_);
    return ensure_kvm_locked();
}

Status Vcpu::start_impl(const EntryState *state) {
    // VM-wide and idempotent; done before taking this vCPU's lock (lock order: VM, then vCPU).
    // Starting with the current state leaves guest memory alone: the VMM set that state up.
    if (state != nullptr && state->mode != BootMode::kReal16) {
        GUESTVM_TRY(vm_.ensure_boot_tables());
    }
    std::unique_lock lock(s_->mutex_);
    if (vm_.stopped() || state_ == VcpuState::kStopped) {
        return make_error(Errc::kBadState,
                          fmt::format("vCPU {}: VM {} has stopped", id_.value(), vm_.name()));
    }
    if (online() || state_ == VcpuState::kWaiting) {
        return make_error(Errc::kAlreadyExists,
                          fmt::format("vCPU {} is already {}", id_.value(),
                                      online() ? "online" : "waiting for INIT/SIPI"));
    }
    // A vCPU that just went off may still be leaving its run loop.
    s_->cv_.wait(lock, [&] { return !s_->in_guest_; });
    if (vm_.stopped() || state_ == VcpuState::kStopped) {
        return make_error(Errc::kBadState,
                          fmt::format("vCPU {}: VM {} has stopped", id_.value(), vm_.name()));
    }
    GUESTVM_TRY(ensure_kvm_locked());
    if (state != nullptr) GUESTVM_TRY(x86::apply_entry_state(*s_->fd_, *state));
    if (vm_.has_irqchip()) GUESTVM_TRY(s_->fd_->make_runnable());
    GUESTVM_TRY(start_thread_locked());
    set_state_locked(VcpuState::kRunning);
    vm_.on_vcpu_online();
    s_->cv_.notify_all();
    return {};
}

void Vcpu::kick_locked() {
    s_->leave_guest_.store(true, std::memory_order_release);
    if (s_->thread_.joinable() && !s_->thread_done_) {
        ::pthread_kill(s_->thread_.native_handle(), vm_.host().kick_signal());
    }
}

template <typename F>
auto Vcpu::with_paused(F &&fn) -> decltype(fn()) {
    std::unique_lock lock(s_->mutex_);
    if (s_->thread_.joinable() && s_->thread_.get_id() == std::this_thread::get_id()) {
        return fn();  // called from this vCPU's own exit handler: it is not in KVM_RUN
    }
    ++s_->pause_requests_;
    auto deadline = std::chrono::steady_clock::now() + kPauseTimeout;
    // A vCPU waiting for the handler turn this thread holds is out of KVM_RUN until we let go.
    while (s_->in_guest_ && !waits_for_callers_turn()) {
        kick_locked();
        s_->cv_.wait_for(lock, kKickRetry);
        if (s_->in_guest_ && std::chrono::steady_clock::now() > deadline) {
            --s_->pause_requests_;
            s_->cv_.notify_all();
            return make_error(Errc::kTimeout,
                              fmt::format("vCPU {} did not pause within 5 s", id_.value()));
        }
    }
    auto result = fn();
    --s_->pause_requests_;
    s_->cv_.notify_all();
    return result;
}

Status Vcpu::suspend() {
    std::unique_lock lock(s_->mutex_);
    if (state_ == VcpuState::kSuspended) return {};
    if (state_ != VcpuState::kRunning) {
        return make_error(Errc::kBadState, fmt::format("vCPU {} is {}, not running", id_.value(),
                                                       vcpu_state_name(state_)));
    }
    set_state_locked(VcpuState::kSuspended);
    if (s_->thread_.get_id() == std::this_thread::get_id()) {
        s_->leave_guest_.store(true, std::memory_order_release);  // parks after this exit
        return {};
    }
    // A vCPU thread leaves KVM_RUN at a kick unless an exit handler of the VMM's holds it. One
    // waiting for the handler turn this thread holds parks after that exit (the kick stays).
    const auto deadline = std::chrono::steady_clock::now() + kPauseTimeout;
    while (s_->in_guest_) {
        kick_locked();
        if (waits_for_callers_turn()) return {};
        s_->cv_.wait_for(lock, kKickRetry);
        if (s_->in_guest_ && std::chrono::steady_clock::now() > deadline) {
            return make_error(Errc::kTimeout,
                              fmt::format("vCPU {} did not leave KVM_RUN within 5 s (it parks "
                                          "when its exit handler returns)",
                                          id_.value()));
        }
    }
    return {};
}

Status Vcpu::resume() {
    std::unique_lock lock(s_->mutex_);
    if (state_ == VcpuState::kRunning) return {};
    if (state_ != VcpuState::kSuspended) {
        return make_error(Errc::kBadState, fmt::format("vCPU {} is {}, not suspended", id_.value(),
                                                       vcpu_state_name(state_)));
    }
    set_state_locked(VcpuState::kRunning);
    s_->cv_.notify_all();
    return {};
}

bool Vcpu::on_own_thread() const {
    return s_->running_thread_.load(std::memory_order_acquire) == std::this_thread::get_id();
}

// On the vCPU's own thread we are inside an exit handler: the registers are those of the exit
// (kvm_run's sync area, no ioctl). From any other thread the vCPU is paused first.
// A deferred vCPU gets its KVM vCPU first (its state lives there).
Result<Registers> Vcpu::registers() {
    if (on_own_thread()) return s_->fd_->exit_regs();
    GUESTVM_TRY(ensure_kvm());
    return with_paused([&] { return s_->fd_->get_regs(); });
}
Status Vcpu::set_registers(const Registers &regs) {
    if (on_own_thread()) return s_->fd_->set_exit_regs(regs);
    GUESTVM_TRY(ensure_kvm());
    return with_paused([&] { return s_->fd_->set_regs(regs); });
}
Result<SpecialRegisters> Vcpu::special_registers() {
    GUESTVM_TRY(ensure_kvm());
    return with_paused([&] { return s_->fd_->get_sregs(); });
}
Status Vcpu::set_special_registers(const SpecialRegisters &sregs) {
    GUESTVM_TRY(ensure_kvm());
    return with_paused([&] { return s_->fd_->set_sregs(sregs); });
}

Status Vcpu::apply_thread_attributes_locked() {
    pid_t tid = s_->tid_.load(std::memory_order_acquire);
    if (tid == 0) return {};  // applied by the thread when it starts
    if (!s_->thread_name_.empty()) {
        int err = ::pthread_setname_np(s_->thread_.native_handle(),
                                       s_->thread_name_.substr(0, 15).c_str());
        if (err != 0)
            return errno_error(fmt::format("vCPU {}: pthread_setname_np", id_.value()), err);
    }
    int nice = 19 - s_->priority_ * 39 / 255;
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0) {
        return errno_error(fmt::format("vCPU {}: setpriority(nice {}) for priority {}", id_.value(),
                                       nice, s_->priority_));
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    if (s_->affinity_ >= 0) {
        CPU_SET(s_->affinity_, &set);
    } else {
        for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &set);
    }
    if (::sched_setaffinity(tid, sizeof(set), &set) != 0) {
        return errno_error(
            fmt::format("vCPU {}: sched_setaffinity to host CPU {}", id_.value(), s_->affinity_));
    }
    return {};
}

Status Vcpu::thread_attributes() const {
    std::lock_guard lock(s_->mutex_);
    return s_->attributes_;
}

Status Vcpu::set_name(std::string name) {
    std::lock_guard lock(s_->mutex_);
    s_->thread_name_ = std::move(name);
    return s_->attributes_ = apply_thread_attributes_locked();
}

Status Vcpu::set_priority(int priority) {
    if (priority < 0 || priority > 255) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("priority {} outside 0..255", priority));
    }
    std::lock_guard lock(s_->mutex_);
    s_->priority_ = priority;
    return s_->attributes_ = apply_thread_attributes_locked();
}

Status Vcpu::set_affinity(int host_cpu) {
    long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
    if (host_cpu < -1 || host_cpu >= cpus || host_cpu >= CPU_SETSIZE) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("host CPU {} outside -1..{}", host_cpu, cpus - 1));
    }
    std::lock_guard lock(s_->mutex_);
    s_->affinity_ = host_cpu;
    return s_->attributes_ = apply_thread_attributes_locked();
}

int Vcpu::priority() const {
    std::lock_guard lock(s_->mutex_);
    return s_->priority_;
}

ExitCounts Vcpu::exit_counts() const noexcept {
    ExitCounts out;
    for (std::size_t i = 0; i < s_->exits_.size(); ++i) {
        out.by_kind[i] = s_->exits_[i].load(std::memory_order_relaxed);
    }
    return out;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> Vcpu::rip_samples() const {
    std::lock_guard lock(s_->samples_mutex_);
    return {s_->samples_.begin(), s_->samples_.end()};
}

void Vcpu::sample_rip() {
    std::lock_guard lock(s_->mutex_);
    if (!s_->in_guest_ || !s_->thread_.joinable() || s_->thread_done_) return;
    s_->sample_requested_.store(true, std::memory_order_release);
    ::pthread_kill(s_->thread_.native_handle(), vm_.host().kick_signal());
}

Status Vcpu::cpu_off() {
    if (!on_own_thread()) {
        return make_error(Errc::kBadState,
                          fmt::format("vCPU {}: CPU_OFF from another thread", id_.value()));
    }
    go_off();
    return {};
}

void Vcpu::go_off() {
    {
        std::lock_guard lock(s_->mutex_);
        if (!set_state_locked(VcpuState::kOff)) return;
    }
    vm_.on_vcpu_offline(*this);
}

void Vcpu::request_stop() {
    std::lock_guard lock(s_->mutex_);
    s_->exit_thread_ = true;
    set_state_locked(VcpuState::kStopped);
    if (s_->in_guest_) kick_locked();
    s_->cv_.notify_all();
}

Status Vcpu::stop_and_join(std::optional<std::chrono::steady_clock::time_point> deadline) {
    {
        std::unique_lock lock(s_->mutex_);
        s_->exit_thread_ = true;
        set_state_locked(VcpuState::kStopped);
        if (!s_->thread_.joinable()) return {};
        if (s_->thread_.get_id() == std::this_thread::get_id()) return {};  // cannot join itself
        s_->cv_.notify_all();
        while (!s_->thread_done_) {
            // A kick takes the thread out of KVM_RUN at once; only an exit handler of the VMM's
            // that does not return can hold it here.
            if (deadline && std::chrono::steady_clock::now() > *deadline) {
                return make_error(Errc::kTimeout,
                                  fmt::format("vCPU {} did not stop in time: an exit handler on "
                                              "its thread has not returned",
                                              id_.value()));
            }
            if (s_->in_guest_) kick_locked();
            s_->cv_.wait_for(lock, kKickRetry);
        }
    }
    s_->thread_.join();
    return {};
}

void Vcpu::thread_main() {
    s_->running_thread_.store(std::this_thread::get_id(), std::memory_order_release);
    s_->tid_.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_release);
    s_->fd_->arm_kick_on_this_thread();
    {
        std::lock_guard lock(s_->mutex_);
        if (s_->thread_name_.empty()) s_->thread_name_ = fmt::format("vcpu{}", id_.value());
        s_->attributes_ = apply_thread_attributes_locked();
    }
    for (;;) {
        {
            std::unique_lock lock(s_->mutex_);
            s_->in_guest_ = false;
            s_->cv_.notify_all();
            s_->cv_.wait(lock, [&] {
                return s_->exit_thread_ ||
                       ((state_ == VcpuState::kRunning || state_ == VcpuState::kWaiting) &&
                        s_->pause_requests_ == 0);
            });
            if (s_->exit_thread_) break;
            s_->in_guest_ = true;
            s_->leave_guest_.store(false, std::memory_order_release);
        }
        run_guest();
    }
    kvm::VcpuFd::disarm_kick_on_this_thread();
    s_->running_thread_.store(std::thread::id(), std::memory_order_release);
    std::lock_guard lock(s_->mutex_);
    s_->in_guest_ = false;
    s_->thread_done_ = true;
    s_->cv_.notify_all();
}

void Vcpu::flush_pending_exit() {
    // api.rst (immediate_exit): KVM completes pending I/O, then returns EINTR without
    // running guest code, leaving the register state consistent for readers.
    s_->fd_->request_immediate_exit();
    (void)s_->fd_->run();
    s_->fd_->clear_immediate_exit();
}

}  // namespace guestvm

#include "guestvm/vm.hpp"

#include <fmt/format.h>
#include <linux/kvm.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "arch/x86/boot.hpp"
#include "arch/x86/insn_assist.hpp"
#include "common/handler_scope.hpp"
#include "core/exit_router.hpp"
#include "core/host_state.hpp"
#include "core/irq_ack.hpp"
#include "core/objects.hpp"
#include "core/vcpu_state.hpp"
#include "core/vm_state.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu_fd.hpp"
#include "kvm/vm_fd.hpp"
#include "memory/guest_vspace_state.hpp"

namespace guestvm {

namespace {
constexpr std::uint64_t kGiB = 1ull << 30;
/// The VM whose handler turn the calling thread holds, or null.
thread_local const Vm *tls_turn = nullptr;
}  // namespace

Vm::State::Turn::Turn(const Vm &vm) : outer_(tls_turn) {
    if (!vm.handlers_serialized() || tls_turn == &vm) return;
    held_ = &vm.s_->turn_mutex_;
    held_->lock();
    tls_turn = &vm;
}

Vm::State::Turn::~Turn() {
    if (held_ == nullptr) return;
    tls_turn = outer_;
    held_->unlock();
}

bool Vm::holds_handler_turn() const noexcept { return tls_turn == this; }

Status Vm::set_serialize_handlers(bool serialized) {
    std::lock_guard lock(s_->assign_mutex_);
    if (s_->ever_started_.load()) {
        return make_error(
            Errc::kBadState,
            fmt::format("VM {}: handler concurrency is fixed once a vCPU has started", name()));
    }
    serialized_.store(serialized, std::memory_order_release);
    return {};
}

Vm::Vm(PrivateTag, std::shared_ptr<Host> host, VmConfig config, std::unique_ptr<State> state,
       int capacity)
    : host_(std::move(host)),
      config_(std::move(config)),
      capacity_(capacity),
      s_(std::move(state)),
      vcpus_(std::make_unique<std::atomic<Vcpu *>[]>(static_cast<std::size_t>(capacity))),
      cores_(std::make_unique<std::atomic<Vcpu *>[]>(static_cast<std::size_t>(capacity))),
      boot_mode_(config_.boot_mode),
      serialized_(config_.serialize_handlers) {}

Result<std::unique_ptr<Vm>> Vm::create(std::shared_ptr<Host> host, VmConfig config) {
    if (!host) return make_error(Errc::kInvalidArgument, "Vm::create: null host");
    auto fd = host_kvm(*host).create_vm();
    if (!fd) return std::unexpected(std::move(fd).error());
    const int max = host->max_vcpus();
    auto vm = std::make_unique<Vm>(
        PrivateTag{}, std::move(host), std::move(config),
        std::make_unique<State>(std::make_unique<kvm::VmFd>(std::move(*fd))), max);
    GUESTVM_TRY(vm->setup());
    return vm;
}

Status Vm::setup() {
    guest_vspace_ = std::make_unique<GuestVSpace>(
        std::make_unique<GuestVSpace::State>(*s_->fd_, host_kvm(*host_).memory_slots(),
                                             s_->fd_->check_extension(KVM_CAP_READONLY_MEM) > 0),
        vmm_vspace_);
    vmm_vspace_.attach(guest_vspace_.get());
    s_->router_ = std::make_unique<ExitRouter>(
        config_.unhandled_io, [memory = guest_vspace_.get()](ExitContext &ctx, MmioAccess &a) {
            return memory->dispatch_fault(ctx, a);
        });
    assist_ =
        config_.emulation_assist == EmulationAssist::kOn ||
        (config_.emulation_assist == EmulationAssist::kAuto && x86::host_emulates_guest_kernel());
    if (assist_ && s_->fd_->check_extension(KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0) {
        // Every emulation failure comes to the VMM (without it KVM queues a #UD for one at CPL
        // 3), with no #UD queued behind it.
        GUESTVM_TRY(s_->fd_->enable_cap(KVM_CAP_EXIT_ON_EMULATION_FAILURE, 1));
    }
    GUESTVM_TRY(s_->fd_->set_tss_addr(x86::kTssAddr));
    return s_->fd_->set_identity_map_addr(x86::kIdentityMapAddr);
}

Status Vm::ensure_boot_tables() {
    std::lock_guard lock(s_->boot_tables_mutex_);
    if (s_->boot_tables_) return {};
    std::uint64_t top = 4 * kGiB;
    for (const auto &r : guest_vspace_->regions()) top = std::max(top, r.end());
    auto installed = x86::install_boot_tables(*guest_vspace_, top);
    if (!installed) {
        return std::unexpected(
            std::move(installed).error().context("boot tables need guest RAM over [0, 0x10000)"));
    }
    s_->boot_tables_ = true;
    return {};
}

Vm::~Vm() {
    std::vector<std::function<void()>> hooks;
    {
        std::lock_guard lock(s_->destroy_hooks_mutex_);
        hooks.swap(s_->destroy_hooks_);
    }
    for (auto hook = hooks.rbegin(); hook != hooks.rend(); ++hook) (*hook)();
    stop({StopReason::kRequested, "VM destroyed"});
    (void)join_all(std::nullopt);  // no deadline: cannot fail
    // Delete every capability before the objects they name go away.
    for (auto &v : s_->owned_) {
        (void)host_->cspace().remove(v->tcb_cap_);
        (void)host_->cspace().remove(v->vcpu_cap_);
    }
}

Result<Vcpu *> Vm::add_vcpu(void *user_data, const EntryState *initial,
                            const std::function<void(Vcpu &)> &on_configured) {
    std::lock_guard lock(s_->assign_mutex_);
    const int id = vcpu_count_.load(std::memory_order_relaxed);
    if (stopped()) {
        return make_error(Errc::kBadState, fmt::format("VM {} has stopped", name()));
    }
    if (id >= capacity_) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("VM {}: already {} vCPUs, KVM's maximum", name(), capacity_));
    }
    auto vcpu = std::make_unique<Vcpu>(Vcpu::PrivateTag{}, *this, VcpuId(id), user_data,
                                       std::make_unique<Vcpu::State>(*s_->router_, nullptr));
    if (config_.defer_kvm_vcpus) {
        if (initial != nullptr) vcpu->s_->pending_entry_ = std::make_unique<EntryState>(*initial);
    } else {
        GUESTVM_TRY(create_kvm_vcpu(*vcpu, initial));
    }
    auto unpublished = [&](Error e) {
        if (vcpu->s_->fd_) {
            std::lock_guard kvm_lock(s_->kvm_vcpus_mutex_);
            s_->fd_->give_back(std::move(*vcpu->s_->fd_));
            --s_->kvm_vcpus_;
        }
        return std::unexpected(std::move(e));
    };
    auto tcb = std::make_shared<TcbObject>(vcpu.get());
    auto obj = std::make_shared<VcpuObject>(vcpu.get());
    auto tcb_cap = host_->cspace().insert(tcb);
    if (!tcb_cap) return unpublished(std::move(tcb_cap).error());
    auto vcpu_cap = host_->cspace().insert(obj);
    if (!vcpu_cap) {
        (void)host_->cspace().remove(*tcb_cap);
        return unpublished(std::move(vcpu_cap).error());
    }
    vcpu->tcb_cap_ = *tcb_cap;
    vcpu->vcpu_cap_ = *vcpu_cap;
    vcpu->s_->tcb_object_ = std::move(tcb);
    vcpu->s_->vcpu_object_ = std::move(obj);
    Vcpu *raw = vcpu.get();
    s_->owned_.push_back(std::move(vcpu));
    if (on_configured) on_configured(*raw);  // last step before anyone can see it
    vcpus_[static_cast<std::size_t>(id)].store(raw, std::memory_order_release);
    vcpu_count_.store(id + 1, std::memory_order_release);
    return raw;
}

Status Vm::create_kvm_vcpu(Vcpu &vcpu, const EntryState *initial) {
    std::lock_guard lock(s_->kvm_vcpus_mutex_);
    // Configured, then handed over. KVM keeps a vCPU it created until the VM goes: one that
    // fails here goes back to the VM fd, and the next creation of its id reuses it.
    const int id = vcpu.id().value();
    auto fd = s_->fd_->create_vcpu(id);
    if (!fd) return std::unexpected(std::move(fd).error());
    auto cpuid = x86::vcpu_cpuid(host_kvm(*host_).supported_cpuid(), id);
    if (assist_) x86::mask_cpuid_for_emulating_host(cpuid);
    Status configured = fd->set_cpuid(cpuid);
    if (configured && initial != nullptr) configured = x86::apply_entry_state(*fd, *initial);
    if (!configured) {
        s_->fd_->give_back(std::move(*fd));
        return std::unexpected(std::move(configured).error());
    }
    vcpu.s_->fd_ = std::make_unique<kvm::VcpuFd>(std::move(*fd));
    ++s_->kvm_vcpus_;
    return {};
}

Status Vm::assign_locked(Vcpu &vcpu, int core) {
    if (&vcpu.vm() != this) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("vCPU {} belongs to another VM", vcpu.id().value()));
    }
    if (core < 0 || core >= capacity_) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("core {} outside 0..{}", core, capacity_ - 1));
    }
    if (vcpu.target_core() >= 0) {
        return make_error(Errc::kAlreadyExists,
                          fmt::format("vCPU {} is already assigned to core {}", vcpu.id().value(),
                                      vcpu.target_core()));
    }
    auto &slot = cores_[static_cast<std::size_t>(core)];
    if (Vcpu *taken = slot.load(std::memory_order_relaxed)) {
        return make_error(
            Errc::kAlreadyExists,
            fmt::format("core {} is already assigned to vCPU {}", core, taken->id().value()));
    }
    vcpu.target_core_.store(core, std::memory_order_release);
    slot.store(&vcpu, std::memory_order_release);
    if (config_.vcpu_assign_observer) config_.vcpu_assign_observer(vcpu, core);
    // Assignments never undo, so the lowest unassigned id only moves up.
    int first = first_unassigned_.load(std::memory_order_relaxed);
    const int count = vcpu_count_.load(std::memory_order_relaxed);
    while (first < count && vcpus_[static_cast<std::size_t>(first)].load()->target_core() >= 0) {
        ++first;
    }
    first_unassigned_.store(first, std::memory_order_release);
    return {};
}

void Vm::unassign_locked(Vcpu &vcpu, int core) {
    cores_[static_cast<std::size_t>(core)].store(nullptr, std::memory_order_release);
    vcpu.target_core_.store(-1, std::memory_order_release);
    if (config_.vcpu_assign_observer) config_.vcpu_assign_observer(vcpu, -1);
    const int id = vcpu.id().value();
    if (id < first_unassigned_.load(std::memory_order_relaxed)) {
        first_unassigned_.store(id, std::memory_order_release);
    }
}

Status Vm::assign_target(Vcpu &vcpu, int core) {
    std::lock_guard lock(s_->assign_mutex_);
    return assign_locked(vcpu, core);
}

Result<Vcpu *> Vm::claim_locked(int core, bool &claimed) {
    claimed = false;
    if (core < 0 || core >= capacity_) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("core {} outside 0..{}", core, capacity_ - 1));
    }
    if (Vcpu *v = vcpu_for_target(core)) return v;
    Vcpu *free = free_unassigned_vcpu();
    if (free == nullptr) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("no unassigned vCPU left for core {}", core));
    }
    GUESTVM_TRY(assign_locked(*free, core));
    claimed = true;
    return free;
}

Result<Vcpu *> Vm::claim_vcpu_for_core(int core) {
    std::lock_guard lock(s_->assign_mutex_);
    bool claimed = false;
    return claim_locked(core, claimed);
}

template <typename Start>
Status Vm::claim_and_start(int core, Start &&start) {
    // One lock around find-claim-assign-start: two starts for the same core never start two
    // vCPUs, and two for different cores never claim the same one.
    std::lock_guard lock(s_->assign_mutex_);
    bool claimed = false;
    auto vcpu = claim_locked(core, claimed);
    if (!vcpu) return std::unexpected(std::move(vcpu).error());
    auto started = start(**vcpu);
    if (!started && claimed) unassign_locked(**vcpu, core);
    return started;
}

Status Vm::start_core(int core, std::uint64_t entry, std::uint64_t arg) {
    return claim_and_start(core, [&](Vcpu &v) { return v.start(entry, boot_mode(), arg); });
}

Status Vm::start_core(int core, const EntryState &state) {
    return claim_and_start(core, [&](Vcpu &v) { return v.start(state); });
}

Status Vm::await_sipi(int core) {
    return claim_and_start(core, [](Vcpu &v) { return v.await_sipi(); });
}

Status Vm::enable_irqchip(bool kernel_pit) {
    // Under the assignment lock, which vCPU creation takes too: no vCPU appears meanwhile; and
    // under the KVM-vCPU lock: no deferred vCPU gets its KVM vCPU meanwhile.
    std::lock_guard lock(s_->assign_mutex_);
    if (has_irqchip()) return {};
    std::lock_guard kvm_lock(s_->kvm_vcpus_mutex_);
    if (s_->kvm_vcpus_ != 0) {
        return make_error(
            Errc::kBadState,
            config_.defer_kvm_vcpus
                ? fmt::format("VM {}: the interrupt controller must come before any vCPU is "
                              "started or has its registers used (KVM creates its irqchip "
                              "only before its first vCPU)",
                              config_.name)
                : fmt::format("VM {}: the interrupt controller must be created before the "
                              "first vCPU ({} exist)",
                              config_.name, vcpu_count()));
    }
    // A failed PIT leaves the irqchip made: a second call creates only the PIT (the irqchip
    // cannot be created twice).
    GUESTVM_TRY(s_->fd_->create_irqchip());
    if (kernel_pit) GUESTVM_TRY(s_->fd_->create_pit());
    irqchip_.store(true, std::memory_order_release);
    return {};
}

namespace {
std::unexpected<Error> no_irqchip(const std::string &vm, int irq) {
    return make_error(Errc::kBadState, fmt::format("VM {}: IRQ {}: the VM has no interrupt "
                                                   "controller (VmConfig::irqchip, "
                                                   "Vm::enable_irqchip)",
                                                   vm, irq));
}
}  // namespace

Status Vm::set_irq_line(int irq, bool level) {
    if (!has_irqchip()) {
        return no_irqchip(config_.name, irq);
    }
    if (irq < 0 || irq >= kIrqLines) {
        return make_error(Errc::kInvalidArgument, fmt::format("VM {}: IRQ {} is not a line 0..{}",
                                                              config_.name, irq, kIrqLines - 1));
    }
    {
        std::lock_guard lock(
            s_->irqchip_mutex_);  // before the line moves: its ack may come at once
        if (!s_->irq_acks_) s_->irq_acks_ = std::make_unique<IrqAckWatcher>(*s_->fd_);
        s_->irq_acks_->note_level(irq, level);
    }
    return s_->fd_->irq_line(static_cast<std::uint32_t>(irq), level);
}

Status Vm::pulse_irq(int irq) {
    GUESTVM_TRY(set_irq_line(irq, true));
    return set_irq_line(irq, false);
}

Status Vm::set_irq_ack_handler(int irq, std::function<void(int irq)> h) {
    if (!has_irqchip()) {
        return no_irqchip(config_.name, irq);
    }
    std::unique_lock lock(s_->irqchip_mutex_);
    if (!s_->irq_acks_) {
        if (!h) return {};
        s_->irq_acks_ = std::make_unique<IrqAckWatcher>(*s_->fd_);
    }
    IrqAckWatcher &acks = *s_->irq_acks_;
    lock.unlock();  // the watcher has its own lock; a handler may call this
    auto set = acks.set(irq, std::move(h));
    if (!set) {
        return make_error(set.error().code(),
                          fmt::format("VM {}: {}", config_.name, set.error().message()));
    }
    return {};
}

void Vm::on_vcpu_online() {
    s_->ever_started_.store(true);
    s_->online_count_.fetch_add(1);
}

void Vm::on_vcpu_offline(Vcpu &vcpu) {
    // "Every vCPU is off" only counts once run() is waiting: before that the VMM may still be
    // starting vCPUs one by one, and an early one may finish before the next starts. run()
    // checks the count itself when it arms this (both sides seq_cst: one of them sees zero).
    if (s_->online_count_.fetch_sub(1) == 1 && s_->running_.load()) {
        stop({StopReason::kAllVcpusOff, "every vCPU is off", vcpu.id().value()});
    }
}

Status Vm::add_io_handler(std::uint16_t port, std::uint32_t count, std::string name, IoHandler h) {
    return s_->router_->add_port_range(port, count, std::move(name), std::move(h));
}

std::vector<std::pair<std::string, std::uint64_t>> Vm::port_exits() const {
    return s_->router_->port_exits();
}

std::uint64_t Vm::port_exits(std::string_view name) const {
    std::uint64_t n = 0;
    for (const auto &[handler, exits] : s_->router_->port_exits()) {
        if (handler == name) n += exits;
    }
    return n;
}

void Vm::sample_rips() {
    for (int i = 0; i < vcpu_count(); ++i) {
        Vcpu *v = vcpus_[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
        if (v != nullptr) v->sample_rip();
    }
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> Vm::rip_samples() const {
    std::unordered_map<std::uint64_t, std::uint64_t> sum;
    for (int i = 0; i < vcpu_count(); ++i) {
        const Vcpu *v = vcpus_[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
        if (v == nullptr) continue;
        for (const auto &[rip, n] : v->rip_samples()) sum[rip] += n;
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out(sum.begin(), sum.end());
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    return out;
}

std::string Vm::linux_kernel_args() const {
    return assist_ ? x86::linux_args_for_emulating_host() : std::string();
}

std::vector<std::pair<std::string, std::uint64_t>> Vm::assisted_instructions() const {
    std::array<std::uint64_t, static_cast<std::size_t>(x86::AssistedInsn::kCount)> sum{};
    for (int i = 0; i < vcpu_count(); ++i) {
        const Vcpu *v = vcpus_[static_cast<std::size_t>(i)].load(std::memory_order_acquire);
        if (v == nullptr) continue;
        for (std::size_t k = 0; k < sum.size(); ++k) {
            sum[k] += v->s_->assisted_[k].load(std::memory_order_relaxed);
        }
    }
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (std::size_t k = 0; k < sum.size(); ++k) {
        if (sum[k] != 0) {
            out.emplace_back(x86::assisted_insn_name(static_cast<x86::AssistedInsn>(k)), sum[k]);
        }
    }
    return out;
}

Status Vm::add_mmio_handler(std::uint64_t addr, std::uint64_t size, std::string name,
                            MmioHandler h) {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot add handlers");
    }
    return guest_vspace_->reserve(GuestPhysAddr(addr), size, std::move(name), std::move(h));
}

Status Vm::set_unhandled_memory_handler(MmioHandler h) {
    return s_->router_->set_unhandled_memory_handler(std::move(h));
}

Status Vm::set_unhandled_io_handler(IoHandler h) {
    return s_->router_->set_unhandled_io_handler(std::move(h));
}

Status Vm::set_event_handler(ExitEvent::Kind kind, EventHandler h) {
    return s_->router_->set_event_handler(kind, std::move(h));
}

void Vm::stop(StopInfo info) {
    {
        std::lock_guard lock(s_->stop_mutex_);
        if (s_->stop_info_) return;
        s_->stop_info_ = std::move(info);
        stopping_.store(true, std::memory_order_release);
    }
    const int count = vcpu_count();
    for (int i = 0; i < count; ++i) vcpu(i)->request_stop();
    s_->stop_cv_.notify_all();
}

void Vm::on_destroy(std::function<void()> hook) {
    if (!hook) return;
    std::lock_guard lock(s_->destroy_hooks_mutex_);
    s_->destroy_hooks_.push_back(std::move(hook));
}

std::optional<StopInfo> Vm::stop_info() const {
    std::lock_guard lock(s_->stop_mutex_);
    return s_->stop_info_;
}

Status Vm::join_all(std::optional<std::chrono::steady_clock::time_point> deadline) {
    std::lock_guard lock(s_->join_mutex_);
    const int count = vcpu_count();
    for (int i = 0; i < count; ++i) GUESTVM_TRY(vcpu(i)->stop_and_join(deadline));
    return {};
}

Status Vm::post(std::function<void()> task) {
    if (!task) return make_error(Errc::kInvalidArgument, "Vm::post: empty task");
    {
        std::lock_guard lock(s_->stop_mutex_);
        if (s_->stop_info_) {
            return make_error(Errc::kBadState, fmt::format("VM {} has stopped", name()));
        }
        s_->tasks_.push_back(std::move(task));
    }
    s_->stop_cv_.notify_all();
    return {};
}

StopInfo Vm::run() {
    s_->running_.store(true);
    if (s_->online_count_.load() == 0) {
        stop({StopReason::kAllVcpusOff,
              s_->ever_started_.load() ? "every vCPU is off" : "no vCPU was started"});
    }
    {
        std::unique_lock lock(s_->stop_mutex_);
        for (;;) {
            s_->stop_cv_.wait(lock,
                              [&] { return s_->stop_info_.has_value() || !s_->tasks_.empty(); });
            if (s_->stop_info_) break;
            auto tasks = std::move(s_->tasks_);
            s_->tasks_.clear();
            lock.unlock();
            for (auto &task : tasks) {
                if (stopped()) break;  // the rest are dropped, as those posted after the stop
                State::Turn turn(*this);
                task();
            }
            lock.lock();
        }
        s_->tasks_.clear();
    }
    auto joined = join_all(std::chrono::steady_clock::now() + config_.stop_timeout);
    std::lock_guard lock(s_->stop_mutex_);
    if (!joined) {
        // run() returns rather than hang; the destructor still waits for the thread.
        const StopInfo &why = *s_->stop_info_;
        return {StopReason::kError,
                fmt::format("{} after the VM stopped ({}: {})", joined.error().message(),
                            stop_reason_name(why.reason), why.message),
                why.vcpu};
    }
    return *s_->stop_info_;
}

ExitCounts Vm::exit_counts() const {
    ExitCounts total;
    const int count = vcpu_count();
    for (int i = 0; i < count; ++i) total += vcpu(i)->exit_counts();
    return total;
}

}  // namespace guestvm

#include "guestvm/vm.hpp"

#include <fmt/format.h>
#include <linux/kvm.h>

#include <algorithm>
#include <cstring>

#include "arch/x86/boot.hpp"
#include "arch/x86/platform_call.hpp"
#include "core/irq_ack.hpp"
#include "core/objects.hpp"
#include "core/vcpu_loop.hpp"
#include "devices/serial8250.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu_fd.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm {

namespace {
constexpr std::uint64_t kGiB = 1ull << 30;
constexpr std::uint64_t kLowRamLimit = 3 * kGiB;  // [3 GiB, 4 GiB) is the MMIO hole
constexpr std::uint64_t kMinRam = 2ull << 20;
}  // namespace

const char *stop_reason_name(StopReason reason) noexcept {
    switch (reason) {
        case StopReason::kPowerOff:
            return "power-off";
        case StopReason::kReset:
            return "reset";
        case StopReason::kAllVcpusOff:
            return "all-vcpus-off";
        case StopReason::kUnhandledExit:
            return "unhandled-exit";
        case StopReason::kGuestFault:
            return "guest-fault";
        case StopReason::kError:
            return "error";
        case StopReason::kRequested:
            return "requested";
    }
    return "unknown";
}

struct Vm::Devices {
    std::unique_ptr<Serial8250> serial;
};

Vm::Vm(PrivateTag, std::shared_ptr<Host> host, VmConfig config, std::unique_ptr<kvm::VmFd> fd,
       int capacity)
    : host_(std::move(host)),
      config_(std::move(config)),
      fd_(std::move(fd)),
      capacity_(capacity),
      vcpus_(std::make_unique<std::atomic<Vcpu *>[]>(static_cast<std::size_t>(capacity))),
      cores_(std::make_unique<std::atomic<Vcpu *>[]>(static_cast<std::size_t>(capacity))),
      boot_mode_(config_.boot_mode),
      devices_(std::make_unique<Devices>()) {}

Result<std::unique_ptr<Vm>> Vm::create(std::shared_ptr<Host> host, VmConfig config) {
    if (!host) return make_error(Errc::kInvalidArgument, "Vm::create: null host");
    const int max = host->max_vcpus();
    if (config.vcpus < 0 || config.vcpus > max) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("VM {}: {} vCPUs requested; KVM allows 0..{}", config.name,
                                      config.vcpus, max));
    }
    if ((config.ram_bytes != 0 && config.ram_bytes < kMinRam) || config.ram_bytes % 4096 != 0) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("VM {}: RAM size {:#x} must be a multiple of 4 KiB and at "
                                      "least 2 MiB (or 0: none yet)",
                                      config.name, config.ram_bytes));
    }
    if (config.ram_bytes > x86::kMaxIdentityMapped - kGiB) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("VM {}: RAM size {:#x} above the supported {} GiB", config.name,
                        config.ram_bytes, x86::kMaxIdentityMapped / kGiB - 1));
    }
    auto fd = host->kvm().create_vm();
    if (!fd) return std::unexpected(std::move(fd).error());
    const int vcpus = config.vcpus;
    auto vm = std::make_unique<Vm>(PrivateTag{}, std::move(host), std::move(config),
                                   std::make_unique<kvm::VmFd>(std::move(*fd)), max);
    GUESTVM_TRY(vm->setup());
    for (int i = 0; i < vcpus; ++i) {
        auto v = vm->add_vcpu();
        if (!v) return std::unexpected(std::move(v).error());
    }
    return vm;
}

Status Vm::setup() {
    guest_vspace_ = std::make_unique<GuestVSpace>(*fd_, vmm_vspace_, host_->kvm().memory_slots(),
                                                  fd_->check_extension(KVM_CAP_READONLY_MEM) > 0);
    vmm_vspace_.attach(guest_vspace_.get());
    GUESTVM_TRY(fd_->set_tss_addr(x86::kTssAddr));
    GUESTVM_TRY(fd_->set_identity_map_addr(x86::kIdentityMapAddr));
    if (config_.ram_bytes != 0) {
        std::uint64_t low = std::min(config_.ram_bytes, kLowRamLimit);
        GUESTVM_TRY(guest_vspace_->add_ram(GuestPhysAddr(0), low, "ram-low"));
        if (config_.ram_bytes > low) {
            GUESTVM_TRY(guest_vspace_->add_ram(GuestPhysAddr(4 * kGiB), config_.ram_bytes - low,
                                               "ram-high"));
        }
        GUESTVM_TRY(ensure_boot_tables());
    }
    if (config_.irqchip) GUESTVM_TRY(enable_irqchip());
    if (config_.serial) {
        // The line goes nowhere until the VM has an interrupt controller.
        auto irq = [this](bool level) {
            if (has_irqchip()) (void)fd_->irq_line(Serial8250::kIrq, level);
        };
        devices_->serial = std::make_unique<Serial8250>(config_.serial_sink, std::move(irq));
        Serial8250 *serial = devices_->serial.get();
        GUESTVM_TRY(add_io_handler(
            Serial8250::kBase, Serial8250::kPorts, "serial8250",
            [serial](ExitContext &ctx, IoAccess &a) { return serial->handle(ctx, a); }));
    }
    if (config_.platform_calls) {
        GUESTVM_TRY(add_io_handler(psci::kPort, 4, "platform-call", x86::platform_call_handler));
    }
    return {};
}

Status Vm::ensure_boot_tables() {
    std::lock_guard lock(boot_tables_mutex_);
    if (boot_tables_) return {};
    std::uint64_t top = 4 * kGiB;
    for (const auto &r : guest_vspace_->regions()) top = std::max(top, r.end());
    auto installed = x86::install_boot_tables(*guest_vspace_, top);
    if (!installed) {
        return std::unexpected(
            std::move(installed).error().context("boot tables need guest RAM over [0, 0x10000)"));
    }
    boot_tables_ = true;
    return {};
}

Vm::~Vm() {
    stop({StopReason::kRequested, "VM destroyed"});
    join_all();
    // Delete every capability before the objects they name go away.
    for (auto &v : owned_) {
        (void)host_->cspace().remove(v->tcb_cap_);
        (void)host_->cspace().remove(v->vcpu_cap_);
    }
}

Result<Vcpu *> Vm::add_vcpu(void *user_data, const EntryState *initial) {
    std::lock_guard lock(assign_mutex_);
    const int id = vcpu_count_.load(std::memory_order_relaxed);
    if (stopped()) {
        return make_error(Errc::kBadState, fmt::format("VM {} has stopped", name()));
    }
    if (id >= capacity_) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("VM {}: already {} vCPUs, KVM's maximum", name(), capacity_));
    }
    // Configured, then published. KVM keeps a vCPU it created until the VM goes: one that fails
    // before it is published goes back to the VM fd, and the next add_vcpu reuses it.
    auto fd = fd_->create_vcpu(id);
    if (!fd) return std::unexpected(std::move(fd).error());
    Status configured = fd->set_cpuid(x86::vcpu_cpuid(host_->kvm().supported_cpuid(), id));
    if (configured && initial != nullptr) configured = x86::apply_entry_state(*fd, *initial);
    if (!configured) {
        fd_->give_back(std::move(*fd));
        return std::unexpected(std::move(configured).error());
    }
    auto vcpu = std::make_unique<Vcpu>(Vcpu::PrivateTag{}, *this, VcpuId(id),
                                       std::make_unique<kvm::VcpuFd>(std::move(*fd)), user_data);
    auto unpublished = [&](Error e) {
        fd_->give_back(std::move(*vcpu->fd_));
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
    vcpu->tcb_object_ = std::move(tcb);
    vcpu->vcpu_object_ = std::move(obj);
    Vcpu *raw = vcpu.get();
    owned_.push_back(std::move(vcpu));
    vcpus_[static_cast<std::size_t>(id)].store(raw, std::memory_order_release);
    vcpu_count_.store(id + 1, std::memory_order_release);
    return raw;
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

Status Vm::assign_target(Vcpu &vcpu, int core) {
    std::lock_guard lock(assign_mutex_);
    return assign_locked(vcpu, core);
}

Result<Vcpu *> Vm::claim_vcpu_for_core(int core) {
    if (core < 0 || core >= capacity_) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("core {} outside 0..{}", core, capacity_ - 1));
    }
    std::lock_guard lock(assign_mutex_);
    if (Vcpu *v = vcpu_for_target(core)) return v;
    Vcpu *free = free_unassigned_vcpu();
    if (free == nullptr) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("no unassigned vCPU left for core {}", core));
    }
    GUESTVM_TRY(assign_locked(*free, core));
    return free;
}

Status Vm::start_core(int core, std::uint64_t entry, std::uint64_t arg) {
    auto vcpu = claim_vcpu_for_core(core);
    if (!vcpu) return std::unexpected(std::move(vcpu).error());
    return (*vcpu)->start(entry, boot_mode(), arg);
}

Status Vm::start_core(int core, const EntryState &state) {
    auto vcpu = claim_vcpu_for_core(core);
    if (!vcpu) return std::unexpected(std::move(vcpu).error());
    return (*vcpu)->start(state);
}

Status Vm::enable_irqchip() {
    // Under the assignment lock, which vCPU creation takes too: no vCPU appears meanwhile.
    std::lock_guard lock(assign_mutex_);
    if (has_irqchip()) return {};
    if (vcpu_count() != 0) {
        return make_error(Errc::kBadState,
                          fmt::format("VM {}: the interrupt controller must be created before "
                                      "the first vCPU ({} exist)",
                                      config_.name, vcpu_count()));
    }
    GUESTVM_TRY(fd_->create_irqchip_and_pit());
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
    return fd_->irq_line(static_cast<std::uint32_t>(irq), level);
}

Status Vm::pulse_irq(int irq) {
    GUESTVM_TRY(set_irq_line(irq, true));
    return set_irq_line(irq, false);
}

Status Vm::set_irq_ack_handler(int irq, std::function<void(int irq)> h) {
    if (!has_irqchip()) {
        return no_irqchip(config_.name, irq);
    }
    std::unique_lock lock(irqchip_mutex_);
    if (!irq_acks_) {
        if (!h) return {};
        irq_acks_ = std::make_unique<IrqAckWatcher>(*fd_);
    }
    IrqAckWatcher &acks = *irq_acks_;
    lock.unlock();  // the watcher has its own lock; a handler may call this
    auto set = acks.set(irq, std::move(h));
    if (!set) {
        return make_error(set.error().code(),
                          fmt::format("VM {}: {}", config_.name, set.error().message()));
    }
    return {};
}

std::int64_t Vm::cpu_on(std::int64_t core, std::uint64_t entry, std::uint64_t context_id) {
    if (core < 0 || core >= vcpu_count()) return psci::kInvalidParameters;
    if (!guest_vspace_->find(GuestPhysAddr(entry))) return psci::kInvalidParameters;
    // One lock around find-claim-assign-start: two CPU_ONs for the same core never start two
    // vCPUs, and two for different cores never claim the same one.
    std::lock_guard lock(assign_mutex_);
    Vcpu *v = vcpu_for_target(static_cast<int>(core));
    if (v == nullptr) {
        v = free_unassigned_vcpu();
        if (v == nullptr || !assign_locked(*v, static_cast<int>(core))) {
            return psci::kInternalFailure;
        }
    }
    auto started = v->start(entry, boot_mode(), context_id);
    if (started) return psci::kSuccess;
    return started.error().code() == Errc::kAlreadyExists ? psci::kAlreadyOn
                                                          : psci::kInternalFailure;
}

std::int64_t Vm::affinity_info(std::int64_t core) const noexcept {
    if (core < 0 || core >= vcpu_count()) return psci::kInvalidParameters;
    Vcpu *v = vcpu_for_target(static_cast<int>(core));
    return v != nullptr && v->online() ? psci::kAffinityOn : psci::kAffinityOff;
}

ExitAction Vm::cpu_off(Vcpu &vcpu) {
    vcpu.go_off();
    return ExitAction::kStopVcpu;
}

void Vm::on_vcpu_online() {
    ever_started_.store(true);
    online_count_.fetch_add(1);
}

void Vm::on_vcpu_offline(Vcpu &vcpu) {
    // "Every vCPU is off" only counts once run() is waiting: before that the VMM may still be
    // starting vCPUs one by one, and an early one may finish before the next starts. run()
    // checks the count itself when it arms this (both sides seq_cst: one of them sees zero).
    if (online_count_.fetch_sub(1) == 1 && running_.load()) {
        stop({StopReason::kAllVcpusOff, "every vCPU is off", vcpu.id().value()});
    }
}

Status Vm::add_io_handler(std::uint16_t port, std::uint32_t count, std::string name, IoHandler h) {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot add handlers");
    }
    std::unique_lock lock(bus_mutex_);
    return io_bus_.insert(port, count, std::move(name), std::move(h));
}

Status Vm::add_mmio_handler(std::uint64_t addr, std::uint64_t size, std::string name,
                            MmioHandler h) {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot add handlers");
    }
    return guest_vspace_->reserve(GuestPhysAddr(addr), size, std::move(name), std::move(h));
}

template <typename Handler>
Status Vm::replace_handler(Handler &slot, Handler h) {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot change handlers");
    }
    std::unique_lock lock(bus_mutex_);
    slot = std::move(h);
    return {};
}

Status Vm::set_unhandled_memory_handler(MmioHandler h) {
    return replace_handler(unhandled_memory_, std::move(h));
}

Status Vm::set_unhandled_io_handler(IoHandler h) {
    return replace_handler(unhandled_io_handler_, std::move(h));
}

Status Vm::set_event_handler(ExitEvent::Kind kind, EventHandler h) {
    auto index = static_cast<std::size_t>(kind);
    if (index >= event_handlers_.size()) {
        return make_error(Errc::kInvalidArgument, "unknown exit event kind");
    }
    return replace_handler(event_handlers_[index], std::move(h));
}

ExitAction Vm::unhandled_io(Vcpu &vcpu, IoAccess &access) {
    if (config_.unhandled_io == UnhandledIoPolicy::kAllOnes) {
        if (!access.is_write) std::memset(access.data.data(), 0xff, access.data.size());
        return ExitAction::kContinue;
    }
    auto regs = vcpu.registers();
    stop({StopReason::kUnhandledExit,
          fmt::format("unhandled port I/O: {} port {:#x} ({} byte{}) on vCPU {}{}",
                      access.is_write ? "out to" : "in from", access.port, access.size,
                      access.size == 1 ? "" : "s", vcpu.id().value(),
                      regs ? fmt::format(" at RIP {:#x}", regs->rip) : std::string()),
          vcpu.id().value()});
    return ExitAction::kStopVcpu;
}

void Vm::stop(StopInfo info) {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_info_) return;
        stop_info_ = std::move(info);
        stopping_.store(true, std::memory_order_release);
    }
    const int count = vcpu_count();
    for (int i = 0; i < count; ++i) vcpu(i)->request_stop();
    stop_cv_.notify_all();
}

std::optional<StopInfo> Vm::stop_info() const {
    std::lock_guard lock(stop_mutex_);
    return stop_info_;
}

void Vm::join_all() {
    std::lock_guard lock(join_mutex_);
    const int count = vcpu_count();
    for (int i = 0; i < count; ++i) vcpu(i)->stop_and_join();
}

Status Vm::post(std::function<void()> task) {
    if (!task) return make_error(Errc::kInvalidArgument, "Vm::post: empty task");
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_info_) {
            return make_error(Errc::kBadState, fmt::format("VM {} has stopped", name()));
        }
        tasks_.push_back(std::move(task));
    }
    stop_cv_.notify_all();
    return {};
}

StopInfo Vm::run() {
    running_.store(true);
    if (online_count_.load() == 0) {
        stop({StopReason::kAllVcpusOff,
              ever_started_.load() ? "every vCPU is off" : "no vCPU was started"});
    }
    {
        std::unique_lock lock(stop_mutex_);
        for (;;) {
            stop_cv_.wait(lock, [&] { return stop_info_.has_value() || !tasks_.empty(); });
            if (stop_info_) break;
            auto tasks = std::move(tasks_);
            tasks_.clear();
            lock.unlock();
            for (auto &task : tasks) task();
            lock.lock();
        }
        tasks_.clear();
    }
    join_all();
    std::lock_guard lock(stop_mutex_);
    return *stop_info_;
}

ExitCounts Vm::exit_counts() const {
    ExitCounts total;
    const int count = vcpu_count();
    for (int i = 0; i < count; ++i) total += vcpu(i)->exit_counts();
    return total;
}

const char *exit_kind_name(ExitKind kind) noexcept {
    switch (kind) {
        case ExitKind::kIo:
            return "io";
        case ExitKind::kMmio:
            return "mmio";
        case ExitKind::kHlt:
            return "hlt";
        case ExitKind::kShutdown:
            return "shutdown";
        case ExitKind::kFailEntry:
            return "fail_entry";
        case ExitKind::kInternalError:
            return "internal_error";
        case ExitKind::kSystemEvent:
            return "system_event";
        case ExitKind::kInterrupted:
            return "interrupted";
        case ExitKind::kUnknown:
            return "unknown";
        case ExitKind::kPlatformCall:
            return "platform_call";
        case ExitKind::kCount:
            break;
    }
    return "invalid";
}

std::uint64_t ExitCounts::total() const noexcept {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < by_kind.size(); ++i) {
        // Platform calls are port I/O exits already counted under kIo.
        if (i != static_cast<std::size_t>(ExitKind::kPlatformCall)) sum += by_kind[i];
    }
    return sum;
}

ExitCounts &ExitCounts::operator+=(const ExitCounts &o) noexcept {
    for (std::size_t i = 0; i < by_kind.size(); ++i) by_kind[i] += o.by_kind[i];
    return *this;
}

}  // namespace guestvm

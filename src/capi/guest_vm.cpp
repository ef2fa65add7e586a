// guestvm — the extern "C" layer with libsel4vm's names. Thin: it translates handles, types and
// errors; every decision is made by the C++ objects. No exception crosses this boundary.
#include "sel4vm/guest_vm.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "capi/capi_internal.hpp"
#include "common/handler_scope.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guest_vm_exits.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"

namespace {

using guestvm::Errc;
using guestvm::Error;
using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::mirror_of;
using guestvm::capi::vcpu_of;
using guestvm::capi::vm_of;

std::atomic<unsigned> next_vm_id{1};

// guestvm_vm_stop_reason casts StopReason to the C enum: the two must agree value by value.
template <guestvm::StopReason cpp, guestvm_stop_reason_t c>
constexpr bool same_stop_reason = static_cast<int>(cpp) == static_cast<int>(c);
static_assert(same_stop_reason<guestvm::StopReason::kPowerOff, GUESTVM_STOP_POWER_OFF>);
static_assert(same_stop_reason<guestvm::StopReason::kReset, GUESTVM_STOP_RESET>);
static_assert(same_stop_reason<guestvm::StopReason::kAllVcpusOff, GUESTVM_STOP_ALL_VCPUS_OFF>);
static_assert(same_stop_reason<guestvm::StopReason::kUnhandledExit, GUESTVM_STOP_UNHANDLED_EXIT>);
static_assert(same_stop_reason<guestvm::StopReason::kGuestFault, GUESTVM_STOP_GUEST_FAULT>);
static_assert(same_stop_reason<guestvm::StopReason::kError, GUESTVM_STOP_ERROR>);
static_assert(same_stop_reason<guestvm::StopReason::kRequested, GUESTVM_STOP_REQUESTED>);

/// The VM whose vm_run is on this thread's stack (its callbacks run here), or null.
thread_local const guestvm_vm_state *tls_running = nullptr;

/// Marks one vm_run of `state` in progress, on this thread, for its lifetime.
class RunScope {
  public:
    explicit RunScope(guestvm_vm_state &state) : state_(state) { tls_running = &state; }
    ~RunScope() {
        tls_running = nullptr;
        std::lock_guard lock(state_.run_mutex);
        --state_.runners;
        state_.run_cv.notify_all();
    }
    RunScope(const RunScope &) = delete;
    RunScope &operator=(const RunScope &) = delete;

  private:
    guestvm_vm_state &state_;
};

/// Why `fn` may not run on this thread now, or an empty string. Inside an exit handler (a vCPU
/// thread) tearing down or running a VM would wait for that thread; on vm_run's thread, for
/// that vm_run. `vm` is the VM `fn` acts on (null: any VM counts).
std::string refusal(const char *fn, const guestvm_vm_state *vm) {
    if (guestvm::in_exit_handler()) {
        return fmt::format("{}: not from an exit handler (it would wait for its own thread)", fn);
    }
    if (tls_running != nullptr && (vm == nullptr || vm == tls_running)) {
        return fmt::format(
            "{}: not from a callback on vm_run's thread (it would wait for that "
            "vm_run to return)",
            fn);
    }
    return {};
}

/// The C serial callback as a SerialSink (null stays null: output discarded).
guestvm::SerialSink serial_sink(guestvm_serial_fn fn, void *cookie) {
    if (fn == nullptr) return {};
    return [fn, cookie](int vcpu, std::string_view bytes) {
        fn(vcpu, bytes.data(), bytes.size(), cookie);
    };
}

guestvm::BootMode to_mode(guestvm_boot_mode_t mode) {
    switch (mode) {
        case GUESTVM_BOOT_PROTECTED32:
            return guestvm::BootMode::kProtected32;
        case GUESTVM_BOOT_REAL16:
            return guestvm::BootMode::kReal16;
        case GUESTVM_BOOT_LONG64:
            break;
    }
    return guestvm::BootMode::kLong64;
}

}  // namespace

extern "C" {

const char *guestvm_last_error(void) { return guestvm::capi::last_error().c_str(); }

int guestvm_vm_init(vm_t *vm, const char *name, const guestvm_vm_options_t *options) {
    return guarded(-1, [&] {
        if (vm == nullptr || name == nullptr) return fail("vm_init: NULL vm or name");
        guestvm_vm_options_t opts{};
        if (options != nullptr) opts = *options;
        if (opts.boot_mode < GUESTVM_BOOT_LONG64 || opts.boot_mode > GUESTVM_BOOT_REAL16) {
            return fail("vm_init: unknown boot mode");
        }
        constexpr unsigned kKnownDevices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
        if ((opts.devices & ~kKnownDevices) != 0) {
            return fail(
                fmt::format("vm_init: unknown device bits {:#x}", opts.devices & ~kKnownDevices));
        }
        if (opts.handler_mode != GUESTVM_HANDLERS_SERIALIZED &&
            opts.handler_mode != GUESTVM_HANDLERS_PARALLEL) {
            return fail("vm_init: unknown handler mode");
        }
        if (opts.serial != nullptr && (opts.devices & GUESTVM_DEVICE_SERIAL) == 0) {
            return fail(
                "vm_init: a serial sink but no UART: add GUESTVM_DEVICE_SERIAL to "
                "options.devices (a libsel4vm VM has no device of guestvm's unless asked)");
        }
        auto host = guestvm::Host::process_default();
        if (!host) return fail(host.error());
        auto state = std::make_unique<guestvm_vm_state>();
        state->name = name;
        guestvm::MachineConfig config;
        config.name = name;
        config.ram_bytes = opts.ram_bytes;
        config.vcpus = 0;
        config.boot_mode = to_mode(opts.boot_mode);
        // As libsel4vm: none of guestvm's devices unless asked (VMMs bring their own COM1).
        config.serial = (opts.devices & GUESTVM_DEVICE_SERIAL) != 0;
        config.platform_calls = (opts.devices & GUESTVM_DEVICE_PLATFORM_CALL) != 0;
        // libsel4vm's behaviour: a port nobody handles reads all ones, writes are ignored.
        config.unhandled_io = guestvm::UnhandledIoPolicy::kAllOnes;
        // libsel4vm's order: vm_create_default_irq_controller may follow vm_create_vcpu.
        config.defer_kvm_vcpus = true;
        // libsel4vm's one-thread semantics unless the VMM opts out.
        config.serialize_handlers = opts.handler_mode == GUESTVM_HANDLERS_SERIALIZED;
        config.serial_sink = serial_sink(opts.serial, opts.serial_cookie);
        // Mirrors follow the C++ state; relaxed atomic stores keep concurrent C readers sane.
        config.vcpu_state_observer = [](guestvm::Vcpu &v, guestvm::VcpuState s) {
            if (auto *m = mirror_of(&v)) {
                bool online =
                    s == guestvm::VcpuState::kRunning || s == guestvm::VcpuState::kSuspended;
                __atomic_store_n(&m->vcpu_online, online, __ATOMIC_RELEASE);
            }
        };
        config.vcpu_assign_observer = [](guestvm::Vcpu &v, int core) {
            if (auto *m = mirror_of(&v)) __atomic_store_n(&m->target_cpu, core, __ATOMIC_RELEASE);
        };
        auto created = guestvm::build_machine(std::move(*host), std::move(config));
        if (!created) return fail(created.error());
        std::memset(static_cast<void *>(vm), 0, sizeof(*vm));
        state->vm = std::move(*created);
        vm->vm_name = state->name.data();
        vm->vm_id = next_vm_id.fetch_add(1);
        vm->run.exit_reason = VM_GUEST_UNKNOWN_EXIT;  // as libsel4vm's vm_init
        vm->mem.vm_vspace = {&state->vm->vspace(), GUESTVM_VSPACE_GUEST};
        vm->mem.vmm_vspace = {&state->vm->vmm_vspace(), GUESTVM_VSPACE_VMM};
        vm->guestvm = state.release();  // owned by vm_t until vm_destroy
        vm->vm_initialised = true;
        for (const auto &r : vm->guestvm->vm->vspace().regions()) {
            if (r.is_ram()) guestvm::capi::record_ram(vm, r.base.value(), r.size);
        }
        return 0;
    });
}

int guestvm_vm_set_handler_mode(vm_t *vm, guestvm_handler_mode_t mode) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("guestvm_vm_set_handler_mode: NULL or uninitialised vm");
        // A C caller may pass any int: read the bits, not the enum (a load of an enum holding
        // no enumerator's value is undefined in C++, and UBSan reports it).
        std::underlying_type_t<guestvm_handler_mode_t> raw;
        std::memcpy(&raw, &mode, sizeof raw);
        if (raw != GUESTVM_HANDLERS_SERIALIZED && raw != GUESTVM_HANDLERS_PARALLEL) {
            return fail(fmt::format("guestvm_vm_set_handler_mode: unknown mode {}", raw));
        }
        auto set = v->set_serialize_handlers(raw == GUESTVM_HANDLERS_SERIALIZED);
        return set ? 0 : fail(std::move(set).error().context("guestvm_vm_set_handler_mode"));
    });
}

int guestvm_vm_add_serial(vm_t *vm, guestvm_serial_fn serial, void *cookie) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("guestvm_vm_add_serial: NULL or uninitialised vm");
        auto added = guestvm::attach_serial(*v, serial_sink(serial, cookie));
        return added ? 0 : fail(std::move(added).error().context("guestvm_vm_add_serial"));
    });
}

int guestvm_vm_add_platform_call(vm_t *vm) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("guestvm_vm_add_platform_call: NULL or uninitialised vm");
        auto added = guestvm::attach_platform_call(*v);
        return added ? 0 : fail(std::move(added).error().context("guestvm_vm_add_platform_call"));
    });
}

int vm_init(vm_t *vm, vka_t *vka, simple_t *host_simple, vspace_t, ps_io_ops_t *io_ops,
            seL4_CPtr host_endpoint, const char *name) {
    if (guestvm_vm_init(vm, name, nullptr) != 0) return -1;
    // Kept as libsel4vm keeps them, for VMM code that reads them back; guestvm uses none.
    vm->vka = vka;
    vm->simple = host_simple;
    vm->io_ops = io_ops;
    vm->host_endpoint = host_endpoint;
    return 0;
}

int vm_destroy(vm_t *vm) {
    return guarded(-1, [&] {
        if (vm == nullptr || vm->guestvm == nullptr)
            return fail("vm_destroy: NULL or uninitialised vm");
        if (auto why = refusal("vm_destroy", vm->guestvm); !why.empty()) return fail(why);
        {
            // A vm_run on another thread returns before anything it uses goes away.
            guestvm_vm_state &running = *vm->guestvm;
            std::unique_lock lock(running.run_mutex);
            running.destroying = true;
            running.vm->stop({guestvm::StopReason::kRequested, "VM destroyed"});
            running.run_cv.wait(lock, [&] { return running.runners == 0; });
        }
        std::unique_ptr<guestvm_vm_state> state(vm->guestvm);
        vm->guestvm = nullptr;
        state.reset();  // joins threads, deletes caps, frees memory
        std::memset(static_cast<void *>(vm), 0, sizeof(*vm));
        return 0;
    });
}

vm_vcpu_t *vm_create_vcpu(vm_t *vm, int priority) {
    return guarded<vm_vcpu_t *>(nullptr, [&]() -> vm_vcpu_t * {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_create_vcpu: NULL or uninitialised vm"), nullptr;
        if (priority < 0 || priority > 255) {
            return fail(fmt::format("vm_create_vcpu: priority {} outside 0..255", priority)),
                   nullptr;
        }
        std::lock_guard creating(vm->guestvm->create_mutex);
        if (v->vcpu_count() >= GUESTVM_MAX_VCPUS) {
            return fail(fmt::format("vm_create_vcpu: already {} vCPUs", GUESTVM_MAX_VCPUS)),
                   nullptr;
        }
        auto mirror = std::make_unique<vm_vcpu_t>();
        mirror->vm = vm;
        mirror->target_cpu = -1;
        mirror->tcb.priority = priority;
        // libsel4vm's x86 vCPU starts in 32-bit protected mode, flat segments, paging off.
        guestvm::EntryState initial;
        initial.mode = guestvm::BootMode::kProtected32;
        initial.rip = vm->entry & 0xffffffffu;
        // Configure, then publish: the C++ vCPU points at the mirror as soon as it is visible,
        // so nothing may fail once add_vcpu has succeeded (room for the mirror is made first).
        auto &state = *vm->guestvm;
        state.vcpus.reserve(state.vcpus.size() + 1);
        state.state_written.reserve(state.state_written.size() + 1);
        auto written = std::make_unique<std::atomic<bool>>(false);
        vm_vcpu_t *raw = mirror.get();
        // The mirror is complete before the vCPU is visible: a guest's CPU_ON may start it, and
        // its handlers get this mirror, the moment add_vcpu publishes it.
        auto fill_mirror = [&](guestvm::Vcpu &cpp) {
            raw->vcpu.cptr = cpp.cap().value();
            raw->tcb.tcb.cptr = cpp.tcb().value();
            raw->vcpu_id = static_cast<unsigned>(cpp.id().value());
            raw->guestvm = &cpp;
            state.vcpus.push_back(std::move(mirror));  // room reserved above: cannot throw
            state.state_written.push_back(std::move(written));
            vm->vcpus[raw->vcpu_id] = raw;
            vm->num_vcpus = raw->vcpu_id + 1;
        };
        auto created = v->add_vcpu(raw, &initial, fill_mirror);
        if (!created) return fail(created.error()), nullptr;
        // Cannot fail: the range is checked above and the thread does not exist yet (the
        // priority is applied when it starts; Vcpu::thread_attributes() says how that went).
        (void)(*created)->set_priority(priority);
        return raw;
    });
}

int vm_assign_vcpu_target(vm_vcpu_t *vcpu, int target_cpu) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail("vm_assign_vcpu_target: NULL vcpu");
        if (target_cpu < 0 || target_cpu >= GUESTVM_MAX_VCPUS) {
            return fail(fmt::format("vm_assign_vcpu_target: core {} outside 0..{}", target_cpu,
                                    GUESTVM_MAX_VCPUS - 1));
        }
        auto assigned = v->vm().assign_target(*v, target_cpu);
        return assigned ? 0 : fail(assigned.error());
    });
}

int vcpu_start(vm_vcpu_t *vcpu) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail("vcpu_start: NULL vcpu");
        int core = v->target_core();
        const auto &written = vcpu->vm->guestvm->state_written;
        const bool keep = vcpu->vcpu_id < written.size() &&
                          written[vcpu->vcpu_id]->load(std::memory_order_acquire);
        // State the VMM wrote (thread context, VMCS fields) is what it starts with; otherwise
        // guestvm's convenience: vm->entry in the VM's boot mode, the core id in RDI.
        auto started =
            keep ? v->start_current()
                 : v->start(vcpu->vm->entry, v->vm().boot_mode(),
                            static_cast<std::uint64_t>(core >= 0 ? core : v->id().value()));
        return started ? 0 : fail(started.error());
    });
}

int vm_run(vm_t *vm) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_run: NULL or uninitialised vm");
        if (auto why = refusal("vm_run", nullptr); !why.empty()) return fail(why);
        guestvm_vm_state &state = *vm->guestvm;
        {
            std::lock_guard lock(state.run_mutex);
            if (state.destroying) return fail("vm_run: the VM is being destroyed");
            ++state.runners;
        }
        RunScope scope(state);
        vm->run.exit_reason = -1;  // as libsel4vm: running, no exit reason yet
        guestvm::StopInfo info = v->run();
        switch (info.reason) {
            case guestvm::StopReason::kPowerOff:
            case guestvm::StopReason::kReset:
            case guestvm::StopReason::kAllVcpusOff:
            case guestvm::StopReason::kRequested:
                vm->run.exit_reason = VM_GUEST_UNKNOWN_EXIT;
                return 0;
            default:
                break;
        }
        vm->run.exit_reason = VM_GUEST_ERROR_EXIT;
        return fail(info.message);
    });
}

int vm_register_unhandled_mem_fault_callback(vm_t *vm,
                                             unhandled_mem_fault_callback_fn fault_handler,
                                             void *cookie) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("NULL or uninitialised vm");
        guestvm::MmioHandler handler;
        if (fault_handler != nullptr) {
            handler = [vm, fault_handler, cookie](guestvm::ExitContext &ctx,
                                                  guestvm::MmioAccess &a) {
                return guestvm::capi::call_fault_callback(vm, ctx, a, fault_handler, cookie);
            };
        }
        auto set = v->set_unhandled_memory_handler(std::move(handler));
        if (!set) return fail(set.error());
        vm->mem.unhandled_mem_fault_handler = fault_handler;
        vm->mem.unhandled_mem_fault_cookie = cookie;
        return 0;
    });
}

int vm_register_notification_callback(vm_t *vm, notification_callback_fn notification_callback,
                                      void *cookie) {
    return guarded(-1, [&] {
        if (vm_of(vm) == nullptr) return fail("vm_register_notification_callback: NULL vm");
        __atomic_store_n(&vm->run.notification_callback_cookie, cookie, __ATOMIC_RELEASE);
        __atomic_store_n(&vm->run.notification_callback, notification_callback, __ATOMIC_RELEASE);
        return 0;
    });
}

int guestvm_vm_notify(vm_t *vm, seL4_Word badge) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("guestvm_vm_notify: NULL or uninitialised vm");
        auto posted = v->post([vm, v, badge] {
            auto callback = __atomic_load_n(&vm->run.notification_callback, __ATOMIC_ACQUIRE);
            void *cookie = __atomic_load_n(&vm->run.notification_callback_cookie, __ATOMIC_ACQUIRE);
            if (callback == nullptr) return;
            seL4_MessageInfo_t tag{};
            if (callback(vm, badge, tag, cookie) != 0) {
                v->stop({guestvm::StopReason::kError,
                         fmt::format("notification callback failed (badge {:#x})", badge)});
            }
        });
        return posted ? 0 : fail(posted.error());
    });
}

int vm_ram_register_at(vm_t *vm, uintptr_t start, size_t bytes, bool) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_ram_register_at: NULL or uninitialised vm");
        if (guestvm::capi::in_anon_pool(vm, start, bytes, "vm_ram_register_at")) return -1;
        // libsel4vm maps whole pages around any range (camkes-vm registers [0x500, 0x80000))
        // and records the range as given in vm->mem.ram_regions.
        auto span = guestvm::capi::page_span(start, bytes, "vm_ram_register_at");
        if (!span) return fail(span.error());
        auto added = v->vspace().add_ram(guestvm::GuestPhysAddr(span->base), span->size,
                                         fmt::format("ram@{:#x}", start));
        if (!added) return fail(added.error());
        guestvm::capi::record_ram(vm, start, bytes);
        return 0;
    });
}

int guestvm_vm_load_elf(vm_t *vm, const char *path) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr || path == nullptr) return fail("guestvm_vm_load_elf: NULL argument");
        auto image =
            guestvm::ImageFile::open(path, guestvm::ram_total(guestvm::ram_ranges(v->vspace())));
        if (!image) return fail(image.error());
        auto loaded = guestvm::load_elf(v->vspace(), image->bytes());
        if (!loaded) return fail(loaded.error());
        vm->entry = loaded->entry.rip;
        v->set_boot_mode(loaded->entry.mode);
        return 0;
    });
}

vm_vcpu_t *guestvm_vm_claim_vcpu_for_target(vm_t *vm, int target_cpu) {
    return guarded<vm_vcpu_t *>(nullptr, [&]() -> vm_vcpu_t * {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("NULL or uninitialised vm"), nullptr;
        auto claimed = v->claim_vcpu_for_core(target_cpu);
        if (!claimed) return fail(claimed.error()), nullptr;
        return mirror_of(*claimed);
    });
}

int guestvm_vm_stop(vm_t *vm) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("guestvm_vm_stop: NULL or uninitialised vm");
        v->stop({guestvm::StopReason::kRequested, "stop requested through guestvm_vm_stop"});
        return 0;
    });
}

guestvm_stop_reason_t guestvm_vm_stop_reason(vm_t *vm, char *message, size_t size) {
    return guarded(GUESTVM_STOP_NONE, [&] {
        guestvm::Vm *v = vm_of(vm);
        auto info = v != nullptr ? v->stop_info() : std::nullopt;
        if (message != nullptr && size > 0) {
            std::string text = info ? info->message : std::string();
            std::size_t n = std::min(size - 1, text.size());
            std::memcpy(message, text.data(), n);
            message[n] = '\0';
        }
        return info ? static_cast<guestvm_stop_reason_t>(info->reason) : GUESTVM_STOP_NONE;
    });
}

int guestvm_vspace_regions(vspace_t *vspace, guestvm_region_t *out, size_t max) {
    return guarded(-1, [&] {
        if (vspace == nullptr || vspace->data == nullptr) return fail("NULL or unbound vspace");
        std::vector<guestvm_region_t> regions;
        if (vspace->kind == GUESTVM_VSPACE_GUEST) {
            for (const auto &r : static_cast<guestvm::GuestVSpace *>(vspace->data)->regions()) {
                regions.push_back({r.base.value(), r.size, reinterpret_cast<std::uint64_t>(r.host),
                                   UINT64_MAX, !r.read_only()});
            }
        } else if (vspace->kind == GUESTVM_VSPACE_VMM) {
            for (const auto &m : static_cast<guestvm::VmmVSpace *>(vspace->data)->mappings()) {
                regions.push_back({m.addr.value(), m.size, m.addr.value(),
                                   m.guest ? m.guest->value() : UINT64_MAX, (m.prot & 2) != 0});
            }
        } else {
            return fail("vspace of unknown kind");
        }
        if (out != nullptr) std::copy_n(regions.begin(), std::min(max, regions.size()), out);
        return static_cast<int>(regions.size());
    });
}

int guestvm_vspace_translate(vspace_t *vspace, uint64_t addr, size_t len, uint64_t *out) {
    return guarded(-1, [&] {
        if (vspace == nullptr || vspace->data == nullptr || out == nullptr) {
            return fail("guestvm_vspace_translate: NULL argument");
        }
        if (vspace->kind == GUESTVM_VSPACE_GUEST) {
            auto host = static_cast<guestvm::GuestVSpace *>(vspace->data)
                            ->translate(guestvm::GuestPhysAddr(addr), len);
            if (!host) return fail(host.error());
            *out = reinterpret_cast<std::uint64_t>(*host);
            return 0;
        }
        if (vspace->kind == GUESTVM_VSPACE_VMM) {
            auto *vmm = static_cast<guestvm::VmmVSpace *>(vspace->data);
            if (!vmm->find(guestvm::HostVirtAddr(addr), len)) {
                return fail(
                    fmt::format("host range {:#x} +{:#x} is not inside one mapping", addr, len));
            }
            auto gpa = vmm->to_guest(guestvm::HostVirtAddr(addr));
            if (!gpa) return fail(gpa.error());
            *out = gpa->value();
            return 0;
        }
        return fail("vspace of unknown kind");
    });
}

// ---- the guest VM util interface ----

seL4_CPtr vm_get_vcpu_tcb(vm_vcpu_t *vcpu) {
    guestvm::Vcpu *v = vcpu_of(vcpu);
    return v != nullptr ? v->tcb().value() : seL4_CapNull;
}

seL4_CPtr vm_get_vcpu(vm_t *vm, int vcpu_id) {
    guestvm::Vm *v = vm_of(vm);
    return v != nullptr ? v->vcpu_cap(vcpu_id).value() : seL4_CapNull;
}

vm_vcpu_t *vm_vcpu_for_target_cpu(vm_t *vm, int target_cpu) {
    guestvm::Vm *v = vm_of(vm);
    return v != nullptr ? mirror_of(v->vcpu_for_target(target_cpu)) : nullptr;
}

vm_vcpu_t *vm_find_free_unassigned_vcpu(vm_t *vm) {
    guestvm::Vm *v = vm_of(vm);
    return v != nullptr ? mirror_of(v->free_unassigned_vcpu()) : nullptr;
}

bool is_vcpu_online(vm_vcpu_t *vcpu) {
    guestvm::Vcpu *v = vcpu_of(vcpu);
    return v != nullptr && v->online();
}

vspace_t *vm_get_vspace(vm_t *vm) { return vm_of(vm) != nullptr ? &vm->mem.vm_vspace : nullptr; }

vspace_t *vm_get_vmm_vspace(vm_t *vm) {
    return vm_of(vm) != nullptr ? &vm->mem.vmm_vspace : nullptr;
}

}  // extern "C"

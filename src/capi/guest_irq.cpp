// libsel4vm's guest_irq_controller.h over KVM's in-kernel irqchip.
#include <fmt/format.h>

#include <atomic>
#include <memory>

#include "capi/capi_internal.hpp"
#include "sel4vm/guest_irq_controller.h"

using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::vcpu_of;
using guestvm::capi::vm_of;

namespace {

/// Makes `ack_fn` the acknowledgement callback of line `irq` (null removes it). The VM has its
/// interrupt controller.
guestvm::Status install_ack(guestvm::Vm &vm, vm_vcpu_t *vcpu, int irq, irq_ack_fn_t ack_fn,
                            void *cookie) {
    std::function<void(int)> handler;
    if (ack_fn != nullptr) {
        // From KVM's interrupt thread to vm_run's thread, where libsel4vm calls it. Once the
        // VM has stopped there is no run loop left to call it: the acknowledgement is dropped.
        // At most one call waits per line: acknowledgements that come before it runs are
        // the same news, however many the guest makes.
        auto queued = std::make_shared<std::atomic<bool>>(false);
        handler = [&vm, vcpu, ack_fn, cookie, queued](int line) {
            if (queued->exchange(true)) return;
            auto posted = vm.post([vcpu, ack_fn, cookie, line, queued] {
                queued->store(false);  // before the call: an ack it provokes is news
                ack_fn(vcpu, line, cookie);
            });
            if (!posted) queued->store(false);
        };
    }
    return vm.set_irq_ack_handler(irq, std::move(handler));
}

}  // namespace

int vm_create_default_irq_controller(vm_t *vm) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_create_default_irq_controller: NULL or uninitialised vm");
        auto &state = *vm->guestvm;
        std::lock_guard lock(state.irq_mutex);
        // KVM's PICs, IOAPIC and local APICs, but not its PIT: libsel4vm VMMs bring their own
        // (camkes-vm's i8254.c on ports 0x40-0x43), which KVM's would hide.
        auto made = v->enable_irqchip(/*kernel_pit=*/false);
        if (!made) return fail(made.error());
        // Registrations made before the controller take effect now; one that cannot stays
        // recorded, so calling this again retries it.
        for (int irq = 0; irq < guestvm::Vm::kIrqLines; ++irq) {
            auto &pending = state.pending_irqs[static_cast<std::size_t>(irq)];
            if (!pending) continue;
            auto done = install_ack(*v, pending->vcpu, irq, pending->ack, pending->cookie);
            if (!done) {
                return fail(
                    fmt::format("vm_create_default_irq_controller: the controller "
                                "exists, but IRQ {} registered before it: {}",
                                irq, done.error().message()));
            }
            pending.reset();
        }
        return 0;
    });
}

int vm_set_irq_level(vm_vcpu_t *vcpu, int irq, int irq_level) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail("vm_set_irq_level: NULL vcpu");
        auto done = v->vm().set_irq_line(irq, irq_level != 0);
        return done ? 0 : fail(done.error());
    });
}

int vm_inject_irq(vm_vcpu_t *vcpu, int irq) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail("vm_inject_irq: NULL vcpu");
        auto done = v->vm().pulse_irq(irq);
        return done ? 0 : fail(done.error());
    });
}

int vm_register_irq(vm_vcpu_t *vcpu, int irq, irq_ack_fn_t ack_fn, void *cookie) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr || vcpu->vm == nullptr || vcpu->vm->guestvm == nullptr) {
            return fail("vm_register_irq: NULL vcpu");
        }
        if (irq < 0 || irq >= guestvm::Vm::kIrqLines) {
            return fail(fmt::format("vm_register_irq: IRQ {} is not a line 0..{}", irq,
                                    guestvm::Vm::kIrqLines - 1));
        }
        guestvm::Vm &vm = v->vm();
        auto &state = *vcpu->vm->guestvm;
        std::lock_guard lock(state.irq_mutex);
        if (!vm.has_irqchip()) {
            // libsel4vm records it whatever the controller; here it waits for the controller.
            auto &pending = state.pending_irqs[static_cast<std::size_t>(irq)];
            if (ack_fn == nullptr) {
                pending.reset();
            } else {
                pending = guestvm_vm_state::PendingIrq{vcpu, ack_fn, cookie};
            }
            return 0;
        }
        auto done = install_ack(vm, vcpu, irq, ack_fn, cookie);
        return done ? 0 : fail(done.error());
    });
}

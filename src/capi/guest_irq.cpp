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

int vm_create_default_irq_controller(vm_t *vm) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_create_default_irq_controller: NULL or uninitialised vm");
        auto made = v->enable_irqchip();
        return made ? 0 : fail(made.error());
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
        if (v == nullptr) return fail("vm_register_irq: NULL vcpu");
        guestvm::Vm &vm = v->vm();
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
        auto done = vm.set_irq_ack_handler(irq, std::move(handler));
        return done ? 0 : fail(done.error());
    });
}

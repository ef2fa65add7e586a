// libsel4vm's x86 I/O-port interface over guestvm's port bus.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "capi/capi_internal.hpp"
#include "devices/host_ports.hpp"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/arch/vmcall.h"

using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::mirror_of;
using guestvm::capi::vcpu_of;
using guestvm::capi::vm_of;

namespace {

unsigned int read_value(const guestvm::IoAccess &a) {
    unsigned int v = 0;
    std::memcpy(&v, a.data.data(), std::min<std::size_t>(a.data.size(), sizeof(v)));
    return v;
}

void write_value(guestvm::IoAccess &a, unsigned int v) {
    std::memcpy(a.data.data(), &v, std::min<std::size_t>(a.data.size(), sizeof(v)));
}

// libsel4vm's answer → guestvm's. UNHANDLED from a range's own handler means "all ones / drop".
guestvm::ExitAction to_action(ioport_fault_result_t r, guestvm::ExitContext &ctx,
                              guestvm::IoAccess &a) {
    switch (r) {
        case IO_FAULT_HANDLED:
            return guestvm::ExitAction::kContinue;
        case IO_FAULT_UNHANDLED:
            if (!a.is_write) std::memset(a.data.data(), 0xff, a.data.size());
            return guestvm::ExitAction::kContinue;
        default:
            return ctx.fail(guestvm::Error(
                guestvm::Errc::kBadState,
                fmt::format("the VMM's handler answered IO_FAULT_ERROR ({}) for {} port {:#x}",
                            static_cast<int>(r), a.is_write ? "a write to" : "a read from",
                            a.port)));
    }
}

}  // namespace

int vm_io_port_add_handler(vm_t *vm, vm_ioport_range_t range, vm_ioport_interface_t iface) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_io_port_add_handler: NULL or uninitialised vm");
        if (range.start > range.end) {
            return fail(fmt::format("vm_io_port_add_handler: range {:#x}-{:#x} is backwards",
                                    range.start, range.end));
        }
        std::string name = iface.desc != nullptr ? iface.desc : "ioport";
        auto added = v->add_io_handler(
            range.start, static_cast<std::uint32_t>(range.end) - range.start + 1, name,
            [iface](guestvm::ExitContext &ctx, guestvm::IoAccess &a) {
                vm_vcpu_t *vcpu = mirror_of(ctx.vcpu);
                if (a.is_write) {
                    if (iface.port_out == nullptr) return guestvm::ExitAction::kContinue;
                    return to_action(
                        iface.port_out(vcpu, iface.cookie, a.port, a.size, read_value(a)), ctx, a);
                }
                if (iface.port_in == nullptr) return to_action(IO_FAULT_UNHANDLED, ctx, a);
                unsigned int value = 0;
                auto r = iface.port_in(vcpu, iface.cookie, a.port, a.size, &value);
                if (r == IO_FAULT_HANDLED) write_value(a, value);
                return to_action(r, ctx, a);
            });
        if (!added) return fail(added.error());
        // vm->arch.ioport_list, as libsel4vm keeps it: every handler, sorted by first port.
        auto &list = vm->guestvm->ioports;
        auto at = std::upper_bound(
            list.begin(), list.end(), range.start,
            [](std::uint16_t port, const vm_ioport_entry_t &e) { return port < e.range.start; });
        list.insert(at, vm_ioport_entry_t{range, iface});
        vm->arch.ioport_list.num_ioports = static_cast<int>(list.size());
        vm->arch.ioport_list.ioports = list.data();
        return 0;
    });
}

int vm_register_unhandled_ioport_callback(vm_t *vm, unhandled_ioport_callback_fn callback,
                                          void *cookie) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) {
            return fail("vm_register_unhandled_ioport_callback: NULL or uninitialised vm");
        }
        guestvm::IoHandler handler;
        if (callback != nullptr) {
            handler = [callback, cookie](guestvm::ExitContext &ctx, guestvm::IoAccess &a) {
                unsigned int value = a.is_write ? read_value(a) : 0;
                auto r = callback(mirror_of(ctx.vcpu), a.port, !a.is_write, &value, a.size, cookie);
                if (r == IO_FAULT_HANDLED && !a.is_write) write_value(a, value);
                return to_action(r, ctx, a);
            };
        }
        auto set = v->set_unhandled_io_handler(std::move(handler));
        if (!set) return fail(set.error());
        vm->arch.unhandled_ioport_callback = callback;
        vm->arch.unhandled_ioport_callback_cookie = cookie;
        return 0;
    });
}

int vm_enable_passthrough_ioport(vm_vcpu_t *vcpu, uint16_t port_start, uint16_t port_end) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail("vm_enable_passthrough_ioport: NULL vcpu");
        if (port_start > port_end) {
            return fail(fmt::format("vm_enable_passthrough_ioport: range {:#x}-{:#x} is backwards",
                                    port_start, port_end));
        }
        const std::uint32_t count = std::uint32_t{port_end} - port_start + 1;
        auto ports = guestvm::HostPorts::open(port_start, count);
        if (!ports) {
            return fail(std::move(ports).error().context(
                "vm_enable_passthrough_ioport: the host refuses its ports to this process; "
                "emulate the device with vm_io_port_add_handler instead"));
        }
        auto added =
            v->vm().add_io_handler(port_start, count, fmt::format("passthrough@{:#x}", port_start),
                                   guestvm::port_handler(port_start, std::move(*ports)));
        return added ? 0 : fail(std::move(added).error().context("vm_enable_passthrough_ioport"));
    });
}

int vm_reg_new_vmcall_handler(vm_t *vm, vmcall_handler, int token) {
    return guarded(-1, [&] {
        if (vm_of(vm) == nullptr)
            return fail("vm_reg_new_vmcall_handler: NULL or uninitialised vm");
        return fail(
            fmt::format("vm_reg_new_vmcall_handler: token {}: KVM handles a guest's VMCALL in "
                        "the kernel (only its Xen emulation forwards them, which guestvm does "
                        "not use); use a port (vm_io_port_add_handler)",
                        token));
    });
}

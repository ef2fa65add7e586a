#include "guestvm/invoke.hpp"

#include "core/objects.hpp"
#include "guestvm/vcpu.hpp"

namespace guestvm {

namespace {

// Looks `cap` up as an object of type Obj and runs fn(vcpu) while the object cannot be revoked.
template <typename Obj, typename F>
auto invoke(const CSpace &cspace, CPtr cap, ObjectType type, F &&fn)
    -> decltype(fn(std::declval<Vcpu &>())) {
    auto object = cspace.lookup(cap, type);
    if (!object) return std::unexpected(std::move(object).error());
    const auto &typed = static_cast<const Obj &>(**object);
    return typed.with_live(
        [&]() -> decltype(fn(std::declval<Vcpu &>())) { return fn(*typed.vcpu); });
}

template <typename F>
auto on_tcb(const CSpace &cspace, CPtr cap, F &&fn) {
    return invoke<TcbObject>(cspace, cap, ObjectType::kTcb, std::forward<F>(fn));
}

}  // namespace

namespace tcb {
Status suspend(const CSpace &cs, CPtr t) {
    return on_tcb(cs, t, [](Vcpu &v) { return v.suspend(); });
}
Status resume(const CSpace &cs, CPtr t) {
    return on_tcb(cs, t, [](Vcpu &v) { return v.resume(); });
}
Result<Registers> read_registers(const CSpace &cs, CPtr t) {
    return on_tcb(cs, t, [](Vcpu &v) { return v.registers(); });
}
Status write_registers(const CSpace &cs, CPtr t, const Registers &regs) {
    return on_tcb(cs, t, [&](Vcpu &v) { return v.set_registers(regs); });
}
Status set_name(const CSpace &cs, CPtr t, std::string name) {
    return on_tcb(cs, t, [&](Vcpu &v) { return v.set_name(std::move(name)); });
}
Status set_priority(const CSpace &cs, CPtr t, int priority) {
    return on_tcb(cs, t, [&](Vcpu &v) { return v.set_priority(priority); });
}
Status set_affinity(const CSpace &cs, CPtr t, int host_cpu) {
    return on_tcb(cs, t, [&](Vcpu &v) { return v.set_affinity(host_cpu); });
}
}  // namespace tcb

namespace vcpu_object {
Result<SpecialRegisters> read_state(const CSpace &cs, CPtr c) {
    return invoke<VcpuObject>(cs, c, ObjectType::kVcpu,
                              [](Vcpu &v) { return v.special_registers(); });
}
Status write_state(const CSpace &cs, CPtr c, const SpecialRegisters &state) {
    return invoke<VcpuObject>(cs, c, ObjectType::kVcpu,
                              [&](Vcpu &v) { return v.set_special_registers(state); });
}
}  // namespace vcpu_object

}  // namespace guestvm

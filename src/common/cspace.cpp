#include "guestvm/cspace.hpp"

#include <fmt/format.h>

namespace guestvm {

const char *object_type_name(ObjectType type) noexcept {
    switch (type) {
        case ObjectType::kTcb:
            return "TCB";
        case ObjectType::kVcpu:
            return "VCPU";
        case ObjectType::kFrame:
            return "Frame";
    }
    return "unknown";
}

CSpace::CSpace() { slots_.emplace_back(); }  // slot 0: seL4_CapNull

Result<CPtr> CSpace::insert(std::shared_ptr<KernelObject> object) {
    if (!object) {
        return make_error(Errc::kInvalidArgument, "CSpace::insert: null object");
    }
    std::unique_lock lock(mutex_);
    std::size_t index;
    if (!free_.empty()) {
        index = free_.back();
        free_.pop_back();
    } else {
        if (slots_.size() >= kMaxSlots) {
            return make_error(Errc::kResourceExhausted,
                              fmt::format("CSpace full ({} slots)", kMaxSlots));
        }
        index = slots_.size();
        slots_.emplace_back();
    }
    Slot &slot = slots_[index];
    slot.object = std::move(object);
    ++live_;
    return CPtr((slot.generation << kIndexBits) | index);
}

Result<std::size_t> CSpace::index_of(CPtr cap) const {
    if (cap == kNullCap) {
        return make_error(Errc::kNullCapability, "invocation of seL4_CapNull");
    }
    std::uint64_t index = cap.value() & kIndexMask;
    std::uint64_t generation = cap.value() >> kIndexBits;
    if (index == 0 || index >= slots_.size() || slots_[index].generation != generation ||
        !slots_[index].object) {
        return make_error(Errc::kStaleCapability,
                          fmt::format("capability {:#x} names no live object", cap.value()));
    }
    return static_cast<std::size_t>(index);
}

Status CSpace::remove(CPtr cap) {
    std::shared_ptr<KernelObject> object;
    {
        std::unique_lock lock(mutex_);
        auto index = index_of(cap);
        if (!index) return std::unexpected(std::move(index).error());
        Slot &slot = slots_[*index];
        object = std::move(slot.object);
        slot.object.reset();
        ++slot.generation;
        free_.push_back(static_cast<std::uint32_t>(*index));
        --live_;
    }
    object->revoke();  // outside the CSpace lock: may wait for an invocation in progress
    return {};
}

Result<std::shared_ptr<KernelObject>> CSpace::lookup(CPtr cap, ObjectType type) const {
    std::shared_lock lock(mutex_);
    auto index = index_of(cap);
    if (!index) return std::unexpected(std::move(index).error());
    const auto &object = slots_[*index].object;
    if (object->type() != type) {
        return make_error(Errc::kWrongCapType,
                          fmt::format("capability {:#x} names a {} object, not a {}", cap.value(),
                                      object_type_name(object->type()), object_type_name(type)));
    }
    return object;
}

std::size_t CSpace::live() const {
    std::shared_lock lock(mutex_);
    return live_;
}

std::size_t CSpace::slots() const {
    std::shared_lock lock(mutex_);
    return slots_.size();
}

}  // namespace guestvm

#include "guestvm/cspace.hpp"

#include <fmt/format.h>

#include <shared_mutex>

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

struct CSpace::Slots {
    struct Slot {
        std::shared_ptr<KernelObject> object;
        std::uint64_t generation = 0;
    };
    mutable std::shared_mutex mutex_;
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> free_;
    std::size_t live_ = 0;
};

CSpace::CSpace() : s_(std::make_unique<Slots>()) { s_->slots_.emplace_back(); }  // slot 0: null
CSpace::~CSpace() = default;

Result<CPtr> CSpace::insert(std::shared_ptr<KernelObject> object) {
    if (!object) {
        return make_error(Errc::kInvalidArgument, "CSpace::insert: null object");
    }
    std::unique_lock lock(s_->mutex_);
    std::size_t index;
    if (!s_->free_.empty()) {
        index = s_->free_.back();
        s_->free_.pop_back();
    } else {
        if (s_->slots_.size() >= kMaxSlots) {
            return make_error(Errc::kResourceExhausted,
                              fmt::format("CSpace full ({} slots)", kMaxSlots));
        }
        index = s_->slots_.size();
        s_->slots_.emplace_back();
    }
    Slots::Slot &slot = s_->slots_[index];
    slot.object = std::move(object);
    ++s_->live_;
    return CPtr((slot.generation << kIndexBits) | index);
}

Result<std::size_t> CSpace::index_of(CPtr cap) const {
    if (cap == kNullCap) {
        return make_error(Errc::kNullCapability, "invocation of seL4_CapNull");
    }
    std::uint64_t index = cap.value() & kIndexMask;
    std::uint64_t generation = cap.value() >> kIndexBits;
    if (index == 0 || index >= s_->slots_.size() || s_->slots_[index].generation != generation ||
        !s_->slots_[index].object) {
        return make_error(Errc::kStaleCapability,
                          fmt::format("capability {:#x} names no live object", cap.value()));
    }
    return static_cast<std::size_t>(index);
}

Status CSpace::remove(CPtr cap) {
    std::shared_ptr<KernelObject> object;
    {
        std::unique_lock lock(s_->mutex_);
        auto index = index_of(cap);
        if (!index) return std::unexpected(std::move(index).error());
        Slots::Slot &slot = s_->slots_[*index];
        object = std::move(slot.object);
        slot.object.reset();
        ++slot.generation;
        s_->free_.push_back(static_cast<std::uint32_t>(*index));
        --s_->live_;
    }
    object->revoke();  // outside the CSpace lock: may wait for an invocation in progress
    return {};
}

Result<std::shared_ptr<KernelObject>> CSpace::lookup(CPtr cap, ObjectType type) const {
    std::shared_lock lock(s_->mutex_);
    auto index = index_of(cap);
    if (!index) return std::unexpected(std::move(index).error());
    const auto &object = s_->slots_[*index].object;
    if (object->type() != type) {
        return make_error(Errc::kWrongCapType,
                          fmt::format("capability {:#x} names a {} object, not a {}", cap.value(),
                                      object_type_name(object->type()), object_type_name(type)));
    }
    return object;
}

std::size_t CSpace::live() const {
    std::shared_lock lock(s_->mutex_);
    return s_->live_;
}

std::size_t CSpace::slots() const {
    std::shared_lock lock(s_->mutex_);
    return s_->slots_.size();
}

}  // namespace guestvm

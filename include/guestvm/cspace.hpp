// guestvm — the capability space: CPtr → kernel object.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/types.hpp"

namespace guestvm {

/// The kinds of object a capability can name.
enum class ObjectType : std::uint8_t { kTcb, kVcpu, kFrame };

const char *object_type_name(ObjectType type) noexcept;

/// Base of every object a capability can name. Deleting the object's capability revokes it:
/// invocations that already looked it up see it as deleted instead of reaching freed state.
/// Thread-safe.
class KernelObject {
  public:
    explicit KernelObject(ObjectType type) : type_(type) {}
    virtual ~KernelObject() = default;
    KernelObject(const KernelObject &) = delete;
    KernelObject &operator=(const KernelObject &) = delete;

    ObjectType type() const noexcept { return type_; }

    /// Marks the object dead; waits for invocations in progress to finish.
    void revoke() {
        std::unique_lock lock(mutex_);
        revoked_ = true;
    }

    /// Runs fn() while the object cannot be revoked; fails if it already was.
    template <typename F>
    auto with_live(F &&fn) const -> decltype(fn()) {
        std::shared_lock lock(mutex_);
        if (revoked_) {
            return make_error(Errc::kStaleCapability, "capability's object was deleted");
        }
        return fn();
    }

  private:
    ObjectType type_;
    mutable std::shared_mutex mutex_;
    bool revoked_ = false;
};

/// A capability space: slots of objects, slot 0 permanently null. A CPtr encodes a slot index
/// (low kIndexBits bits) and the slot's generation (the rest), so a deleted capability's cptr
/// never names the object that later reuses its slot. Thread-safe.
class CSpace {
  public:
    static constexpr unsigned kIndexBits = 20;
    static constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kIndexBits) - 1;
    static constexpr std::size_t kMaxSlots = std::size_t{1} << kIndexBits;

    CSpace();
    ~CSpace();
    CSpace(const CSpace &) = delete;
    CSpace &operator=(const CSpace &) = delete;

    /// Stores `object` in a free slot and returns a capability to it.
    Result<CPtr> insert(std::shared_ptr<KernelObject> object);
    /// Deletes the capability and revokes its object. A null or stale cptr is an error.
    Status remove(CPtr cap);
    /// Finds the object `cap` names, checking that it is live and of `type`.
    Result<std::shared_ptr<KernelObject>> lookup(CPtr cap, ObjectType type) const;

    /// Live capabilities (the null slot not counted).
    std::size_t live() const;
    /// Slots ever allocated (grows only when no freed slot can be reused).
    std::size_t slots() const;

  private:
    struct Slots;  // the slots, the free list and their lock (src/common/cspace.cpp)
    Result<std::size_t> index_of(CPtr cap) const;  // caller holds the lock
    std::unique_ptr<Slots> s_;
};

}  // namespace guestvm

#pragma GCC visibility pop

// guestvm — strong types for values that must not be mixed.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <compare>
#include <cstdint>
#include <functional>

namespace guestvm {

/// A value of type T that only converts explicitly; Tag keeps unrelated kinds apart.
template <typename T, typename Tag>
class Strong {
  public:
    using value_type = T;
    constexpr Strong() = default;
    constexpr explicit Strong(T value) : value_(value) {}
    constexpr T value() const noexcept { return value_; }
    friend constexpr auto operator<=>(Strong, Strong) = default;

  private:
    T value_{};
};

/// A guest-physical address.
struct GuestPhysAddrTag {};
using GuestPhysAddr = Strong<std::uint64_t, GuestPhysAddrTag>;

/// An address in the host VMM's own address space.
struct HostVirtAddrTag {};
using HostVirtAddr = Strong<std::uintptr_t, HostVirtAddrTag>;

/// A capability pointer: names one object in a Host's CSpace (0 is the null cap).
struct CPtrTag {};
using CPtr = Strong<std::uint64_t, CPtrTag>;
inline constexpr CPtr kNullCap{0};

/// A vCPU's logical id within its VM (0 .. vcpu_count-1).
struct VcpuIdTag {};
using VcpuId = Strong<int, VcpuIdTag>;

/// A guest-visible core id (what a guest names in CPU_ON).
struct CoreIdTag {};
using CoreId = Strong<int, CoreIdTag>;

}  // namespace guestvm

#pragma GCC visibility pop

// guestvm — exit handlers and the buses that route port I/O and MMIO exits to them.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "guestvm/error.hpp"

namespace guestvm {

class Vm;
class Vcpu;

/// What a handler tells the vCPU loop to do next.
enum class ExitAction {
    kContinue,   ///< handled: re-enter the guest
    kUnhandled,  ///< not handled: the VM's unhandled-exit policy applies
    kError,      ///< the handler failed: the VM stops with StopReason::kError
    kStopVcpu,   ///< leave the run loop (the handler changed the vCPU's state, e.g. CPU_OFF)
};

/// Who is exiting. Both are null in unit tests that drive a bus without KVM.
struct ExitContext {
    Vm *vm = nullptr;
    Vcpu *vcpu = nullptr;
};

/// One port access: for an IN the handler fills `data` (size bytes, little-endian).
struct IoAccess {
    std::uint16_t port = 0;
    std::uint8_t size = 0;
    bool is_write = false;
    std::span<std::uint8_t> data;
};

/// One MMIO access: for a read the handler fills `data`.
struct MmioAccess {
    std::uint64_t addr = 0;
    std::uint8_t size = 0;
    bool is_write = false;
    std::span<std::uint8_t> data;
};

/// An exit that is not an access to a port or address: HLT, triple fault (shutdown), failed VM
/// entry, KVM internal error, system event, or a KVM exit guestvm does not model.
struct ExitEvent {
    enum class Kind : std::uint8_t {
        kHlt,
        kShutdown,
        kFailEntry,
        kInternalError,
        kSystemEvent,
        kUnknown
    };
    Kind kind;
    std::uint64_t detail = 0;  ///< failure reason, suberror, event type or exit reason
};

using IoHandler = std::function<ExitAction(ExitContext &, IoAccess &)>;
/// Handles one kind of ExitEvent; kUnhandled falls back to the VM's default for that kind.
using EventHandler = std::function<ExitAction(ExitContext &, const ExitEvent &)>;
using MmioHandler = std::function<ExitAction(ExitContext &, MmioAccess &)>;

/// Sorted, non-overlapping address ranges → handlers; lookup by binary search. Insertion
/// refuses overlap, empty ranges and overflow. Not thread-safe (the Vm guards it).
template <typename Handler>
class RangeBus {
  public:
    struct Entry {
        std::uint64_t base;
        std::uint64_t size;
        std::string name;
        Handler handler;
        bool contains(std::uint64_t a) const noexcept { return a >= base && a - base < size; }
    };

    explicit RangeBus(std::uint64_t limit) : limit_(limit) {}

    Status insert(std::uint64_t base, std::uint64_t size, std::string name, Handler handler) {
        if (size == 0 || base > limit_ || size - 1 > limit_ - base) {
            return make_error(
                Errc::kInvalidArgument,
                fmt::format("{} range [{:#x}, +{:#x}) is empty or out of range", name, base, size));
        }
        if (!handler) {
            return make_error(Errc::kInvalidArgument, fmt::format("{}: null handler", name));
        }
        auto it = std::upper_bound(entries_.begin(), entries_.end(), base,
                                   [](std::uint64_t a, const Entry &e) { return a < e.base; });
        auto overlaps = [&](const Entry &e) {
            return base <= e.base + (e.size - 1) && e.base <= base + (size - 1);
        };
        for (auto c : {it, it == entries_.begin() ? entries_.end() : std::prev(it)}) {
            if (c != entries_.end() && overlaps(*c)) {
                return make_error(Errc::kAlreadyExists,
                                  fmt::format("{} [{:#x}, +{:#x}) overlaps {} [{:#x}, +{:#x})",
                                              name, base, size, c->name, c->base, c->size));
            }
        }
        entries_.insert(it, Entry{base, size, std::move(name), std::move(handler)});
        return {};
    }

    Status remove(std::uint64_t base) {
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const Entry &e) { return e.base == base; });
        if (it == entries_.end()) {
            return make_error(Errc::kNotFound, fmt::format("no range starts at {:#x}", base));
        }
        entries_.erase(it);
        return {};
    }

    const Entry *find(std::uint64_t addr) const noexcept {
        auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                                   [](std::uint64_t a, const Entry &e) { return a < e.base; });
        if (it == entries_.begin()) return nullptr;
        const Entry &e = *std::prev(it);
        return e.contains(addr) ? &e : nullptr;
    }

    std::size_t size() const noexcept { return entries_.size(); }
    std::span<const Entry> entries() const noexcept { return entries_; }

  private:
    std::uint64_t limit_;
    std::vector<Entry> entries_;
};

using IoBus = RangeBus<IoHandler>;
using MmioBus = RangeBus<MmioHandler>;

/// Routes one port access to its handler; kUnhandled when no range holds the port.
inline ExitAction dispatch_io(const IoBus &bus, ExitContext &ctx, IoAccess &access) {
    const auto *entry = bus.find(access.port);
    return entry == nullptr ? ExitAction::kUnhandled : entry->handler(ctx, access);
}

/// Routes one MMIO access to its handler; kUnhandled when no range holds the address.
inline ExitAction dispatch_mmio(const MmioBus &bus, ExitContext &ctx, MmioAccess &access) {
    const auto *entry = bus.find(access.addr);
    return entry == nullptr ? ExitAction::kUnhandled : entry->handler(ctx, access);
}

/// Kinds of exit counted per vCPU.
enum class ExitKind : std::uint8_t {
    kIo,
    kMmio,
    kHlt,
    kShutdown,
    kFailEntry,
    kInternalError,
    kSystemEvent,
    kInterrupted,
    kUnknown,
    kPlatformCall,
    kCount
};
const char *exit_kind_name(ExitKind kind) noexcept;

/// Counts of exits by kind.
struct ExitCounts {
    std::array<std::uint64_t, static_cast<std::size_t>(ExitKind::kCount)> by_kind{};
    std::uint64_t operator[](ExitKind k) const noexcept {
        return by_kind[static_cast<std::size_t>(k)];
    }
    std::uint64_t total() const noexcept;
    ExitCounts &operator+=(const ExitCounts &o) noexcept;
};

}  // namespace guestvm

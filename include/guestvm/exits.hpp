// guestvm — the vocabulary of exits: what a handler sees of an exit and what it answers.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

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

/// What a VM does with a port access no handler claims.
enum class UnhandledIoPolicy : std::uint8_t {
    kStopVm,   ///< stop the VM with StopReason::kUnhandledExit (default)
    kAllOnes,  ///< reads return all ones, writes are ignored (libsel4vm's behaviour)
};

/// Why a VM stopped.
enum class StopReason : std::uint8_t {
    kPowerOff,       ///< the guest asked (SYSTEM_OFF)
    kReset,          ///< the guest asked (SYSTEM_RESET)
    kAllVcpusOff,    ///< every vCPU went off
    kUnhandledExit,  ///< an exit no handler claimed
    kGuestFault,     ///< triple fault, failed entry or emulation failure
    kError,          ///< a handler or the VMM failed
    kRequested,      ///< Vm::stop() from the embedder
};
const char *stop_reason_name(StopReason reason) noexcept;

struct StopInfo {
    StopReason reason = StopReason::kRequested;
    std::string message;
    int vcpu = -1;  ///< the vCPU that caused it, or -1
};

/// Who is exiting. `vm` and `vcpu` are null in unit tests that drive the router without KVM;
/// `vcpu_id` is the exiting vCPU's logical id (-1 when none). A handler that answers kError
/// says why with fail(): the VM's stop message then carries that error.
struct ExitContext {
    Vm *vm = nullptr;
    Vcpu *vcpu = nullptr;
    int vcpu_id = -1;
    std::optional<Error> error;

    /// Records why the handler failed and answers kError.
    ExitAction fail(Error why) {
        error = std::move(why);
        return ExitAction::kError;
    }
};

/// One port access: for an IN the handler fills `data` (size bytes, little-endian). A string
/// instruction (rep ins/outs) is `elements` accesses in a row, each routed on its own.
struct IoAccess {
    std::uint16_t port = 0;
    std::uint8_t size = 0;
    bool is_write = false;
    std::span<std::uint8_t> data;
    std::uint32_t elements = 1;  ///< accesses the instruction makes (1 unless string I/O)
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

/// Receives guest serial output: the vCPU that wrote it and the bytes.
using SerialSink = std::function<void(int vcpu, std::string_view bytes)>;

using IoHandler = std::function<ExitAction(ExitContext &, IoAccess &)>;
/// Handles one kind of ExitEvent; kUnhandled falls back to the VM's default for that kind.
using EventHandler = std::function<ExitAction(ExitContext &, const ExitEvent &)>;
using MmioHandler = std::function<ExitAction(ExitContext &, MmioAccess &)>;

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

#pragma GCC visibility pop

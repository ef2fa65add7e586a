// guestvm::x86 — the platform call: PSCI semantics over port 0x600.
#pragma once

#include "guestvm/exits.hpp"

namespace guestvm::x86 {

/// Handles `out dx, eax` to port 0x600: function id in EAX, arguments in RBX, RCX, RSI
/// (EBX, ECX, ESI in 32-bit guests), result in RAX. See docs/platform-call.md.
ExitAction platform_call_handler(ExitContext &ctx, IoAccess &access);

}  // namespace guestvm::x86

#include "devices/host_ports.hpp"

#include <fmt/format.h>
#include <sys/io.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace guestvm {

namespace {

/// Grants the calling thread ports [base, base+count) (ioperm is per thread).
Status grant(std::uint16_t base, std::uint32_t count) {
    // The ranges this thread was granted, so each vCPU thread asks once per range.
    thread_local std::vector<std::pair<std::uint16_t, std::uint32_t>> granted;
    for (const auto &[b, c] : granted) {
        if (b == base && c == count) return {};
    }
    if (::ioperm(base, count, 1) != 0) {
        const int err = errno;
        const char *why = err == ENOSYS  ? " (this kernel has no ioperm: it was built without "
                                           "CONFIG_X86_IOPL_IOPERM)"
                          : err == EPERM ? " (the VMM process needs CAP_SYS_RAWIO: run it as root)"
                                         : "";
        return make_error(Errc::kSystem, fmt::format("host ports {:#x}-{:#x}: ioperm: {}{}", base,
                                                     base + count - 1, std::strerror(err), why));
    }
    granted.emplace_back(base, count);
    return {};
}

}  // namespace

Result<std::shared_ptr<HostPorts>> HostPorts::open(std::uint16_t base, std::uint32_t count) {
    if (count == 0 || base + count > 0x10000) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("host ports {:#x} +{}: outside 0..0xffff", base, count));
    }
    GUESTVM_TRY(grant(base, count));
    return std::make_shared<HostPorts>(base, count);
}

ExitAction HostPorts::io(PortAccess &access) {
    if (auto granted = grant(base_, count_); !granted) return access.fail(granted.error());
    const auto port = static_cast<std::uint16_t>(base_ + access.offset);
    std::uint32_t value = 0;
    switch (access.data.size()) {
        case 1:
            if (access.is_write) {
                ::outb(access.data[0], port);
            } else {
                access.data[0] = ::inb(port);
            }
            return ExitAction::kContinue;
        case 2:
            if (access.is_write) {
                std::memcpy(&value, access.data.data(), 2);
                ::outw(static_cast<std::uint16_t>(value), port);
            } else {
                const std::uint16_t in = ::inw(port);
                std::memcpy(access.data.data(), &in, 2);
            }
            return ExitAction::kContinue;
        case 4:
            if (access.is_write) {
                std::memcpy(&value, access.data.data(), 4);
                ::outl(value, port);
            } else {
                value = ::inl(port);
                std::memcpy(access.data.data(), &value, 4);
            }
            return ExitAction::kContinue;
        default:
            break;
    }
    return access.fail(
        Error(Errc::kInvalidArgument,
              fmt::format("host port {:#x}: a {}-byte access", port, access.data.size())));
}

}  // namespace guestvm

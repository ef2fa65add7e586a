#include "kvm/mapping.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm/fault_injection.hpp"

namespace guestvm::kvm {

Result<Mapping> Mapping::map_anonymous(std::size_t size, int prot, int flags, const char *what) {
    if (size == 0) return make_error(Errc::kInvalidArgument, fmt::format("{} of 0 bytes", what));
    void *addr = fault::mmap(nullptr, size, prot, flags | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr == MAP_FAILED) return errno_error(fmt::format("mmap {} of {:#x} bytes", what, size));
    return Mapping(addr, size);
}

Result<Mapping> Mapping::anonymous(std::size_t size) {
    return map_anonymous(size, PROT_READ | PROT_WRITE, MAP_PRIVATE, "anonymous mapping");
}

Result<Mapping> Mapping::shared_anonymous(std::size_t size) {
    return map_anonymous(size, PROT_READ | PROT_WRITE, MAP_SHARED, "shared anonymous memory");
}

Result<Mapping> Mapping::address_range(std::size_t size) {
    return map_anonymous(size, PROT_NONE, MAP_PRIVATE, "address range");
}

Status Mapping::alias_at(std::size_t offset, const std::uint8_t *source, std::size_t size) {
    if (offset > size_ || size > size_ - offset) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("alias [{:#x}, +{:#x}) outside a {:#x}-byte range", offset, size, size_));
    }
    // mremap(2): an old size of 0 on a shared mapping makes a second mapping of the same pages.
    void *want = static_cast<std::uint8_t *>(addr_) + offset;
    void *got = fault::mremap(const_cast<std::uint8_t *>(source), 0, size,
                              MREMAP_MAYMOVE | MREMAP_FIXED, want);
    if (got == MAP_FAILED) return errno_error(fmt::format("mremap alias of {:#x} bytes", size));
    return {};
}

Result<Mapping> Mapping::shared_file(int fd, std::size_t size, const char *what) {
    void *addr = fault::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
        return errno_error(fmt::format("mmap {} ({:#x} bytes)", what, size));
    }
    return Mapping(addr, size);
}

Result<Mapping> Mapping::shared_view(int fd, std::uint64_t offset, std::size_t size, int prot) {
    void *addr = fault::mmap(nullptr, size, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
    if (addr == MAP_FAILED) {
        return errno_error(fmt::format("mmap view [{:#x}, +{:#x})", offset, size));
    }
    return Mapping(addr, size);
}

Result<SharedMemory> create_shared_memory(std::size_t size, const char *name) {
    if (size == 0) return make_error(Errc::kInvalidArgument, "shared memory of 0 bytes");
    UniqueFd fd(fault::memfd_create(name, MFD_CLOEXEC));
    if (!fd.valid()) return errno_error(fmt::format("memfd_create {}", name));
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
        return errno_error(fmt::format("ftruncate {} to {:#x}", name, size));
    }
    void *addr =
        fault::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
    if (addr == MAP_FAILED) return errno_error(fmt::format("mmap {} ({:#x} bytes)", name, size));
    return SharedMemory{std::move(fd), Mapping(addr, size)};
}

void Mapping::reset() noexcept {
    if (addr_ != nullptr) {
        ::munmap(addr_, size_);
        addr_ = nullptr;
        size_ = 0;
    }
}

}  // namespace guestvm::kvm

#include "kvm/mapping.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

namespace guestvm::kvm {

Result<Mapping> Mapping::anonymous(std::size_t size) {
    if (size == 0) {
        return make_error(Errc::kInvalidArgument, "anonymous mapping of 0 bytes");
    }
    void *addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr == MAP_FAILED) {
        return errno_error(fmt::format("mmap anonymous {:#x} bytes", size));
    }
    return Mapping(addr, size);
}

Result<Mapping> Mapping::shared_file(int fd, std::size_t size, const char *what) {
    void *addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
        return errno_error(fmt::format("mmap {} ({:#x} bytes)", what, size));
    }
    return Mapping(addr, size);
}

Result<Mapping> Mapping::shared_view(int fd, std::uint64_t offset, std::size_t size, int prot) {
    void *addr = ::mmap(nullptr, size, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
    if (addr == MAP_FAILED) {
        return errno_error(fmt::format("mmap view [{:#x}, +{:#x})", offset, size));
    }
    return Mapping(addr, size);
}

Result<SharedMemory> create_shared_memory(std::size_t size, const char *name) {
    if (size == 0) return make_error(Errc::kInvalidArgument, "shared memory of 0 bytes");
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    if (!fd.valid()) return errno_error(fmt::format("memfd_create {}", name));
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
        return errno_error(fmt::format("ftruncate {} to {:#x}", name, size));
    }
    void *addr =
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
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

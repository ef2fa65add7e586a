#include "kvm/mapping.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

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

void Mapping::reset() noexcept {
    if (addr_ != nullptr) {
        ::munmap(addr_, size_);
        addr_ = nullptr;
        size_ = 0;
    }
}

}  // namespace guestvm::kvm

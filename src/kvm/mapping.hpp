// guestvm::kvm — one owner per memory mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "guestvm/error.hpp"

namespace guestvm::kvm {

class UniqueFd;

/// Guest memory the VMM can map more than once: an anonymous memory file (memfd) of `size`
/// bytes and one read/write mapping of all of it. Pages are allocated on first touch.
struct SharedMemory;
Result<SharedMemory> create_shared_memory(std::size_t size, const char *name);

/// Owns one mmap()ed range; move-only; unmaps it on destruction. Not thread-safe.
class Mapping {
  public:
    Mapping() = default;
    Mapping(const Mapping &) = delete;
    Mapping &operator=(const Mapping &) = delete;
    Mapping(Mapping &&other) noexcept
        : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    Mapping &operator=(Mapping &&other) noexcept {
        if (this != &other) {
            reset();
            addr_ = std::exchange(other.addr_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    ~Mapping() { reset(); }

    /// Private anonymous read/write memory, reserved lazily (pages are backed on first touch).
    static Result<Mapping> anonymous(std::size_t size);
    /// A shared mapping of `size` bytes of `fd` at offset 0 (used for a vCPU's kvm_run area).
    static Result<Mapping> shared_file(int fd, std::size_t size, const char *what);
    /// A shared mapping of [offset, offset+size) of `fd` with `prot` (PROT_READ | PROT_WRITE),
    /// placed by the kernel (used for VMM views of guest memory).
    static Result<Mapping> shared_view(int fd, std::uint64_t offset, std::size_t size, int prot);

    std::uint8_t *data() const noexcept { return static_cast<std::uint8_t *>(addr_); }
    std::size_t size() const noexcept { return size_; }
    bool valid() const noexcept { return addr_ != nullptr; }
    void reset() noexcept;

  private:
    friend Result<SharedMemory> create_shared_memory(std::size_t size, const char *name);
    Mapping(void *addr, std::size_t size) : addr_(addr), size_(size) {}
    void *addr_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace guestvm::kvm

#include "kvm/unique_fd.hpp"

namespace guestvm::kvm {

struct SharedMemory {
    UniqueFd fd;
    Mapping mapping;
};

}  // namespace guestvm::kvm

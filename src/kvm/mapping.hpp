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

    /// Zeroed shared anonymous memory (shmem): memory another mapping can alias (alias_at).
    static Result<Mapping> shared_anonymous(std::size_t size);
    /// Address space only (PROT_NONE, no memory), to be filled with alias_at.
    static Result<Mapping> address_range(std::size_t size);
    /// Maps the pages of `source` (a shared mapping) again at `offset` inside this range,
    /// replacing what was there; both mappings then show the same memory.
    Status alias_at(std::size_t offset, const std::uint8_t *source, std::size_t size);

    std::uint8_t *data() const noexcept { return static_cast<std::uint8_t *>(addr_); }
    std::size_t size() const noexcept { return size_; }
    bool valid() const noexcept { return addr_ != nullptr; }
    void reset() noexcept;

  private:
    friend Result<SharedMemory> create_shared_memory(std::size_t size, const char *name);
    static Result<Mapping> map_anonymous(std::size_t size, int prot, int flags, const char *what);
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

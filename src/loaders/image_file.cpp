// Guest image files: checked by their metadata first, then mapped read-only.
//
// A plain mmap of a regular file, not a KVM descriptor, so it does not go through src/kvm (or
// its failure injection: loading an image makes no KVM call).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iterator>
#include <limits>
#include <utility>

#include "guestvm/loader.hpp"
#include "kvm/unique_fd.hpp"

namespace guestvm {

namespace {

// "3 GiB", "64 MiB", "2.5 KiB" or "100 bytes": what a size is at a glance, next to its exact
// value.
std::string human_size(std::uint64_t n) {
    constexpr const char *kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = static_cast<double>(n);
    std::size_t unit = 0;
    while (v >= 1024 && unit + 1 < std::size(kUnits)) {
        v /= 1024;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} bytes", n) : fmt::format("{:.3g} {}", v, kUnits[unit]);
}

const char *file_type(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

}  // namespace

Result<ImageFile> ImageFile::open(const std::string &path, std::uint64_t max_bytes) {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one. Regular files
    // ignore it.
    kvm::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd.valid()) return errno_error(fmt::format("open {}", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return errno_error(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode)) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("{} is {}; an image must be a regular file", path, file_type(st.st_mode)));
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > max_bytes) {
        return make_error(
            Errc::kResourceExhausted,
            fmt::format("{} is {} bytes ({}), larger than the {} bytes ({}) of "
                        "guest RAM it would have to fit in",
                        path, size, human_size(size), max_bytes, human_size(max_bytes)));
    }
    ImageFile file;
    file.path_ = path;
    if (size == 0) return file;  // nothing to map (mmap refuses a length of 0)
    if (size > std::numeric_limits<std::size_t>::max()) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("{} is {} bytes, more than this host can map", path, size));
    }
    void *addr =
        ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) {
        return errno_error(fmt::format("mmap {} ({} bytes)", path, size));
    }
    file.data_ = static_cast<const std::uint8_t *>(addr);
    file.size_ = static_cast<std::size_t>(size);
    return file;
}

ImageFile::ImageFile(ImageFile &&other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

ImageFile &ImageFile::operator=(ImageFile &&other) noexcept {
    if (this != &other) {
        reset();
        path_ = std::move(other.path_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

ImageFile::~ImageFile() { reset(); }

void ImageFile::reset() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::uint8_t *>(data_), size_);
    data_ = nullptr;
    size_ = 0;
}

Result<std::vector<std::uint8_t>> read_file(const std::string &path, std::uint64_t max_bytes) {
    GUESTVM_TRY_ASSIGN(file, ImageFile::open(path, max_bytes));
    auto bytes = file.bytes();
    return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

}  // namespace guestvm

// Writes the fuzzers' seed corpus: well-formed images of each kind (from the same builders the
// unit tests use) so every fuzzer starts past the magic numbers.
//   make_seeds DIR   → DIR/{elf,flat,linux,decompress}/...
#include <filesystem>
#include <fstream>

#include "support/images.hpp"

namespace fs = std::filesystem;
using namespace guestvm::test_images;

namespace {

void write(const fs::path &dir, const std::string &name, const Bytes &bytes) {
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char *>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const fs::path root = argv[1];
    Elf64Builder two(0x100000, 200, 0x2000);
    two.add_segment(0x200000, 64, 0, PF_R | PF_W);
    write(root / "elf", "one-segment", Elf64Builder().build());
    write(root / "elf", "two-segments", two.build());

    Bytes flat(64, 0x90);
    flat[0] = 0x00;
    flat[1] = 0x08;  // load at 0x10000
    write(root / "flat", "at-0x10000", flat);

    const Bytes kernel = sample(5000);
    const Bytes packed[] = {lz4_legacy(kernel), xz(kernel, false), xz(kernel, true), zstd(kernel),
                            gzip(kernel)};
    const char *names[] = {"lz4", "xz", "lzma", "zstd", "gzip"};
    for (int i = 0; i < 5; ++i) {
        write(root / "decompress", names[i], packed[i]);
        Bytes linux{4};  // first byte: command-line length / 12
        Bytes bz = make_bzimage(0x20f, packed[i]);
        linux.insert(linux.end(), bz.begin(), bz.end());
        write(root / "linux", std::string("bzimage-") + names[i], linux);
    }
    return 0;
}

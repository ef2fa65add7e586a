// What this process holds right now, from /proc/self: descriptors, threads, resident memory.
#pragma once

#include <dirent.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace guestvm::test {

struct ProcessUsage {
    int fds = 0;
    int threads = 0;
    std::uint64_t rss_kib = 0;
};

inline ProcessUsage process_usage() {
    ProcessUsage u;
    if (DIR *d = ::opendir("/proc/self/fd")) {
        while (::readdir(d) != nullptr) ++u.fds;
        ::closedir(d);
        u.fds -= 3;  // ".", ".." and the directory's own descriptor
    }
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "Threads:") status >> u.threads;
        if (key == "VmRSS:") status >> u.rss_kib;
        status.ignore(1 << 12, '\n');
    }
    return u;
}

}  // namespace guestvm::test

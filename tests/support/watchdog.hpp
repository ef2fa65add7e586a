// A hang must fail a test, not stall the run: a Watchdog aborts the process, naming what hung,
// when it is still alive after its limit.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace guestvm::test {

class Watchdog {
  public:
    Watchdog(std::chrono::milliseconds limit, std::string what)
        : thread_([limit, what = std::move(what)](std::stop_token stop) {
              std::mutex mutex;
              std::condition_variable_any cv;
              std::unique_lock lock(mutex);
              cv.wait_for(lock, stop, limit, [] { return false; });
              if (stop.stop_requested()) return;
              std::fprintf(stderr, "watchdog: %s still not done after %lld ms\n", what.c_str(),
                           static_cast<long long>(limit.count()));
              std::abort();
          }) {}

  private:
    std::jthread thread_;
};

}  // namespace guestvm::test

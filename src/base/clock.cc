#include "base/clock.h"

#include <uv.h>

#include <chrono>

namespace parley {

Timestamp monotonic_now() { return uv_hrtime(); }

uint64_t wall_clock_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

}  // namespace parley

// Jittered exponential backoff for reconnecting to the relay, sans-I/O: the random source is
// an argument, so tests are deterministic. Delays double from `initial` up to `max`; each
// delay is drawn uniformly from [d/2, d] ("equal jitter"), so a relay restart does not see
// every client come back in the same millisecond, yet nobody waits more than the cap.
#ifndef PARLEY_CALL_BACKOFF_H
#define PARLEY_CALL_BACKOFF_H

#include <cstdint>

namespace parley::call {

class Backoff {
 public:
  Backoff(uint32_t initial_ms, uint32_t max_ms)
      : initial_(initial_ms ? initial_ms : 1), max_(max_ms < initial_ ? initial_ : max_ms) {}

  // The next delay in milliseconds; `random` is any uniformly distributed 32-bit value.
  uint32_t next(uint32_t random) {
    uint64_t d = uint64_t(initial_) << (attempts_ < 31 ? attempts_ : 31);
    if (d > max_) d = max_;
    if (attempts_ < 64) ++attempts_;  // bounded: the shift above saturates long before
    const uint64_t half = d / 2;
    return uint32_t(d - half + (half ? random % (half + 1) : 0));
  }
  void reset() { attempts_ = 0; }
  uint32_t attempts() const { return attempts_; }

 private:
  uint32_t initial_, max_;
  uint32_t attempts_ = 0;
};

}  // namespace parley::call

#endif

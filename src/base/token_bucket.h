// A token bucket for rate limits, sans-I/O: time comes in as an argument. `rate` tokens per
// second refill up to `burst`. Used per client by the relay (signaling messages, media
// packets and bytes), so it is small and allocation-free.
#ifndef PARLEY_BASE_TOKEN_BUCKET_H
#define PARLEY_BASE_TOKEN_BUCKET_H

#include <cstdint>

#include "base/clock.h"

namespace parley {

class TokenBucket {
 public:
  TokenBucket() = default;
  // rate 0 = unlimited.
  TokenBucket(uint64_t rate_per_second, uint64_t burst)
      : rate_(rate_per_second), burst_(burst), tokens_milli_(burst * 1000) {}

  // Takes `n` tokens if available at time `now`. Time going backwards refills nothing.
  bool take(Timestamp now, uint64_t n = 1) {
    if (rate_ == 0) return true;
    if (!started_) {
      started_ = true;
      last_ = now;
    } else if (now > last_) {
      // Milli-tokens: 1 token/s still refills at 1 ms granularity. Elapsed time is capped so
      // the product cannot overflow after a long idle period.
      const Timestamp elapsed = now - last_ > kNanosPerSecond * 3600 ? kNanosPerSecond * 3600
                                                                      : now - last_;
      const uint64_t add = elapsed / kNanosPerMilli * rate_;
      if (add > 0) {
        tokens_milli_ = tokens_milli_ + add > burst_ * 1000 ? burst_ * 1000 : tokens_milli_ + add;
        last_ += elapsed / kNanosPerMilli * kNanosPerMilli;
        if (now - last_ > kNanosPerSecond) last_ = now;  // after the cap
      }
    }
    if (tokens_milli_ < n * 1000) return false;
    tokens_milli_ -= n * 1000;
    return true;
  }

 private:
  uint64_t rate_ = 0, burst_ = 0, tokens_milli_ = 0;
  Timestamp last_ = 0;
  bool started_ = false;
};

}  // namespace parley

#endif

// The path's base RTT as the minimum of the RTT samples of the last 10 s, sans-I/O. The
// standing queue is smoothed RTT minus this. ngtcp2's own min_rtt never forgets, so after a
// route change to a longer path on the same connection (a NAT rebinding, a handover) every
// later RTT would read as a queue and the call would stay downgraded; a window lets the base
// follow the new path. The price, as in BBR: a queue that stands for longer than the window
// becomes the base.
#ifndef PARLEY_QUALITY_MIN_RTT_H
#define PARLEY_QUALITY_MIN_RTT_H

#include <cstdint>

namespace parley::quality {

class MinRttWindow {
 public:
  static constexpr int kSlots = 10;       // one minimum per second
  static constexpr int64_t kSlotMs = 1000;

  // An RTT sample (ms, > 0) at `now_ms`; 0 is ignored (no sample yet).
  void sample(uint32_t rtt_ms, int64_t now_ms) {
    if (rtt_ms == 0) return;
    Slot &s = slot(now_ms);
    if (s.min == 0 || rtt_ms < s.min) s.min = rtt_ms;
  }
  // The minimum over the window (0 before any sample).
  uint32_t min(int64_t now_ms) {
    const int64_t cur = now_ms / kSlotMs;
    uint32_t m = 0;
    for (const Slot &s : slots_) {
      if (s.min != 0 && cur - s.second < kSlots && (m == 0 || s.min < m)) m = s.min;
    }
    return m;
  }

 private:
  struct Slot {
    int64_t second = INT64_MIN;
    uint32_t min = 0;
  };
  Slot &slot(int64_t now_ms) {
    const int64_t sec = now_ms / kSlotMs;
    Slot &s = slots_[((sec % kSlots) + kSlots) % kSlots];
    if (s.second != sec) s = Slot{sec, 0};
    return s;
  }
  Slot slots_[kSlots];
};

// The standing queue: smoothed RTT above the window's minimum (0 when unknown).
inline uint32_t queue_ms(uint32_t smoothed_rtt_ms, uint32_t base_ms) {
  return base_ms > 0 && smoothed_rtt_ms > base_ms ? smoothed_rtt_ms - base_ms : 0;
}

}  // namespace parley::quality

#endif

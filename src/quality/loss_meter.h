// Loss of a media stream over the last second, sliding: what a quality report carries.
// Sans-I/O: fed with each authentic frame's index (the 64-bit frame index of
// media/frame_crypto.h, so the 32-bit wire sequence's wrap is already handled) and the time.
//
// Four buckets of 250 ms: loss = 1 - received / (highest - lowest + 1) over the buckets of the
// last second. A sender in DTX sends nothing and loses nothing; reordering within the window
// is not loss; a frame arriving twice counts once only if the caller drops duplicates first
// (the frame opener's replay window does).
#ifndef PARLEY_QUALITY_LOSS_METER_H
#define PARLEY_QUALITY_LOSS_METER_H

#include <cstdint>

namespace parley::quality {

class LossMeter {
 public:
  static constexpr int kBuckets = 4;
  static constexpr int64_t kBucketMs = 250;

  void on_frame(uint64_t index, int64_t now_ms) {
    Bucket &b = current(now_ms);
    if (b.count == 0 || index < b.lo) b.lo = index;
    if (b.count == 0 || index > b.hi) b.hi = index;
    ++b.count;
  }
  // Per mille over the last second (0 with fewer than two frames in it).
  uint16_t permille(int64_t now_ms) {
    current(now_ms);
    uint64_t lo = UINT64_MAX, hi = 0, got = 0;
    for (const Bucket &b : buckets_) {
      if (b.count == 0) continue;
      lo = b.lo < lo ? b.lo : lo;
      hi = b.hi > hi ? b.hi : hi;
      got += b.count;
    }
    if (got < 2 || hi < lo) return 0;
    const uint64_t expected = hi - lo + 1;
    if (got >= expected) return 0;
    return uint16_t((expected - got) * 1000 / expected);
  }

 private:
  struct Bucket {
    int64_t slot = INT64_MIN;  // now_ms / kBucketMs this bucket holds
    uint64_t lo = 0, hi = 0, count = 0;
  };
  Bucket &current(int64_t now_ms) {
    const int64_t slot = now_ms / kBucketMs;
    Bucket &b = buckets_[((slot % kBuckets) + kBuckets) % kBuckets];
    if (b.slot != slot) b = Bucket{slot, 0, 0, 0};
    // Buckets older than the window are cleared as time passes.
    for (Bucket &o : buckets_) {
      if (o.slot != INT64_MIN && slot - o.slot >= kBuckets) o = Bucket{};
    }
    return b;
  }
  Bucket buckets_[kBuckets];
};

}  // namespace parley::quality

#endif

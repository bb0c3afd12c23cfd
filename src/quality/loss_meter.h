// Loss of a media stream over a sliding window: what a quality report carries.
// Sans-I/O: fed with each authentic frame's index (the 64-bit frame index of
// media/frame_crypto.h, so the 32-bit wire sequence's wrap is already handled) and the time.
//
// Buckets of 250 ms: loss = 1 - received / (highest - lowest + 1) over the newest buckets
// that cover at least one second and at least kMinFrames expected frames, up to two seconds.
// A 50 frames/s stream is judged on its last second; the long-frame profiles (25 and 16.7
// frames/s) on up to two, because a one-second window of 17-25 frames reads 10 % loss as
// anything from 0 to 40 %. A sender in DTX sends nothing and loses nothing; reordering within
// the window is not loss; a frame arriving twice counts once only if the caller drops
// duplicates first (the frame opener's replay window does).
#ifndef PARLEY_QUALITY_LOSS_METER_H
#define PARLEY_QUALITY_LOSS_METER_H

#include <cstdint>

namespace parley::quality {

// The 32-bit wire sequence of a stream extended to 64 bits around its newest value (serial
// arithmetic: within 2^31 either way), for streams whose frames are not opened here (the
// relay, room members). Indices start at 2^32 so a frame older than the first never wraps
// below zero.
class SequenceExtender {
 public:
  uint64_t extend(uint32_t seq) {
    if (!have_) {
      have_ = true;
      newest_ = (uint64_t(1) << 32) + seq;
      return newest_;
    }
    const uint64_t index = uint64_t(int64_t(newest_) + int32_t(seq - uint32_t(newest_)));
    if (index > newest_) newest_ = index;
    return index;
  }
  bool have() const { return have_; }
  uint64_t newest() const { return newest_; }

 private:
  bool have_ = false;
  uint64_t newest_ = 0;
};

class LossMeter {
 public:
  static constexpr int kBuckets = 8;        // two seconds
  static constexpr int kMinBuckets = 4;      // one second
  static constexpr int64_t kBucketMs = 250;
  static constexpr uint64_t kMinFrames = 50;

  void on_frame(uint64_t index, int64_t now_ms) {
    Bucket &b = current(now_ms);
    if (b.count == 0 || index < b.lo) b.lo = index;
    if (b.count == 0 || index > b.hi) b.hi = index;
    ++b.count;
  }
  // Per mille over the window (0 with fewer than two frames in it).
  uint16_t permille(int64_t now_ms) {
    const int64_t slot = now_ms / kBucketMs;
    current(now_ms);
    uint64_t lo = UINT64_MAX, hi = 0, got = 0;
    for (int age = 0; age < kBuckets; ++age) {  // newest first
      if (age >= kMinBuckets && got >= 2 && hi - lo + 1 >= kMinFrames) break;
      const Bucket &b = buckets_[(((slot - age) % kBuckets) + kBuckets) % kBuckets];
      if (b.slot != slot - age || b.count == 0) continue;
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

// The receiving half of a call's voice pipeline, sans I/O: voice payloads in (with their
// media timestamp and arrival time), PCM out in whatever chunk sizes the host's audio
// callback asks for. It owns the adaptive jitter buffer, the Opus decoder, FEC and RED
// recovery and concealment. It never reads a clock: every call takes `now_us` (the same
// monotonic microsecond clock for insert and pull). After create() nothing allocates, locks
// or blocks, so insert/pull may run on a real-time audio thread (the call layer does exactly
// that: the loop thread hands packets over through an SPSC ring, the audio thread inserts and
// pulls).
//
// Timestamps: 32-bit, 48 kHz units, wrapping; extended internally to 64 bits relative to the
// playout cursor, so the wrap is invisible. A frame's duration comes from its Opus packet,
// so profile changes (other frame lengths) need no signalling.
//
// Delay model. Each frame's relative delay is rd = arrival - ts (both in ms); over a sliding
// window of `window_ms` the smallest rd is the path's base; jitter = rd - base. The target
// delay is the `quantile` of jitter over the window plus one pull period (the host's chunk,
// measured), clamped to [min_delay_ms, max_delay_ms]. The current delay is
// now - cursor - base: how long the earliest-possible frame waits before it plays.
//
// Playout, per frame at the cursor:
//  - present: decode it.
//  - missing, a later frame present: loss. Rebuild from a redundant copy if one arrived
//    (counted red_recovered), else Opus FEC from the next frame if it carries it
//    (fec_recovered), else Opus PLC (concealed). The cursor advances.
//  - missing, nothing later, and the sender announced DTX: comfort noise; the cursor
//    advances (silence is not lateness).
//  - missing, nothing later otherwise: underrun; the frame is probably late (a path got
//    slower). Conceal without advancing the cursor: the delay grows by what was concealed
//    ("grow by concealment"), and when the frame arrives it plays. After max_conceal_ms of
//    consecutive concealment the output fades to silence (a dead stream makes no buzz).
//  - a frame arriving for a timestamp already played is late (counted, dropped); a copy of
//    one already buffered is a duplicate (counted, dropped).
// Shrinking: when the current delay exceeds the target by more than one frame (a path got
// faster, a spike passed), whole decoded frames of low energy that follow another low one
// (a pause, not a dip inside a word) are dropped, with a short crossfade at the splice so
// there is no click; speech is never cut. Growing without an
// underrun (target rose): concealment of one frame inserted at a low-energy point.
// Both are rate-limited so the delay converges over a few seconds rather than jumping.
// A jump in the sender's timestamps beyond max_delay_ms (restart) resets the buffer.
#ifndef PARLEY_MEDIA_VOICE_RECEIVER_H
#define PARLEY_MEDIA_VOICE_RECEIVER_H

#include <cstddef>
#include <cstdint>
#include <memory>

#include "media/opus_codec.h"
#include "media/voice_payload.h"

namespace parley::media {

struct JitterConfig {
  int sample_rate = 48000;  // of the PCM pull returns (an Opus rate)
  int channels = 1;
  uint32_t min_delay_ms = 20;
  uint32_t max_delay_ms = 500;
  uint32_t window_ms = 4000;
  double quantile = 0.95;
  uint32_t max_conceal_ms = 240;  // consecutive concealment before fading to silence
};

struct JitterStats {
  uint32_t current_delay_ms = 0;
  uint32_t target_delay_ms = 0;
  uint64_t frames_received = 0;  // payloads inserted that were usable
  uint64_t frames_decoded = 0;   // frames decoded from their own primary packet
  uint64_t fec_recovered = 0;    // frames rebuilt from the next frame's Opus FEC
  uint64_t red_recovered = 0;    // frames rebuilt from a redundant copy
  uint64_t concealed = 0;        // frames (or frame-sized stretches) of PLC for loss/underrun
  uint64_t comfort_noise = 0;    // frame-sized stretches of DTX comfort noise
  uint64_t late = 0;             // arrived after their time had been played
  uint64_t duplicates = 0;
  uint64_t malformed = 0;        // payloads that did not parse or decode
  uint64_t overflow = 0;         // dropped because the buffer was full
  uint64_t shrink_ms = 0;        // audio dropped to reduce delay
  uint64_t grow_ms = 0;          // concealment inserted to add delay
  uint64_t samples_out = 0;      // per channel, all pulls
  uint64_t longest_gap_ms = 0;   // longest run of consecutive concealment
  uint64_t skipped_ms = 0;       // lost audio not concealed: an underrun had covered it already
  uint64_t resets = 0;           // sender restarts (timestamp jumps) that reset the buffer
  uint32_t jitter_ms = 0;        // arrival jitter: the window's quantile over its base delay
  // How long the jitter window has been filling since the stream (re)started: until it holds
  // a few seconds its quantile is dominated by the first frames (quality::settled_jitter_ms).
  uint32_t jitter_window_ms = 0;
};

class VoiceReceiver {
 public:
  // Allocates everything the receiver will ever use. kOk, kErrAudioFormat, kErrInvalidArgument
  // (min > max, quantile outside (0, 1]), kErrCodec, kErrNoMemory.
  static int create(const JitterConfig &config, std::unique_ptr<VoiceReceiver> *out);
  ~VoiceReceiver();

  // A voice payload of the frame with media timestamp `ts48`, arrived at `now_us`. kOk, or
  // kErrMediaMalformed (counted, nothing else changes).
  int insert(uint32_t ts48, const uint8_t *payload, size_t len, int64_t now_us);
  // Writes exactly `samples` samples per channel (interleaved) to `out`: audio, concealment or
  // silence. Never fails.
  void pull(int16_t *out, size_t samples, int64_t now_us);

  JitterStats stats() const;

 private:
  VoiceReceiver();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::media

#endif

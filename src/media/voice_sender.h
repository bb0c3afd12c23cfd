// The sending half of a call's voice pipeline, sans I/O: PCM frames in, voice payloads
// (media/voice_payload.h) out. It owns the Opus encoder, the profile in use, the FEC loss
// hint and the history that redundancy repeats. The call layer feeds it whole frames of
// microphone audio and seals what it returns; it never reads a clock or a socket.
//
// Loss hint: the peer piggybacks, in every voice payload, the fraction of our frames it
// lost recently (on_peer_feedback). The hint handed to Opus is the largest report of the
// last kLossHintHoldMs, in percent rounded up, so one good report after a loss burst does
// not switch FEC off at once; with no reports (or all zero) it is 0, and Opus spends no bits
// on FEC.
//
// Sizes: by default every payload of a profile has the same size, whatever the audio: the
// Opus packets are constant-size (media/opus_codec.h), the redundant copies are earlier such
// packets, and nothing else in the payload depends on the audio. Only the network changes a
// size: a profile switch, and redundancy filling up after the start (the first frames have
// fewer earlier frames to repeat). RFC 6562 is why: with variable sizes, an observer of the
// sealed frames can tell silence, vowels, fricatives and tones apart.
//
// DTX (off unless set_dtx): Opus marks silence with packets of at most 2 bytes. The first
// kDtxMarkers of them in a row are sent as 1-byte markers (so the receiver knows the gap that
// follows is silence, not loss, even if one marker is lost); the rest are not sent at all
// (encode() returns len 0). That saves nearly all of a silent direction's bandwidth, and
// shows anyone who sees the frames when the sender speaks and when it is silent (or muted).
//
// Muted: the encoder is fed zeros, so the peer hears silence (comfort noise with DTX) and the
// timestamps keep running; without DTX a muted sender's frames look like any others.
#ifndef PARLEY_MEDIA_VOICE_SENDER_H
#define PARLEY_MEDIA_VOICE_SENDER_H

#include <cstddef>
#include <cstdint>
#include <memory>

#include "media/opus_codec.h"
#include "media/voice_payload.h"
#include "media/voice_profile.h"

namespace parley::media {

constexpr uint32_t kLossHintHoldMs = 5000;
constexpr int kDtxMarkers = 3;

struct VoiceSenderStats {
  uint64_t frames = 0;        // frames encoded
  uint64_t sent = 0;          // payloads returned with len > 0 (incl. DTX markers)
  uint64_t dtx_skipped = 0;   // silent frames not sent
  uint64_t bytes = 0;         // Opus bytes produced for sent payloads (primary + redundancy)
  int loss_hint = 0;          // percent, as last given to Opus
  uint8_t profile = 0;
};

class VoiceSender {
 public:
  // kOk, kErrAudioFormat, kErrInvalidArgument (unknown profile), kErrCodec, kErrNoMemory.
  static int create(int sample_rate, int channels, uint8_t profile,
                    std::unique_ptr<VoiceSender> *out);

  // Takes effect with the next frame (frame_samples() changes with it). kOk,
  // kErrInvalidArgument (unknown id), kErrCodec.
  int set_profile(uint8_t id);
  uint8_t profile() const;
  // Samples per channel the next encode() takes.
  int frame_samples() const;
  // Switches DTX on or off from the next frame (see above). kOk or kErrCodec.
  int set_dtx(bool on);
  bool dtx() const;
  // The peer's report of our loss (1/256 units) arriving at `now_ms` (any monotonic ms).
  void on_peer_feedback(uint8_t fraction, int64_t now_ms);

  // Encodes one frame (frame_samples() samples per channel, interleaved) whose first sample
  // has media timestamp `ts48`, and writes the voice payload (with `feedback`, our own report
  // of the peer's loss) to `out` (`cap` >= kMaxVoicePayload). *len is 0 when nothing should be
  // sent (DTX). `pcm` NULL means muted (zeros). kOk, kErrBufferTooSmall (`cap` below
  // kMaxVoicePayload) or kErrCodec.
  int encode(const int16_t *pcm, uint32_t ts48, uint8_t feedback, int64_t now_ms,
             uint8_t *out, size_t cap, size_t *len);

  VoiceSenderStats stats() const;
  ~VoiceSender();

 private:
  VoiceSender();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::media

#endif

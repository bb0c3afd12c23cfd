// The audio of one call as the host sees it: microphone PCM in, speaker PCM out, mute, and
// the statistics of both directions. Shared between three threads, each with its own part:
//
//   host capture thread  push()        writes the microphone ring (SPSC, wait-free)
//   host playout thread  pull()        drains the packet ring into the jitter buffer and
//                                      decodes (media/voice_receiver.h), all wait-free
//   context loop thread  encode_ready(), on_voice_frame(), on_frame_index(): the encoder
//                        (media/voice_sender.h), the packet ring's producer, loss tracking
//
// push/pull never allocate, lock or block: everything is allocated in create(). Any thread
// may call set_muted(), stats(), ended(). The channel outlives its call: once the call ends,
// push() refuses and pull() returns silence, so a host audio callback racing the hangup is
// harmless.
#ifndef PARLEY_CALL_VOICE_CHANNEL_H
#define PARLEY_CALL_VOICE_CHANNEL_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/spsc_ring.h"
#include "media/voice_receiver.h"
#include "media/voice_sender.h"

namespace parley::call {

struct AudioConfig {
  int sample_rate = 48000;  // of pushed and pulled PCM: 8000, 12000, 16000, 24000 or 48000
  int channels = 1;         // 1 or 2 (interleaved)
  uint8_t profile = media::kDefaultProfile;
  // The best profile this side ever sends or agrees to (a host's data-saver cap; 0: none).
  uint8_t best_profile = 0;
  // false: always send with `profile` (quality reports still go out; directives are ignored
  // and proposals refused). For hosts that manage quality themselves, and for tests of the
  // voice pipeline at one profile.
  bool adaptive = true;
  // Opus DTX. false (the default): every frame of a profile has the same size and frames go
  // out at the frame rate whether the host speaks, is silent or is muted, so the sealed
  // stream says nothing about what is said (RFC 6562). true: silence costs almost nothing
  // (a few 1-byte markers, then no frames until speech resumes), but anyone who sees the
  // frames (the relay, the network) learns when this side speaks and for how long: its
  // talk-spurt pattern, enough to tell who talks when and to guess at short answers.
  // Speech frames stay constant-size either way (docs/protocol.md, "Voice payload").
  bool dtx = false;
  // Jitter buffer bounds (sample_rate/channels of it are taken from above).
  media::JitterConfig jitter;
  // How much microphone audio may wait for the encoder; more is refused by push().
  uint32_t mic_buffer_ms = 200;
};

struct VoiceStats {
  media::JitterStats jitter;         // the receive side (as of the last pull)
  media::VoiceSenderStats sender;    // the send side
  uint8_t loss_fraction = 0;         // of the peer's frames we lost in the last interval, /256
  uint8_t peer_loss_fraction = 0;    // of our frames the peer reports lost, /256
  uint64_t mic_overflow = 0;         // pushed samples refused (ring full)
  uint64_t rx_overflow = 0;          // frames dropped before the host pulled them (ring full)
  bool muted = false;
  int peer_profile = -1;             // the profile of the peer's newest voice frame (-1: none)
  uint32_t peer_profile_since = 0;   // the timestamp of its first frame with that profile
  int64_t profile_switched_us = 0;   // when our last scheduled profile change took effect
};

class VoiceChannel {
 public:
  // Allocates the rings, the encoder and the jitter buffer. kOk, kErrAudioFormat,
  // kErrInvalidArgument, kErrCodec, kErrNoMemory.
  static int create(const AudioConfig &config, std::shared_ptr<VoiceChannel> *out);
  ~VoiceChannel();

  // Host, one capture thread: appends `frames` frames (samples per channel, interleaved).
  // Returns how many were taken (fewer when the ring is full; the rest is counted as
  // overflow), or kErrCallEnded once the call has ended.
  int push(const int16_t *pcm, size_t frames);
  // Host, one playout thread: writes exactly `frames` frames to `out` (audio, concealment or
  // silence). kOk, or kErrCallEnded once the call has ended (`out` is silence then).
  int pull(int16_t *out, size_t frames);
  // The same for float32 PCM (-1.0 .. 1.0; push clips beyond it and takes NaN as silence),
  // through the 16-bit path in chunks on the stack: no allocation either.
  int push(const float *pcm, size_t frames);
  int pull(float *out, size_t frames);
  void set_muted(bool muted) { muted_.store(muted, std::memory_order_relaxed); }
  bool muted() const { return muted_.load(std::memory_order_relaxed); }
  bool ended() const { return ended_.load(std::memory_order_acquire); }
  VoiceStats stats() const;
  const AudioConfig &config() const { return config_; }

  // --- loop thread ---
  using SendFn = std::function<void(uint32_t ts48, uint8_t profile, const uint8_t *payload,
                                    size_t len)>;
  // The call became active: stale microphone audio is dropped and encoding starts.
  void start(SendFn send);
  // Encodes and sends every whole frame waiting in the microphone ring.
  void encode_ready(int64_t now_us);
  // A voice frame of the peer (its plaintext) arrived at `now_us`.
  void on_voice_frame(uint32_t ts48, const uint8_t *payload, size_t len, int64_t now_us);
  // The header profile of a voice frame of the peer (stats: which profile it sends with,
  // from which of its timestamps).
  void on_peer_profile(uint8_t profile, uint32_t ts48);
  // Every authentic frame of the peer (voice or datagram) with its frame index: loss
  // tracking for the feedback our payloads carry.
  void on_frame_index(uint64_t index, int64_t now_us);
  // The call ended: stop encoding; push refuses, pull gives silence.
  void end();
  // Changes the sending profile from the next frame (dropping any scheduled change). kOk or
  // kErrInvalidArgument.
  int set_profile(uint8_t id);
  // Changes it from the first frame whose media timestamp is at or after `at_ts` (serial
  // arithmetic: within 2^31 ahead). kOk or kErrInvalidArgument.
  int schedule_profile(uint8_t id, uint32_t at_ts);
  // The profile in force, or the scheduled one once scheduled.
  uint8_t profile() const;
  // The media timestamp the next frame will carry, and one frame's length, in 48 kHz units.
  uint32_t next_timestamp() const { return next_ts_; }
  uint32_t frame_ts48() const;
  // The timestamp of the peer's latest voice frame and when it arrived (the clock of
  // on_voice_frame); false before the first.
  bool peer_timestamp(uint32_t *ts, int64_t *arrived_us) const {
    *ts = peer_ts_;
    *arrived_us = peer_ts_at_us_;
    return have_peer_ts_;
  }

 private:
  struct RxSlot;
  VoiceChannel() = default;
  void publish(const media::JitterStats &s);

  AudioConfig config_;
  std::unique_ptr<SpscRing<int16_t>> mic_;
  std::unique_ptr<SpscRing<RxSlot>> rx_;
  std::unique_ptr<media::VoiceReceiver> receiver_;  // playout thread only
  std::unique_ptr<media::VoiceSender> sender_;      // loop thread only
  std::unique_ptr<int16_t[]> frame_buf_;            // loop thread: one frame of mic audio
  std::unique_ptr<uint8_t[]> payload_buf_;          // loop thread: one voice payload
  std::unique_ptr<RxSlot> rx_scratch_;              // playout thread: one slot being read
  SendFn send_;
  bool started_ = false;
  uint32_t next_ts_ = 0;
  bool scheduled_ = false;  // a profile change waits for its timestamp
  uint8_t scheduled_profile_ = 0;
  uint32_t scheduled_ts_ = 0;
  uint32_t peer_ts_ = 0;
  int64_t peer_ts_at_us_ = 0;
  bool have_peer_ts_ = false;
  // Loss tracking (loop thread): frames seen in the current interval vs the index span.
  int64_t interval_start_us_ = -1;
  uint64_t interval_first_ = 0, interval_highest_ = 0, interval_received_ = 0;
  bool have_index_ = false;

  std::atomic<bool> muted_{false};
  std::atomic<bool> ended_{false};
  std::atomic<uint8_t> loss_fraction_{0};
  std::atomic<uint8_t> peer_loss_fraction_{0};
  std::atomic<uint64_t> mic_overflow_{0}, rx_overflow_{0};
  uint32_t peer_newest_ts_ = 0;  // loop thread
  std::atomic<int> peer_profile_{-1};
  std::atomic<uint32_t> peer_profile_since_{0};
  std::atomic<int64_t> profile_switched_us_{0};
  // The playout thread's stats, published after each pull (fields individually atomic).
  struct Published;
  std::unique_ptr<Published> published_;
  // The sender's stats, loop thread writes, any thread reads.
  struct PublishedSender;
  std::unique_ptr<PublishedSender> published_sender_;
};

}  // namespace parley::call

#endif

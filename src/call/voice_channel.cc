#include "call/voice_channel.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "base/clock.h"
#include "base/error.h"
#include "media/frame_header.h"

namespace parley::call {

namespace {
// Frames waiting for the playout thread: a jitter buffer's worth at 10 ms frames, plus slack
// for a host that pulls in large chunks.
constexpr size_t kRxSlots = 128;
// The largest voice plaintext a frame can carry over QUIC.
constexpr size_t kRxSlotBytes = 1200;
// How often the loss fraction is recomputed.
constexpr int64_t kLossIntervalUs = 1000000;

int64_t now_us() { return int64_t(monotonic_now() / 1000); }

// Stats cross threads field by field; a torn snapshot (one field a pull newer) is harmless.
constexpr size_t kJitterFields = 17;
void to_fields(const media::JitterStats &s, uint64_t *v) {
  const uint64_t f[kJitterFields] = {
      s.current_delay_ms, s.target_delay_ms, s.frames_received, s.frames_decoded,
      s.fec_recovered,    s.red_recovered,   s.concealed,       s.comfort_noise,
      s.late,             s.duplicates,      s.malformed,       s.overflow,
      s.shrink_ms,        s.grow_ms,         s.samples_out,     s.longest_gap_ms,
      s.jitter_ms};
  std::memcpy(v, f, sizeof f);
}
media::JitterStats from_fields(const uint64_t *v) {
  media::JitterStats s;
  s.current_delay_ms = uint32_t(v[0]);
  s.target_delay_ms = uint32_t(v[1]);
  s.frames_received = v[2];
  s.frames_decoded = v[3];
  s.fec_recovered = v[4];
  s.red_recovered = v[5];
  s.concealed = v[6];
  s.comfort_noise = v[7];
  s.late = v[8];
  s.duplicates = v[9];
  s.malformed = v[10];
  s.overflow = v[11];
  s.shrink_ms = v[12];
  s.grow_ms = v[13];
  s.samples_out = v[14];
  s.longest_gap_ms = v[15];
  s.jitter_ms = uint32_t(v[16]);
  return s;
}
}  // namespace

struct VoiceChannel::RxSlot {
  uint32_t ts48;
  uint32_t len;
  int64_t arrival_us;
  uint8_t data[kRxSlotBytes];
};

struct VoiceChannel::Published {
  std::atomic<uint64_t> v[kJitterFields];
};

struct VoiceChannel::PublishedSender {
  std::atomic<uint64_t> frames{0}, sent{0}, dtx_skipped{0}, bytes{0};
  std::atomic<int> loss_hint{0};
  std::atomic<uint8_t> profile{0};
};

int VoiceChannel::create(const AudioConfig &config, std::shared_ptr<VoiceChannel> *out) {
  if (!media::is_opus_rate(config.sample_rate) || config.channels < 1 ||
      config.channels > 2) {
    return fail(kErrAudioFormat, "audio: %d Hz x %d channels (Opus rates, 1 or 2 channels)",
                config.sample_rate, config.channels);
  }
  if (config.mic_buffer_ms < 20 || config.mic_buffer_ms > 2000) {
    return fail(kErrInvalidArgument, "audio: mic_buffer_ms %u outside 20..2000",
                config.mic_buffer_ms);
  }
  std::shared_ptr<VoiceChannel> c(new (std::nothrow) VoiceChannel);
  if (!c) return fail(kErrNoMemory, "voice channel");
  c->config_ = config;
  c->config_.jitter.sample_rate = config.sample_rate;
  c->config_.jitter.channels = config.channels;
  int r = media::VoiceReceiver::create(c->config_.jitter, &c->receiver_);
  if (r != kOk) return r;
  r = media::VoiceSender::create(config.sample_rate, config.channels, config.profile,
                                 &c->sender_);
  if (r != kOk) return r;
  if (config.dtx && (r = c->sender_->set_dtx(true)) != kOk) return r;
  const size_t mic_samples =
      size_t(config.sample_rate) / 1000 * config.mic_buffer_ms * size_t(config.channels);
  c->mic_.reset(new (std::nothrow) SpscRing<int16_t>(mic_samples));
  c->rx_.reset(new (std::nothrow) SpscRing<RxSlot>(kRxSlots));
  c->frame_buf_.reset(new (std::nothrow) int16_t[media::kMaxFrameSamples * 2]);
  c->payload_buf_.reset(new (std::nothrow) uint8_t[media::kMaxVoicePayload]);
  c->rx_scratch_.reset(new (std::nothrow) RxSlot);
  c->published_.reset(new (std::nothrow) Published);
  c->published_sender_.reset(new (std::nothrow) PublishedSender);
  if (!c->mic_ || !c->rx_ || !c->frame_buf_ || !c->payload_buf_ || !c->rx_scratch_ ||
      !c->published_ || !c->published_sender_) {
    return fail(kErrNoMemory, "voice channel buffers");
  }
  for (auto &f : c->published_->v) f.store(0, std::memory_order_relaxed);
  c->published_sender_->profile.store(config.profile, std::memory_order_relaxed);
  // A random first timestamp, as RTP does: nothing depends on where the clock starts, and
  // the 32-bit wrap then happens in real calls rather than only in tests.
  c->next_ts_ = randombytes_random();
  *out = std::move(c);
  return kOk;
}

VoiceChannel::~VoiceChannel() = default;

int VoiceChannel::push(const int16_t *pcm, size_t frames) {
  if (ended()) return kErrCallEnded;
  const size_t ch = size_t(config_.channels);
  const size_t want = frames * ch;
  const size_t took = mic_->write(pcm, want - want % ch) / ch;
  if (took < frames) mic_overflow_.fetch_add(frames - took, std::memory_order_relaxed);
  return int(took);
}

int VoiceChannel::pull(int16_t *out, size_t frames) {
  const int64_t now = now_us();
  RxSlot &s = *rx_scratch_;
  while (rx_->read(&s, 1) == 1) {
    receiver_->insert(s.ts48, s.data, s.len, s.arrival_us < now ? s.arrival_us : now);
  }
  if (ended()) {
    // What is left in the jitter buffer is not played once the call is over: silence.
    if (frames) std::memset(out, 0, frames * size_t(config_.channels) * sizeof *out);
    return kErrCallEnded;
  }
  receiver_->pull(out, frames, now);
  publish(receiver_->stats());
  return kOk;
}

// The codec and the rings work in 16 bits, which is all the resolution Opus keeps at these
// rates: float audio converts at the boundary, a stack-sized chunk at a time.
namespace {
constexpr size_t kFloatChunkSamples = 960;

int16_t to_pcm16(float x) {
  if (!(x == x)) return 0;  // NaN
  const float scaled = x * 32768.0f;
  if (scaled >= 32767.0f) return 32767;
  if (scaled <= -32768.0f) return -32768;
  return static_cast<int16_t>(std::lrint(scaled));
}
}  // namespace

int VoiceChannel::push(const float *pcm, size_t frames) {
  const size_t ch = size_t(config_.channels);
  const size_t chunk_frames = kFloatChunkSamples / ch;
  int16_t chunk[kFloatChunkSamples];
  size_t taken = 0;
  do {
    const size_t n = frames - taken < chunk_frames ? frames - taken : chunk_frames;
    for (size_t i = 0; i < n * ch; ++i) chunk[i] = to_pcm16(pcm[taken * ch + i]);
    const int r = push(chunk, n);
    if (r < 0) return taken > 0 ? int(taken) : r;
    taken += size_t(r);
    if (size_t(r) < n) break;  // the ring is full: the rest is cut, as for int16
  } while (taken < frames);
  return int(taken);
}

int VoiceChannel::pull(float *out, size_t frames) {
  const size_t ch = size_t(config_.channels);
  const size_t chunk_frames = kFloatChunkSamples / ch;
  int16_t chunk[kFloatChunkSamples];
  int result = kOk;
  for (size_t done = 0; done < frames;) {
    const size_t n = frames - done < chunk_frames ? frames - done : chunk_frames;
    const int r = pull(chunk, n);
    if (r != kOk) result = r;  // silence was written
    for (size_t i = 0; i < n * ch; ++i) out[done * ch + i] = float(chunk[i]) * (1.0f / 32768.0f);
    done += n;
  }
  return result;
}

void VoiceChannel::publish(const media::JitterStats &s) {
  uint64_t v[kJitterFields];
  to_fields(s, v);
  for (size_t i = 0; i < kJitterFields; ++i) {
    published_->v[i].store(v[i], std::memory_order_relaxed);
  }
}

VoiceStats VoiceChannel::stats() const {
  VoiceStats s;
  uint64_t v[kJitterFields];
  for (size_t i = 0; i < kJitterFields; ++i) {
    v[i] = published_->v[i].load(std::memory_order_relaxed);
  }
  s.jitter = from_fields(v);
  const PublishedSender &p = *published_sender_;
  s.sender.frames = p.frames.load(std::memory_order_relaxed);
  s.sender.sent = p.sent.load(std::memory_order_relaxed);
  s.sender.dtx_skipped = p.dtx_skipped.load(std::memory_order_relaxed);
  s.sender.bytes = p.bytes.load(std::memory_order_relaxed);
  s.sender.loss_hint = p.loss_hint.load(std::memory_order_relaxed);
  s.sender.profile = p.profile.load(std::memory_order_relaxed);
  s.loss_fraction = loss_fraction_.load(std::memory_order_relaxed);
  s.peer_loss_fraction = peer_loss_fraction_.load(std::memory_order_relaxed);
  s.mic_overflow = mic_overflow_.load(std::memory_order_relaxed);
  s.rx_overflow = rx_overflow_.load(std::memory_order_relaxed);
  s.muted = muted();
  s.peer_profile = peer_profile_.load(std::memory_order_acquire);
  s.peer_profile_since = peer_profile_since_.load(std::memory_order_relaxed);
  s.profile_switched_us = profile_switched_us_.load(std::memory_order_relaxed);
  return s;
}

void VoiceChannel::start(SendFn send) {
  send_ = std::move(send);
  started_ = true;
  // Whatever the host pushed while the call rang is stale: sending it would add its length
  // to the mouth-to-ear delay for the whole call.
  const size_t stale = mic_->read_available();
  for (size_t done = 0; done < stale;) {
    const size_t n = mic_->read(frame_buf_.get(), std::min<size_t>(stale - done,
                                                                     media::kMaxFrameSamples));
    if (n == 0) break;
    done += n;
  }
}

void VoiceChannel::encode_ready(int64_t now) {
  if (!started_ || ended()) return;
  const size_t ch = size_t(config_.channels);
  for (;;) {
    // A profile agreed for a media timestamp starts with the first frame at or after it.
    if (scheduled_ && int32_t(next_ts_ - scheduled_ts_) >= 0) {
      scheduled_ = false;
      sender_->set_profile(scheduled_profile_);
      profile_switched_us_.store(now, std::memory_order_relaxed);
    }
    const size_t need = size_t(sender_->frame_samples()) * ch;
    if (mic_->read_available() < need) break;
    mic_->read(frame_buf_.get(), need);
    size_t len = 0;
    const uint8_t feedback = loss_fraction_.load(std::memory_order_relaxed);
    const int r = sender_->encode(muted() ? nullptr : frame_buf_.get(), next_ts_, feedback,
                                  now / 1000, payload_buf_.get(), media::kMaxVoicePayload,
                                  &len);
    const uint32_t ts = next_ts_;
    next_ts_ += media::to_ts48(config_.sample_rate, uint64_t(sender_->frame_samples()));
    if (r == kOk && len > 0) send_(ts, sender_->profile(), payload_buf_.get(), len);
  }
  const media::VoiceSenderStats st = sender_->stats();
  PublishedSender &p = *published_sender_;
  p.frames.store(st.frames, std::memory_order_relaxed);
  p.sent.store(st.sent, std::memory_order_relaxed);
  p.dtx_skipped.store(st.dtx_skipped, std::memory_order_relaxed);
  p.bytes.store(st.bytes, std::memory_order_relaxed);
  p.loss_hint.store(st.loss_hint, std::memory_order_relaxed);
  p.profile.store(st.profile, std::memory_order_relaxed);
}

void VoiceChannel::on_voice_frame(uint32_t ts48, const uint8_t *payload, size_t len,
                                  int64_t now) {
  if (ended() || len < media::kVoicePayloadFixed || len > kRxSlotBytes) return;
  sender_->on_peer_feedback(payload[0], now / 1000);
  peer_ts_ = ts48;
  peer_ts_at_us_ = now;
  have_peer_ts_ = true;
  peer_loss_fraction_.store(payload[0], std::memory_order_relaxed);
  RxSlot s;
  s.ts48 = ts48;
  s.len = uint32_t(len);
  s.arrival_us = now;
  std::memcpy(s.data, payload, len);
  if (rx_->write(&s, 1) != 1) rx_overflow_.fetch_add(1, std::memory_order_relaxed);
}

void VoiceChannel::on_peer_profile(uint8_t profile, uint32_t ts48) {
  const int current = peer_profile_.load(std::memory_order_relaxed);
  if (current >= 0 && int32_t(ts48 - peer_newest_ts_) <= 0) return;  // older than the newest
  peer_newest_ts_ = ts48;
  if (current != int(profile)) {
    peer_profile_since_.store(ts48, std::memory_order_relaxed);
    peer_profile_.store(profile, std::memory_order_release);
  }
}

void VoiceChannel::on_frame_index(uint64_t index, int64_t now) {
  if (!have_index_) {
    have_index_ = true;
    interval_start_us_ = now;
    interval_first_ = index;
    interval_highest_ = index;
    interval_received_ = 1;
    return;
  }
  ++interval_received_;
  if (index > interval_highest_) interval_highest_ = index;
  if (now - interval_start_us_ < kLossIntervalUs) return;
  // Frames expected this interval: the span of indices since the last one counted.
  const uint64_t expected = interval_highest_ - interval_first_ + 1;
  if (expected > 0) {
    const uint64_t got = interval_received_ < expected ? interval_received_ : expected;
    const uint64_t f = (expected - got) * 256 / expected;
    loss_fraction_.store(uint8_t(f > 255 ? 255 : f), std::memory_order_relaxed);
  }
  interval_start_us_ = now;
  interval_first_ = interval_highest_ + 1;
  interval_received_ = 0;
}

void VoiceChannel::end() {
  ended_.store(true, std::memory_order_release);
  send_ = nullptr;
}

int VoiceChannel::set_profile(uint8_t id) {
  scheduled_ = false;
  return sender_->set_profile(id);
}

int VoiceChannel::schedule_profile(uint8_t id, uint32_t at_ts) {
  if (!media::voice_profile(id)) return fail(kErrInvalidArgument, "unknown profile %u", id);
  scheduled_ = true;
  scheduled_profile_ = id;
  scheduled_ts_ = at_ts;
  return kOk;
}

uint8_t VoiceChannel::profile() const {
  return scheduled_ ? scheduled_profile_ : sender_->profile();
}

uint32_t VoiceChannel::frame_ts48() const {
  return media::to_ts48(config_.sample_rate, uint64_t(sender_->frame_samples()));
}

}  // namespace parley::call

#include "media/voice_sender.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <vector>

#include "base/error.h"
#include "media/voice_receiver.h"

namespace parley::media {
namespace {

// Voiced speech, roughly (see opus_codec_test.cc): a gliding pitch with harmonics, in
// syllables, never silent.
class Voice {
 public:
  explicit Voice(int rate) : rate_(rate) {}
  void next(int16_t *out, int samples, int channels) {
    for (int i = 0; i < samples; ++i, ++n_) {
      const double t = double(n_) / rate_;
      const double f0 = 170 + 50 * std::sin(2 * M_PI * 1.3 * t);
      phase_ += 2 * M_PI * f0 / rate_;
      double s = 0;
      for (int h = 1; h <= 12 && h * f0 < 0.45 * rate_; ++h) s += std::sin(h * phase_) / h;
      noise_ = noise_ * 1664525u + 1013904223u;
      s += 0.05 * (double(noise_ >> 16) / 32768.0 - 1.0);
      const double env = 0.55 - 0.45 * std::cos(2 * M_PI * 3 * t);
      const auto v = int16_t(std::lround(7000 * env * s));
      for (int c = 0; c < channels; ++c) out[i * channels + c] = c == 0 ? v : int16_t(v / 2);
    }
  }

 private:
  int rate_;
  uint64_t n_ = 0;
  double phase_ = 0;
  uint32_t noise_ = 1;
};

std::unique_ptr<VoiceSender> make_sender(int rate, int channels, uint8_t profile,
                                         bool dtx = false) {
  std::unique_ptr<VoiceSender> s;
  EXPECT_EQ(kOk, VoiceSender::create(rate, channels, profile, &s));
  if (s) {
    EXPECT_FALSE(s->dtx());
    EXPECT_EQ(kOk, s->set_dtx(dtx));
    EXPECT_EQ(s->dtx(), dtx);
  }
  return s;
}

// One encode() result, kept with its bytes so the parsed blocks stay valid.
struct Sent {
  std::vector<uint8_t> bytes;
  VoicePayload p;
  bool empty() const { return bytes.empty(); }
  std::vector<uint8_t> primary() const {
    return std::vector<uint8_t>(p.primary.data, p.primary.data + p.primary.len);
  }
  std::vector<uint8_t> red(size_t i) const {
    return std::vector<uint8_t>(p.red[i].data, p.red[i].data + p.red[i].len);
  }
};

// Drives a sender with voice (or silence, or mute) and parses what it returns.
class Driver {
 public:
  Driver(int rate, int channels, uint8_t profile, bool dtx = false)
      : rate_(rate), channels_(channels), voice_(rate),
        s_(make_sender(rate, channels, profile, dtx)), buf_(kMaxVoicePayload) {}
  VoiceSender &sender() { return *s_; }

  enum class Input { kVoice, kZeros, kMuted };
  Sent encode(uint32_t ts48, Input in = Input::kVoice, uint8_t feedback = 0,
              int64_t now_ms = 0) {
    const int fs = s_->frame_samples();
    pcm_.assign(size_t(fs) * channels_, 0);
    if (in == Input::kVoice) voice_.next(pcm_.data(), fs, channels_);
    size_t len = 99;
    EXPECT_EQ(kOk, s_->encode(in == Input::kMuted ? nullptr : pcm_.data(), ts48, feedback,
                              now_ms, buf_.data(), buf_.size(), &len));
    Sent out;
    out.bytes.assign(buf_.begin(), buf_.begin() + long(len));
    if (len > 0) {
      EXPECT_EQ(kOk, parse_voice_payload(out.bytes.data(), out.bytes.size(), &out.p));
    }
    return out;
  }
  // The 48 kHz timestamp units one frame of the current profile spans.
  uint32_t frame_ts() const { return to_ts48(rate_, uint64_t(s_->frame_samples())); }
  const std::vector<int16_t> &last_pcm() const { return pcm_; }

 private:
  int rate_, channels_;
  Voice voice_;
  std::unique_ptr<VoiceSender> s_;
  std::vector<uint8_t> buf_;
  std::vector<int16_t> pcm_;
};

TEST(VoiceSender, CreateChecksFormatAndProfile) {
  std::unique_ptr<VoiceSender> s;
  EXPECT_EQ(kErrInvalidArgument,
            VoiceSender::create(48000, 1, uint8_t(voice_profile_count()), &s));
  EXPECT_EQ(kErrAudioFormat, VoiceSender::create(44100, 1, 1, &s));
  EXPECT_EQ(kErrAudioFormat, VoiceSender::create(48000, 3, 1, &s));
  EXPECT_FALSE(s);
  ASSERT_EQ(kOk, VoiceSender::create(16000, 2, 4, &s));
  EXPECT_EQ(s->profile(), 4);
  EXPECT_EQ(s->frame_samples(), 960);  // 60 ms at 16 kHz
  const VoiceSenderStats st = s->stats();
  EXPECT_EQ(st.profile, 4);
  EXPECT_EQ(st.frames, 0u);
  EXPECT_EQ(st.loss_hint, 0);
}

TEST(VoiceSender, RefusesABufferSmallerThanKMaxVoicePayload) {
  auto s = make_sender(48000, 1, 1);
  std::vector<int16_t> pcm(960);
  std::vector<uint8_t> out(kMaxVoicePayload - 1);
  size_t len = 99;
  EXPECT_NE(kOk, s->encode(pcm.data(), 0, 0, 0, out.data(), out.size(), &len));
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(s->stats().frames, 0u);
}

// Each profile repeats as many earlier frames as it says, oldest first, each exactly the
// primary it was sent as, at its distance back in 48 kHz units; the timestamp sequence
// starts just below 2^32 so every distance is also computed across the wrap.
TEST(VoiceSender, RepeatsEarlierFramesPerProfileAcrossTheTimestampWrap) {
  const struct {
    int rate, channels;
  } formats[] = {{48000, 1}, {16000, 2}};
  for (const auto &f : formats) {
    for (size_t id = 0; id < voice_profile_count(); ++id) {
      SCOPED_TRACE(testing::Message() << f.rate << " Hz, profile " << id);
      const size_t depth = voice_profile(uint8_t(id))->redundancy;
      Driver d(f.rate, f.channels, uint8_t(id));
      const uint32_t step = d.frame_ts();
      ASSERT_EQ(step, 48u * voice_profile(uint8_t(id))->frame_ms);
      uint32_t ts = 0u - 3 * step - 7;
      std::vector<std::vector<uint8_t>> primaries;
      uint64_t opus_bytes = 0;
      for (int i = 0; i < 8; ++i, ts += step) {
        const Sent out = d.encode(ts, Driver::Input::kVoice, uint8_t(i));
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(out.p.feedback, uint8_t(i));
        EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, out.p.primary.len, 48000),
                  int(step));
        const size_t want = std::min(size_t(i), depth);
        ASSERT_EQ(out.p.red_count, want) << "frame " << i;
        opus_bytes += out.p.primary.len;
        for (size_t k = 0; k < want; ++k) {
          const size_t back_frames = want - k;  // oldest first
          EXPECT_EQ(out.p.red[k].ts_back, back_frames * step) << "frame " << i;
          EXPECT_EQ(out.red(k), primaries[primaries.size() - back_frames]) << "frame " << i;
          opus_bytes += out.p.red[k].len;
        }
        primaries.push_back(out.primary());
      }
      const VoiceSenderStats st = d.sender().stats();
      EXPECT_EQ(st.frames, 8u);
      EXPECT_EQ(st.sent, 8u);
      EXPECT_EQ(st.dtx_skipped, 0u);
      EXPECT_EQ(st.bytes, opus_bytes);
    }
  }
  EXPECT_EQ(voice_profile(1)->redundancy, 0);  // what the loop above checked as "absent"
  EXPECT_EQ(voice_profile(3)->redundancy, 1);
  EXPECT_EQ(voice_profile(4)->redundancy, 2);
}

// A u16 reaches 65535 units (1.37 s) back; anything older, at the same time or "newer"
// (the caller's timestamps went back) is left out, and the rest keeps its order.
TEST(VoiceSender, RepeatsOnlyFramesAU16TsBackCanReach) {
  const uint32_t base = 0xffffff00u;  // the gaps below straddle the wrap
  const auto backs = [](const Sent &s) {
    std::vector<uint32_t> v;
    for (size_t i = 0; i < s.p.red_count; ++i) v.push_back(s.p.red[i].ts_back);
    return v;
  };
  using V = std::vector<uint32_t>;
  {
    Driver d(48000, 1, 4);  // depth 2
    d.encode(base);
    d.encode(base + 2880);
    EXPECT_EQ(backs(d.encode(base + 65535)), (V{65535, 65535 - 2880}));
  }
  {
    Driver d(48000, 1, 4);
    d.encode(base);
    d.encode(base + 2880);
    EXPECT_EQ(backs(d.encode(base + 65536)), (V{65536 - 2880}));
  }
  {
    Driver d(48000, 1, 4);
    d.encode(base);
    d.encode(base + 2880);
    EXPECT_EQ(backs(d.encode(base + 2880 + 65536)), V{});
    // The frame just sent is history now; the two before it are out of reach for good.
    EXPECT_EQ(backs(d.encode(base + 2 * 2880 + 65536)), (V{2880}));
  }
  {
    Driver d(48000, 1, 4);
    d.encode(base);
    d.encode(base + 2880);
    EXPECT_EQ(backs(d.encode(base + 2880)), (V{2880}));  // same timestamp again: not older
  }
  {
    Driver d(48000, 1, 4);
    d.encode(base);
    d.encode(base + 5760);
    EXPECT_EQ(backs(d.encode(base + 2880)), (V{2880}));  // went back: only `base` is older
  }
}

// A profile change applies to the very next frame: its length, its redundancy. The frames
// repeated after the change are the ones sent before it, whatever their length.
TEST(VoiceSender, ProfileChangeMidStreamTakesEffectOnTheNextFrame) {
  Driver d(48000, 1, 1);
  uint32_t ts = 1000;
  std::vector<std::vector<uint8_t>> primaries;
  for (int i = 0; i < 5; ++i, ts += 960) {
    const Sent out = d.encode(ts);
    EXPECT_EQ(out.p.red_count, 0u);
    EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, out.p.primary.len, 48000), 960);
    primaries.push_back(out.primary());
  }
  ASSERT_EQ(kOk, d.sender().set_profile(4));
  EXPECT_EQ(d.sender().profile(), 4);
  EXPECT_EQ(d.sender().frame_samples(), 2880);
  EXPECT_EQ(d.sender().stats().profile, 4);

  Sent out = d.encode(ts);
  EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, out.p.primary.len, 48000), 2880);
  ASSERT_EQ(out.p.red_count, 2u);
  EXPECT_EQ(out.p.red[0].ts_back, 1920);
  EXPECT_EQ(out.p.red[1].ts_back, 960);
  EXPECT_EQ(out.red(0), primaries[3]);
  EXPECT_EQ(out.red(1), primaries[4]);
  EXPECT_EQ(VoiceDecoder::packet_samples(out.p.red[0].data, out.p.red[0].len, 48000), 960);
  primaries.push_back(out.primary());
  ts += 2880;

  out = d.encode(ts);
  EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, out.p.primary.len, 48000), 2880);
  ASSERT_EQ(out.p.red_count, 2u);
  EXPECT_EQ(out.p.red[0].ts_back, 2880 + 960);
  EXPECT_EQ(out.p.red[1].ts_back, 2880);
  EXPECT_EQ(out.red(0), primaries[4]);
  EXPECT_EQ(out.red(1), primaries[5]);
  ts += 2880;

  ASSERT_EQ(kOk, d.sender().set_profile(2));
  EXPECT_EQ(d.sender().frame_samples(), 960);
  out = d.encode(ts);
  EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, out.p.primary.len, 48000), 960);
  EXPECT_EQ(out.p.red_count, 0u);

  EXPECT_EQ(kErrInvalidArgument, d.sender().set_profile(uint8_t(voice_profile_count())));
  EXPECT_EQ(d.sender().profile(), 2);
  EXPECT_EQ(d.sender().frame_samples(), 960);
  EXPECT_EQ(d.sender().stats().profile, 2);
}

// What the header promises, computed independently: a second, bare encoder with the same
// settings fed the same audio yields the raw packets; DTX packets (<= 2 bytes) become up to
// kDtxMarkers 1-byte markers per run and then nothing; everything else is sent whole with
// the last `redundancy` sent non-marker frames that ts_back can reach.
class Model {
 public:
  Model(int rate, int channels, uint8_t profile) {
    EXPECT_EQ(kOk, VoiceEncoder::create(rate, channels, &enc_));
    EXPECT_EQ(kOk, enc_->set_profile(*voice_profile(profile)));
    EXPECT_EQ(kOk, enc_->set_dtx(true));
    depth_ = voice_profile(profile)->redundancy;
  }
  // The payload expected for `pcm` at `ts48` (empty: nothing sent); counts into `markers`.
  std::vector<uint8_t> next(const int16_t *pcm, uint32_t ts48, uint8_t feedback) {
    uint8_t raw[kMaxOpusPacket];
    const int n = enc_->encode(pcm, raw, sizeof raw);
    EXPECT_GT(n, 0);
    std::vector<uint8_t> out(kMaxVoicePayload);
    if (n <= 2) {
      if (++run_ > kDtxMarkers) return {};
      ++markers;
      out.resize(write_voice_payload(feedback, nullptr, 0, raw, 1, out.data(), out.size()));
      return out;
    }
    run_ = 0;
    std::vector<VoiceBlock> red;
    for (size_t i = history_.size() > depth_ ? history_.size() - depth_ : 0;
         i < history_.size(); ++i) {
      const uint32_t back = ts48 - history_[i].first;
      if (back > 0 && back <= 0xffff) {
        red.push_back({uint16_t(back), history_[i].second.data(), history_[i].second.size()});
      }
    }
    out.resize(write_voice_payload(feedback, red.data(), red.size(), raw, size_t(n),
                                   out.data(), out.size()));
    history_.emplace_back(ts48, std::vector<uint8_t>(raw, raw + n));
    if (history_.size() > kMaxRedundancy) history_.pop_front();
    return out;
  }
  int markers = 0;

 private:
  std::unique_ptr<VoiceEncoder> enc_;
  size_t depth_ = 0;
  int run_ = 0;
  std::deque<std::pair<uint32_t, std::vector<uint8_t>>> history_;
};

// With DTX on: speech, then digital silence long enough for Opus to go into DTX (it does
// after ~10 frames, and sends a comfort-noise update every ~20 frames after that), then
// speech again.
TEST(VoiceSender, DigitalSilenceBecomesMarkersThenNothingWithDtx) {
  for (uint8_t id : {1, 4}) {
    SCOPED_TRACE(testing::Message() << "profile " << int(id));
    Driver d(48000, 1, id, /*dtx=*/true);
    Model m(48000, 1, id);
    uint32_t ts = 0u - 50 * d.frame_ts();
    int frames = 0, sent = 0, skipped = 0, markers = 0;
    uint64_t opus_bytes = 0;
    int run = 0, longest_run = 0;
    for (int i = 0; i < 160; ++i, ts += d.frame_ts(), ++frames) {
      const bool speech = i < 20 || i >= 140;
      const Sent out = d.encode(ts, speech ? Driver::Input::kVoice : Driver::Input::kZeros,
                                uint8_t(i));
      const std::vector<uint8_t> want = m.next(d.last_pcm().data(), ts, uint8_t(i));
      ASSERT_EQ(out.bytes, want) << "frame " << i;
      if (out.empty()) {
        ++skipped;
        longest_run = std::max(longest_run, ++run);
        continue;
      }
      ++sent;
      if (out.p.primary.len == 1) {
        ++markers;
        ++run;
        EXPECT_EQ(out.p.red_count, 0u);
        EXPECT_EQ(out.bytes.size(), kVoicePayloadFixed + 1);
        EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, 1, 48000),
                  int(d.frame_ts()));  // the TOC still says the frame's duration
        opus_bytes += 1;
      } else {
        run = 0;
        opus_bytes += out.p.primary.len;
        for (size_t k = 0; k < out.p.red_count; ++k) {
          EXPECT_GT(out.p.red[k].len, 2u) << "a marker was repeated";
          opus_bytes += out.p.red[k].len;
        }
      }
      longest_run = std::max(longest_run, run);
    }
    const VoiceSenderStats st = d.sender().stats();
    EXPECT_EQ(st.frames, uint64_t(frames));
    EXPECT_EQ(st.sent, uint64_t(sent));
    EXPECT_EQ(st.dtx_skipped, uint64_t(skipped));
    EXPECT_EQ(st.bytes, opus_bytes);
    EXPECT_EQ(markers, m.markers);
    // The scenario really went through DTX, more than once (the comfort-noise updates
    // restart the marker count), and speech came back.
    EXPECT_GE(markers, 2 * kDtxMarkers);
    EXPECT_GT(skipped, 50);
    EXPECT_GT(longest_run, kDtxMarkers);
  }
}

// Muted (NULL pcm) is digital silence: byte for byte what zeros produce, DTX included.
TEST(VoiceSender, MutedEncodesSilence) {
  for (uint8_t id : {0, 4}) {
    Driver muted(48000, 2, id, true), zeros(48000, 2, id, true);
    uint32_t ts = 123;
    for (int i = 0; i < 100; ++i, ts += muted.frame_ts()) {
      const bool speech = i < 10 || (i >= 60 && i < 70);
      const Sent a = muted.encode(ts, speech ? Driver::Input::kVoice : Driver::Input::kMuted);
      const Sent b = zeros.encode(ts, speech ? Driver::Input::kVoice : Driver::Input::kZeros);
      ASSERT_EQ(a.bytes, b.bytes) << "profile " << int(id) << ", frame " << i;
    }
    const VoiceSenderStats sa = muted.sender().stats(), sb = zeros.sender().stats();
    EXPECT_EQ(sa.sent, sb.sent);
    EXPECT_EQ(sa.bytes, sb.bytes);
    EXPECT_EQ(sa.dtx_skipped, sb.dtx_skipped);
    EXPECT_GT(sa.dtx_skipped, 20u);
  }
}

// By default (no DTX) every frame is sent, and every payload of a profile has one size once
// redundancy has filled up, whatever the input: voice, digital silence, mute, and with the
// peer reporting loss (Opus FEC on) or not. The primary is always opus_packet_bytes().
TEST(VoiceSender, EveryPayloadOfAProfileHasOneSizeByDefault) {
  const struct {
    int rate, channels;
  } formats[] = {{48000, 1}, {16000, 2}};
  for (const auto &f : formats) {
    for (size_t id = 0; id < voice_profile_count(); ++id) {
      SCOPED_TRACE(testing::Message() << f.rate << " Hz x" << f.channels << ", profile " << id);
      const VoiceProfile &p = *voice_profile(uint8_t(id));
      const size_t packet = opus_packet_bytes(p);
      Driver d(f.rate, f.channels, uint8_t(id));
      uint32_t ts = 77;
      int64_t now = 0;
      for (int i = 0; i < 90; ++i, ts += d.frame_ts(), now += p.frame_ms) {
        if (i == 60) d.sender().on_peer_feedback(40, now);
        const auto in = i % 30 < 10   ? Driver::Input::kVoice
                        : i % 30 < 20 ? Driver::Input::kZeros
                                      : Driver::Input::kMuted;
        const Sent out = d.encode(ts, in, 0, now);
        ASSERT_FALSE(out.empty()) << "frame " << i;
        EXPECT_EQ(out.p.primary.len, packet) << "frame " << i;
        const size_t red = std::min<size_t>(size_t(i), p.redundancy);
        EXPECT_EQ(out.bytes.size(),
                  kVoicePayloadFixed + packet + red * (kVoiceRedBlockHeader + packet))
            << "frame " << i;
        EXPECT_EQ(VoiceDecoder::packet_samples(out.p.primary.data, out.p.primary.len, f.rate),
                  d.sender().frame_samples());
      }
      const VoiceSenderStats st = d.sender().stats();
      EXPECT_EQ(st.sent, 90u);
      EXPECT_EQ(st.dtx_skipped, 0u);
      EXPECT_GT(st.loss_hint, 0);
    }
  }
}

// The receiving side with these payloads: a VoiceSender's stream into a VoiceReceiver on a
// simulated clock (payloads arrive 30 ms after their time, the host pulls 10 ms chunks).
struct RxResult {
  JitterStats st;
  double energy = 0;  // of everything played
};
RxResult send_and_receive(uint8_t profile, bool dtx, uint8_t feedback, int drop_every,
                          const std::function<Driver::Input(int)> &input, int frames) {
  Driver d(48000, 1, profile, dtx);
  std::unique_ptr<VoiceReceiver> rx;
  EXPECT_EQ(kOk, VoiceReceiver::create(JitterConfig{}, &rx));
  RxResult r;
  if (!rx) return r;
  const uint32_t ts0 = 0xfffff000u;
  uint32_t ts = ts0;
  int64_t pulled_us = 0;
  std::vector<int16_t> out(480);
  for (int i = 0; i < frames; ++i, ts += d.frame_ts()) {
    const int64_t at_us = int64_t(ts - ts0) * 1000 / 48 + 30000;
    while (pulled_us + 10000 <= at_us) {
      rx->pull(out.data(), out.size(), pulled_us);
      for (int16_t v : out) r.energy += double(v) * v;
      pulled_us += 10000;
    }
    const Sent s = d.encode(ts, input(i), feedback, at_us / 1000);
    if (feedback) d.sender().on_peer_feedback(feedback, at_us / 1000);
    if (s.empty() || (drop_every && i % drop_every == drop_every - 1)) continue;
    EXPECT_EQ(kOk, rx->insert(ts, s.bytes.data(), s.bytes.size(), at_us));
  }
  r.st = rx->stats();
  return r;
}

// Constant-size payloads keep every receive path working: redundancy and Opus FEC rebuild
// lost frames, and a DTX stream's pauses play as comfort noise.
TEST(VoiceSender, ReceiverRecoversAndPlaysTheseStreams) {
  const auto voice = [](int) { return Driver::Input::kVoice; };
  {
    SCOPED_TRACE("profile 3, every 4th frame lost: redundancy");
    const RxResult r = send_and_receive(3, false, 0, 4, voice, 100);
    EXPECT_EQ(r.st.malformed, 0u);
    EXPECT_GE(r.st.red_recovered, 20u);
    EXPECT_GT(r.energy, 0);
  }
  {
    SCOPED_TRACE("profile 2, peer reports 16 % loss, every 10th lost: FEC");
    const RxResult r = send_and_receive(2, false, 40, 10, voice, 150);
    EXPECT_EQ(r.st.malformed, 0u);
    EXPECT_GE(r.st.fec_recovered, 7u);  // of 15 lost
  }
  {
    SCOPED_TRACE("profile 1 with DTX: 1 s voice, 2 s silence, 1 s voice");
    const RxResult r = send_and_receive(
        1, true, 0, 0,
        [](int i) { return i < 50 || i >= 150 ? Driver::Input::kVoice : Driver::Input::kZeros; },
        200);
    EXPECT_EQ(r.st.malformed, 0u);
    EXPECT_GT(r.st.comfort_noise, 50u);
    EXPECT_GE(r.st.frames_decoded, 100u);
    EXPECT_EQ(r.st.concealed, 0u);
  }
}

int hint_after(Driver &d, uint32_t &ts, int64_t now_ms) {
  d.encode(ts, Driver::Input::kVoice, 0, now_ms);
  ts += d.frame_ts();
  return d.sender().stats().loss_hint;
}

TEST(VoiceSender, LossHintIsTheLargestReportOfTheHoldWindowRoundedUp) {
  Driver d(48000, 1, 2);
  uint32_t ts = 0;
  const int64_t t0 = -1000;  // "any monotonic ms": negative is fine
  EXPECT_EQ(hint_after(d, ts, t0), 0);

  d.sender().on_peer_feedback(128, t0 + 1000);  // 50 %
  d.sender().on_peer_feedback(51, t0 + 2000);   // 19.9 % -> 20
  d.sender().on_peer_feedback(0, t0 + 3000);
  EXPECT_EQ(hint_after(d, ts, t0 + 3000), 50);
  EXPECT_EQ(hint_after(d, ts, t0 + 1000 + kLossHintHoldMs - 1), 50);
  EXPECT_EQ(hint_after(d, ts, t0 + 1000 + kLossHintHoldMs), 20);
  EXPECT_EQ(hint_after(d, ts, t0 + 2000 + kLossHintHoldMs - 1), 20);
  EXPECT_EQ(hint_after(d, ts, t0 + 2000 + kLossHintHoldMs), 0);
  // A larger report replaces the maximum at once; a smaller one does not lower it.
  d.sender().on_peer_feedback(3, t0 + 8000);  // 1.17 % -> 2
  EXPECT_EQ(hint_after(d, ts, t0 + 8000), 2);
  d.sender().on_peer_feedback(255, t0 + 8100);
  EXPECT_EQ(hint_after(d, ts, t0 + 8100), 100);
  d.sender().on_peer_feedback(1, t0 + 8200);
  EXPECT_EQ(hint_after(d, ts, t0 + 8200), 100);
  EXPECT_EQ(hint_after(d, ts, t0 + 8100 + kLossHintHoldMs), 1);  // 0.39 % -> 1
  EXPECT_EQ(hint_after(d, ts, t0 + 8200 + kLossHintHoldMs), 0);
  EXPECT_EQ(hint_after(d, ts, t0 + 100000), 0);
}

// The hint reaches Opus: FEC appears in the packets with a report and stops when it expires.
// (Profile 2: 20 kbit/s wideband SILK is above libopus' LBRR threshold; see opus_codec_test.)
TEST(VoiceSender, LossHintSwitchesOpusFecOnAndOff) {
  Driver d(48000, 1, 2);
  uint32_t ts = 0;
  int64_t now = 0;
  const auto count_fec = [&](int frames) {
    int n = 0;
    for (int i = 0; i < frames; ++i, ts += d.frame_ts(), now += 20) {
      const Sent out = d.encode(ts, Driver::Input::kVoice, 0, now);
      n += VoiceDecoder::has_fec(out.p.primary.data, out.p.primary.len);
    }
    return n;
  };
  EXPECT_EQ(count_fec(50), 0);
  d.sender().on_peer_feedback(40, now);  // 15.6 % -> 16
  EXPECT_GE(count_fec(50), 40);
  EXPECT_EQ(d.sender().stats().loss_hint, 16);
  now += kLossHintHoldMs;
  count_fec(2);  // the packet after the hint drops may still protect the frame before
  EXPECT_EQ(d.sender().stats().loss_hint, 0);
  EXPECT_EQ(count_fec(50), 0);
}

// Reports of every value, each smaller than the one before: the window must hold them all
// (a report can only be discarded once a larger, later one exists), and as they expire one
// by one the hint steps down through each of them.
TEST(VoiceSender, LossHintHoldsADescendingRunOfEveryValue) {
  Driver d(48000, 1, 1);
  uint32_t ts = 0;
  for (int i = 0; i < 256; ++i) d.sender().on_peer_feedback(uint8_t(255 - i), i);
  for (int k = 0; k < 256; ++k) {
    // At kLossHintHoldMs + k the reports made at 0..k have expired; 254 - k is the largest.
    const int want = k >= 255 ? 0 : ((254 - k) * 100 + 255) / 256;
    ASSERT_EQ(hint_after(d, ts, int64_t(kLossHintHoldMs) + k), want) << k;
  }
}

}  // namespace
}  // namespace parley::media

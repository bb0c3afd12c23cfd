#include "media/opus_codec.h"

#include <gtest/gtest.h>
#include <opus/opus.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "media/voice_profile.h"

namespace parley::media {
namespace {

const int kRates[] = {8000, 12000, 16000, 24000, 48000};
const int kFrameMs[] = {10, 20, 40, 60};

// Voiced speech, roughly: a gliding 170 +- 50 Hz pitch with harmonics falling off as 1/h,
// shaped into three "syllables" a second, plus a little breath noise. The glide matters: a
// steady tone would let concealment (which extrapolates the last pitch) pass for real audio.
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

// Normalised correlation of a[i] with b[i - lag] over the samples both cover (mono).
double correlation(const std::vector<int16_t> &a, const std::vector<int16_t> &b, size_t lag) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = lag; i < a.size() && i - lag < b.size(); ++i) {
    ab += double(a[i]) * b[i - lag];
    aa += double(a[i]) * a[i];
    bb += double(b[i - lag]) * b[i - lag];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

// The codec's delay is fixed (6.5 ms in VOIP mode) but is found rather than hard-coded, so
// the test measures waveform fidelity, not knowledge of libopus internals.
double best_correlation(const std::vector<int16_t> &decoded, const std::vector<int16_t> &orig,
                        int rate, size_t *best_lag = nullptr) {
  double best = -1;
  for (size_t lag = 0; lag <= size_t(rate / 100); ++lag) {
    const double c = correlation(decoded, orig, lag);
    if (c > best) {
      best = c;
      if (best_lag) *best_lag = lag;
    }
  }
  return best;
}

VoiceProfile with_frame_ms(uint8_t id, int ms) {
  VoiceProfile p = *voice_profile(id);
  p.frame_ms = uint16_t(ms);
  return p;
}

TEST(OpusCodec, CreatesAtEveryNativeRateAndRefusesOthers) {
  for (int rate : kRates) {
    for (int ch = 1; ch <= 2; ++ch) {
      std::unique_ptr<VoiceEncoder> e;
      std::unique_ptr<VoiceDecoder> d;
      ASSERT_EQ(kOk, VoiceEncoder::create(rate, ch, &e)) << rate << "x" << ch;
      ASSERT_EQ(kOk, VoiceDecoder::create(rate, ch, &d)) << rate << "x" << ch;
      EXPECT_EQ(e->sample_rate(), rate);
      EXPECT_EQ(e->channels(), ch);
      EXPECT_EQ(d->sample_rate(), rate);
      EXPECT_EQ(d->channels(), ch);
      // The default profile is applied at creation.
      EXPECT_EQ(e->frame_samples(), samples_for_ms(rate, voice_profile(kDefaultProfile)->frame_ms));
      EXPECT_EQ(e->loss_percent(), 0);
    }
  }
  const struct {
    int rate, channels;
  } bad[] = {{44100, 1}, {48000, 3}, {48000, 0}, {0, 1}, {96000, 2}, {-16000, 1}};
  for (const auto &b : bad) {
    std::unique_ptr<VoiceEncoder> e;
    std::unique_ptr<VoiceDecoder> d;
    EXPECT_EQ(kErrAudioFormat, VoiceEncoder::create(b.rate, b.channels, &e));
    EXPECT_EQ(kErrAudioFormat, VoiceDecoder::create(b.rate, b.channels, &d));
    EXPECT_FALSE(e);
    EXPECT_FALSE(d);
  }
  EXPECT_FALSE(is_opus_rate(44100));
  EXPECT_TRUE(is_opus_rate(12000));
}

TEST(OpusCodec, RefusesFrameLengthsOpusCannotEncode) {
  std::unique_ptr<VoiceEncoder> e;
  ASSERT_EQ(kOk, VoiceEncoder::create(48000, 1, &e));
  for (int ms : {0, 5, 30, 80, 120}) {
    EXPECT_EQ(kErrAudioFormat, e->set_profile(with_frame_ms(1, ms))) << ms;
  }
  EXPECT_EQ(e->frame_samples(), 960);  // the refused profile changed nothing
}

// Every profile at every frame length, mono at 48 kHz and stereo at 16 kHz: the packet says
// its own duration, the decoder returns exactly a frame, and the audio survives.
TEST(OpusCodec, EncodesAndDecodesVoiceAtEveryProfileAndFrameLength) {
  const struct {
    int rate, channels;
  } formats[] = {{48000, 1}, {16000, 2}};
  for (const auto &f : formats) {
    for (size_t id = 0; id < voice_profile_count(); ++id) {
      for (int ms : kFrameMs) {
        SCOPED_TRACE(testing::Message() << f.rate << " Hz x" << f.channels << ", profile "
                                        << id << ", " << ms << " ms");
        std::unique_ptr<VoiceEncoder> e;
        std::unique_ptr<VoiceDecoder> d;
        ASSERT_EQ(kOk, VoiceEncoder::create(f.rate, f.channels, &e));
        ASSERT_EQ(kOk, VoiceDecoder::create(f.rate, f.channels, &d));
        ASSERT_EQ(kOk, e->set_profile(with_frame_ms(uint8_t(id), ms)));
        const int fs = e->frame_samples();
        ASSERT_EQ(fs, samples_for_ms(f.rate, ms));
        Voice voice(f.rate);
        std::vector<int16_t> pcm(size_t(fs) * f.channels), out(kMaxFrameSamples * 2);
        std::vector<int16_t> orig, dec;  // first channel only
        uint8_t pkt[kMaxOpusPacket];
        const int frames = 1200 / ms;  // 1.2 s: the encoder's start-up is a small part
        size_t total = 0;
        for (int i = 0; i < frames; ++i) {
          voice.next(pcm.data(), fs, f.channels);
          const int n = e->encode(pcm.data(), pkt, sizeof pkt);
          // Constant bitrate: every packet is the profile's size (so above DTX's 2 bytes).
          ASSERT_EQ(size_t(n), e->packet_bytes());
          total += size_t(n);
          ASSERT_EQ(fs, VoiceDecoder::packet_samples(pkt, size_t(n), f.rate));
          ASSERT_EQ(fs, d->decode(pkt, size_t(n), out.data(), int(kMaxFrameSamples)));
          for (int s = 0; s < fs; ++s) {
            orig.push_back(pcm[size_t(s) * f.channels]);
            dec.push_back(out[size_t(s) * f.channels]);
          }
        }
        // ... which is the target bitrate, to the byte per frame.
        const double bps = double(total) * 8 * 1000 / (frames * ms);
        EXPECT_NEAR(bps, voice_profile(uint8_t(id))->bitrate_bps, 4 * 8 * 1000.0 / ms);
        // Measured 0.86-0.92 (VOIP mode's high-pass shifts the phase of the low harmonics,
        // so even 48 kbit/s stays near 0.9), except 6 kbit/s in 10 ms frames (about 0.5:
        // 7.5 bytes a frame is mostly side information; profile 4 uses 60 ms for that reason).
        const double want = id == 4 && ms == 10 ? 0.4 : 0.8;
        EXPECT_GT(best_correlation(dec, orig, f.rate), want);
      }
    }
  }
}

// What libopus' CBR makes of each profile (so the encoder's cap and padding change nothing
// in practice), and the sizes docs/quality.md and docs/protocol.md quote.
TEST(OpusCodec, PacketBytesPerProfile) {
  const size_t want[] = {120, 80, 50, 60, 45};
  ASSERT_EQ(voice_profile_count(), sizeof want / sizeof want[0]);
  for (uint8_t id = 0; id < voice_profile_count(); ++id) {
    EXPECT_EQ(opus_packet_bytes(*voice_profile(id)), want[id]) << int(id);
  }
  VoiceProfile tiny = *voice_profile(4);
  tiny.bitrate_bps = 500;
  tiny.frame_ms = 10;
  EXPECT_EQ(opus_packet_bytes(tiny), 3u);  // never a size that reads as DTX
  VoiceProfile huge = *voice_profile(0);
  huge.bitrate_bps = 512000;
  huge.frame_ms = 60;
  EXPECT_EQ(opus_packet_bytes(huge), kMaxOpusPacket);

  std::unique_ptr<VoiceEncoder> e;
  ASSERT_EQ(kOk, VoiceEncoder::create(48000, 1, &e));
  EXPECT_EQ(e->packet_bytes(), opus_packet_bytes(*voice_profile(kDefaultProfile)));
  std::vector<int16_t> pcm(size_t(e->frame_samples()));
  uint8_t pkt[kMaxOpusPacket];
  EXPECT_EQ(kErrBufferTooSmall, e->encode(pcm.data(), pkt, e->packet_bytes() - 1));
  EXPECT_EQ(int(e->packet_bytes()), e->encode(pcm.data(), pkt, e->packet_bytes()));
}

// DTX is off after create(): digital silence is full-size packets. On, it becomes packets
// of at most 2 bytes after ~200 ms; off again, full size again.
TEST(OpusCodec, DtxOnlyWhenAskedFor) {
  std::unique_ptr<VoiceEncoder> e;
  ASSERT_EQ(kOk, VoiceEncoder::create(48000, 1, &e));
  EXPECT_FALSE(e->dtx());
  std::vector<int16_t> zeros(size_t(e->frame_samples()));
  uint8_t pkt[kMaxOpusPacket];
  const auto smallest = [&](int frames) {
    size_t m = kMaxOpusPacket;
    for (int i = 0; i < frames; ++i) {
      const int n = e->encode(zeros.data(), pkt, sizeof pkt);
      EXPECT_GT(n, 0);
      m = std::min(m, size_t(n));
    }
    return m;
  };
  EXPECT_EQ(smallest(50), e->packet_bytes());
  ASSERT_EQ(kOk, e->set_dtx(true));
  EXPECT_TRUE(e->dtx());
  EXPECT_TRUE(is_dtx_packet(smallest(50)));
  ASSERT_EQ(kOk, e->set_dtx(false));
  smallest(2);
  EXPECT_EQ(smallest(50), e->packet_bytes());
}

// Opus's own padding (RFC 6716 3.2.5), which CBR packets use: a packet whose padding length
// runs past its end is refused by packet_samples (so a receiver drops it on arrival) and by
// the decoder, and nothing crashes.
TEST(OpusCodec, RefusesPacketsWhosePaddingDoesNotFit) {
  std::unique_ptr<VoiceEncoder> e;
  std::unique_ptr<VoiceDecoder> d;
  ASSERT_EQ(kOk, VoiceEncoder::create(48000, 1, &e));
  ASSERT_EQ(kOk, VoiceDecoder::create(48000, 1, &d));
  ASSERT_EQ(kOk, e->set_profile(*voice_profile(4)));
  std::vector<int16_t> pcm(size_t(e->frame_samples()));
  std::vector<int16_t> out(kMaxFrameSamples);
  Voice voice(48000);
  uint8_t pkt[kMaxOpusPacket];
  voice.next(pcm.data(), e->frame_samples(), 1);
  int n = e->encode(pcm.data(), pkt, sizeof pkt);
  ASSERT_EQ(size_t(n), e->packet_bytes());
  // A padded packet of our own making: a 1-byte frame (TOC alone, an empty frame) padded to
  // the profile's size, code 3 with the padding flag.
  uint8_t padded[kMaxOpusPacket] = {uint8_t(pkt[0] & ~3)};  // code 0: one frame
  ASSERT_EQ(OPUS_OK, opus_packet_pad(padded, 1, n));
  ASSERT_EQ(3, padded[0] & 3);
  ASSERT_TRUE(padded[1] & 0x40);
  EXPECT_EQ(e->frame_samples(), VoiceDecoder::packet_samples(padded, size_t(n), 48000));
  EXPECT_EQ(e->frame_samples(), d->decode(padded, size_t(n), out.data(), int(kMaxFrameSamples)));
  // One more byte of padding than there is room for, and the same packet cut short.
  uint8_t bad[kMaxOpusPacket];
  std::memcpy(bad, padded, size_t(n));
  ++bad[2];
  EXPECT_EQ(kErrCodec, VoiceDecoder::packet_samples(bad, size_t(n), 48000));
  EXPECT_EQ(kErrCodec, d->decode(bad, size_t(n), out.data(), int(kMaxFrameSamples)));
  EXPECT_EQ(kErrCodec, VoiceDecoder::packet_samples(padded, size_t(n) - 3, 48000));
  // Every truncation of a real CBR packet either parses or is refused; none crashes.
  for (int len = 1; len <= n; ++len) {
    const int k = VoiceDecoder::packet_samples(pkt, size_t(len), 48000);
    EXPECT_TRUE(k == kErrCodec || k == e->frame_samples()) << len;
  }
}

std::vector<std::vector<uint8_t>> encode_voice(uint8_t profile, int loss, int rate, int frames,
                                               int channels = 1, int frame_ms = 0) {
  std::unique_ptr<VoiceEncoder> e;
  EXPECT_EQ(kOk, VoiceEncoder::create(rate, channels, &e));
  EXPECT_EQ(kOk, e->set_profile(frame_ms ? with_frame_ms(profile, frame_ms)
                                         : *voice_profile(profile)));
  EXPECT_EQ(kOk, e->set_loss_percent(loss));
  Voice voice(rate);
  std::vector<int16_t> pcm(size_t(e->frame_samples()) * channels);
  std::vector<std::vector<uint8_t>> packets;
  uint8_t pkt[kMaxOpusPacket];
  for (int i = 0; i < frames; ++i) {
    voice.next(pcm.data(), e->frame_samples(), channels);
    const int n = e->encode(pcm.data(), pkt, sizeof pkt);
    EXPECT_GT(n, 0);
    if (n > 0) packets.emplace_back(pkt, pkt + n);
  }
  return packets;
}

// Whether each packet really carries LBRR, by asking the decoder rather than reading bits:
// decode_fec from a packet without LBRR falls back to exactly the concealment a twin decoder
// in the same state produces, and with LBRR it does not. libopus decoder states are flat
// memory (opus_decoder_get_size), so twins are copies. Packets that switch mode or bandwidth
// are skipped (decode_fec switches the decoder to the packet's first, which changes what the
// concealment does), and so are the first three (nothing decoded to conceal from yet).
// Returns, per packet, -1 (not judged), 0 or 1.
std::vector<int> lbrr_per_decoder(const std::vector<std::vector<uint8_t>> &packets, int rate,
                                  int channels, int fs) {
  const size_t size = size_t(opus_decoder_get_size(channels));
  std::vector<unsigned char> base(size), a(size), b(size);
  auto *st = reinterpret_cast<OpusDecoder *>(base.data());
  EXPECT_EQ(OPUS_OK, opus_decoder_init(st, rate, channels));
  std::vector<opus_int16> x(kMaxFrameSamples * 2), y(kMaxFrameSamples * 2);
  std::vector<int> out(packets.size(), -1);
  for (size_t j = 0; j + 1 < packets.size(); ++j) {
    const auto &next = packets[j + 1];
    // base has decoded 0 .. j-1. A switch one packet earlier still shapes the decoder's
    // state (seen with constant bitrate: hybrid FB 10 ms right after SWB, no LBRR flag, yet
    // decode_fec differed from concealment).
    if (j >= 2 && next[0] >> 3 == packets[j][0] >> 3 &&
        packets[j][0] >> 3 == packets[j - 1][0] >> 3) {
      a = base;
      b = base;
      EXPECT_EQ(fs, opus_decode(reinterpret_cast<OpusDecoder *>(a.data()), next.data(),
                                opus_int32(next.size()), x.data(), fs, 1));
      EXPECT_EQ(fs, opus_decode(reinterpret_cast<OpusDecoder *>(b.data()), nullptr, 0,
                                y.data(), fs, 0));
      out[j + 1] = std::memcmp(x.data(), y.data(), size_t(fs) * channels * 2) != 0;
    }
    EXPECT_EQ(fs, opus_decode(st, packets[j].data(), opus_int32(packets[j].size()), x.data(),
                              fs, 0));
  }
  return out;
}

// The LBRR flag has_fec reads sits at a bit position that depends on how many SILK frames
// the packet holds (one per 20 ms, at least one) and, for stereo, on the mid channel's
// flags; every frame length, mono and stereo, at each profile's bitrate with a loss hint.
TEST(OpusCodec, HasFecAgreesWithTheDecoder) {
  for (size_t id = 0; id < voice_profile_count(); ++id) {
    for (int ms : kFrameMs) {
      for (int channels = 1; channels <= 2; ++channels) {
        const auto packets = encode_voice(uint8_t(id), 20, 48000, 40, channels, ms);
        const int fs = samples_for_ms(48000, ms);
        const std::vector<int> truth = lbrr_per_decoder(packets, 48000, channels, fs);
        int judged = 0;
        for (size_t i = 0; i < packets.size(); ++i) {
          if (truth[i] < 0) continue;
          ++judged;
          EXPECT_EQ(truth[i] == 1, VoiceDecoder::has_fec(packets[i].data(), packets[i].size()))
              << "profile " << id << ", " << ms << " ms, " << channels << " ch, packet " << i
              << ", TOC config " << (packets[i][0] >> 3);
        }
        EXPECT_GT(judged, 20) << "profile " << id << ", " << ms << " ms, " << channels;
      }
    }
  }
}

// has_fec, per profile as the profile table has it (mono 48 kHz), with no loss hint and
// with 20 %.
//
// Measured with libopus 1.3: with a 20 % hint the SILK and hybrid packets of profiles 0-2
// carry LBRR (after the first, which has no previous frame to protect), but profiles 3
// (12 kbit/s wideband) and 4 (6 kbit/s narrowband) never do, whatever the hint: SILK only
// codes LBRR above a minimum rate (silk/control_codec.c silk_setup_LBRR: 12/14/16 kbit/s for
// NB/MB/WB, times (125 - min(loss, 25)) %), which both profiles are below. Their `fec`
// flag is therefore inert and redundancy is all they have.
TEST(OpusCodec, HasFecOnlyWithALossHintAndEnoughBitrate) {
  const int frames = 50;
  for (size_t id = 0; id < voice_profile_count(); ++id) {
    ASSERT_TRUE(voice_profile(uint8_t(id))->fec);
    for (int loss : {0, 20}) {
      SCOPED_TRACE(testing::Message() << "profile " << id << ", loss " << loss << " %");
      const auto packets = encode_voice(uint8_t(id), loss, 48000, frames);
      ASSERT_EQ(packets.size(), size_t(frames));
      int with_fec = 0;
      for (const auto &pk : packets) {
        ASSERT_LT(pk[0] >> 3, 16) << "voice at these rates is SILK or hybrid, never CELT";
        with_fec += VoiceDecoder::has_fec(pk.data(), pk.size());
      }
      if (loss == 0 || id >= 3) {
        EXPECT_EQ(with_fec, 0);
      } else {
        EXPECT_GE(with_fec, frames * 3 / 4);
      }
    }
  }
}

TEST(OpusCodec, HasFecRefusesWhatCannotCarryIt) {
  const auto packets = encode_voice(2, 20, 48000, 10);
  ASSERT_TRUE(VoiceDecoder::has_fec(packets[5].data(), packets[5].size()));
  EXPECT_FALSE(VoiceDecoder::has_fec(packets[5].data(), 1));  // TOC only: no frame
  EXPECT_FALSE(VoiceDecoder::has_fec(packets[5].data(), 0));
  std::vector<uint8_t> big(kMaxOpusPacket + 1, 0xff);
  big[0] = packets[5][0];
  EXPECT_FALSE(VoiceDecoder::has_fec(big.data(), big.size()));
  uint8_t celt[8] = {uint8_t(31 << 3), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(VoiceDecoder::has_fec(celt, sizeof celt));
  EXPECT_EQ(kErrCodec, VoiceDecoder::packet_samples(celt, 0, 48000));
  EXPECT_EQ(kErrCodec, VoiceDecoder::packet_samples(big.data(), big.size(), 48000));
}

// A lost frame rebuilt from the next packet's LBRR resembles what was lost, and far more
// than concealment (which can only extrapolate) does. Many single losses along a stream, as
// one position can land where extrapolation happens to do well.
TEST(OpusCodec, DecodeFecRebuildsTheFrameBeforeFromTheNextPacket) {
  const int rate = 48000, fs = 960, frames = 100;
  std::unique_ptr<VoiceEncoder> e;
  ASSERT_EQ(kOk, VoiceEncoder::create(rate, 1, &e));
  ASSERT_EQ(kOk, e->set_profile(*voice_profile(1)));
  ASSERT_EQ(kOk, e->set_loss_percent(20));
  Voice voice(rate);
  std::vector<int16_t> orig(size_t(fs) * frames);
  std::vector<std::vector<uint8_t>> packets;
  uint8_t pkt[kMaxOpusPacket];
  for (int i = 0; i < frames; ++i) {
    voice.next(&orig[size_t(i) * fs], fs, 1);
    const int n = e->encode(&orig[size_t(i) * fs], pkt, sizeof pkt);
    ASSERT_GT(n, 0);
    packets.emplace_back(pkt, pkt + n);
  }
  // The stream decoded without loss: what each frame should sound like after the codec.
  std::unique_ptr<VoiceDecoder> whole;
  ASSERT_EQ(kOk, VoiceDecoder::create(rate, 1, &whole));
  std::vector<int16_t> ref(orig.size());
  for (int i = 0; i < frames; ++i) {
    const auto &p = packets[size_t(i)];
    ASSERT_EQ(fs, whole->decode(p.data(), p.size(), &ref[size_t(i) * fs], fs));
  }
  size_t lag = 0;
  ASSERT_GT(best_correlation(ref, orig, rate, &lag), 0.8);

  double fec_ref = 0, plc_ref = 0, fec_orig = 0;
  int trials = 0;
  std::vector<int16_t> x(kMaxFrameSamples), y(kMaxFrameSamples);
  for (int lost = 10; lost + 1 < frames; lost += 3) {
    const auto &next = packets[size_t(lost) + 1];
    if (!VoiceDecoder::has_fec(next.data(), next.size())) continue;
    std::unique_ptr<VoiceDecoder> fec, plc;
    ASSERT_EQ(kOk, VoiceDecoder::create(rate, 1, &fec));
    ASSERT_EQ(kOk, VoiceDecoder::create(rate, 1, &plc));
    for (int i = 0; i < lost; ++i) {
      const auto &p = packets[size_t(i)];
      ASSERT_EQ(fs, fec->decode(p.data(), p.size(), x.data(), fs));
      ASSERT_EQ(fs, plc->decode(p.data(), p.size(), y.data(), fs));
    }
    ASSERT_EQ(fs, fec->decode_fec(next.data(), next.size(), x.data(), fs));
    ASSERT_EQ(fs, plc->conceal(y.data(), fs));
    const std::vector<int16_t> got_fec(x.begin(), x.begin() + fs), got_plc(y.begin(), y.begin() + fs);
    const auto at = ref.begin() + long(lost) * fs;
    const std::vector<int16_t> want(at, at + fs);
    const auto o = orig.begin() + long(lost) * fs - long(lag);
    const std::vector<int16_t> want_orig(o, o + fs);
    fec_ref += correlation(got_fec, want, 0);
    plc_ref += correlation(got_plc, want, 0);
    fec_orig += correlation(got_fec, want_orig, 0);
    ++trials;
  }
  ASSERT_GE(trials, 20);  // of 30: nearly every packet carries LBRR at this profile
  // Measured means (libopus 1.3, constant bitrate, 24 trials): FEC 0.98 against the frame as
  // decoded without loss and 0.86 against the original; concealment 0.75. (Profile 2, which
  // this test used with VBR, gets less out of its LBRR at a constant 20 kbit/s: FEC 0.90,
  // concealment 0.84; it was 0.98 and 0.79 with VBR, where the LBRR bits came on top.)
  EXPECT_GT(fec_ref / trials, 0.9);
  EXPECT_GT(fec_ref / trials, plc_ref / trials + 0.1);
  EXPECT_GT(fec_orig / trials, 0.75);
}

TEST(OpusCodec, ConcealAndDecodeRejectWhatTheyCannotUse) {
  std::unique_ptr<VoiceDecoder> d;
  ASSERT_EQ(kOk, VoiceDecoder::create(48000, 1, &d));
  std::vector<int16_t> out(kMaxFrameSamples);
  EXPECT_EQ(480, d->conceal(out.data(), 480));
  std::vector<uint8_t> big(kMaxOpusPacket + 1, 0);
  EXPECT_EQ(kErrCodec, d->decode(big.data(), big.size(), out.data(), int(kMaxFrameSamples)));
  EXPECT_EQ(kErrCodec, d->decode_fec(big.data(), big.size(), out.data(), 960));
  // A code-3 packet claiming 48 frames of 60 ms (2.88 s) overflows any output buffer.
  const uint8_t too_long[] = {uint8_t(11 << 3 | 3), 48, 0, 0};
  EXPECT_EQ(kErrCodec, d->decode(too_long, sizeof too_long, out.data(), int(kMaxFrameSamples)));
  // Still usable afterwards.
  const auto packets = encode_voice(1, 0, 48000, 3);
  EXPECT_EQ(960, d->decode(packets[0].data(), packets[0].size(), out.data(),
                           int(kMaxFrameSamples)));
}

}  // namespace
}  // namespace parley::media

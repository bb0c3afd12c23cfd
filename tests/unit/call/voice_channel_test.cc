// VoiceChannel's threading contract, with real threads: a capture thread pushes, the "loop"
// (this test's main thread) encodes and hands the payloads to a second channel, a playout
// thread pulls. Runs under TSan in scripts/test-all. Also: push/pull never allocate, the
// channel refuses after end(), mute sends silence, loss feedback is measured, and sealed
// frame sizes do not depend on what is said (unless the host asks for DTX).
#include "call/voice_channel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "media/frame_crypto.h"
#include "media/voice_payload.h"

namespace {
// Armed only around the calls under test, on the thread that makes them.
thread_local bool t_count_allocations = false;
std::atomic<int> g_allocations{0};
}  // namespace

// A counting replacement of the global allocator (malloc/free underneath, which is what
// GCC's mismatch warning cannot see through).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// Every form is replaced, so each new has its matching delete (ASan checks the pairing).
static void *counted_alloc(std::size_t n) {
  if (t_count_allocations) g_allocations.fetch_add(1);
  return std::malloc(n ? n : 1);
}
void *operator new(std::size_t n) {
  if (void *p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void *operator new[](std::size_t n) {
  if (void *p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return counted_alloc(n); }
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return counted_alloc(n); }
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }
void operator delete[](void *p, std::size_t) noexcept { std::free(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { std::free(p); }

namespace parley::call {
namespace {

constexpr int kRate = 48000;
constexpr size_t kChunk = 480;  // 10 ms

// A voiced, syllable-like test signal: a 140 Hz buzz with harmonics, 200 ms on / 100 ms off.
int16_t signal_at(size_t n) {
  const double t = double(n) / kRate;
  const double env = std::fmod(t, 0.3) < 0.2 ? std::sin(M_PI * std::fmod(t, 0.3) / 0.2) : 0.0;
  double v = 0;
  for (int h = 1; h <= 6; ++h) v += std::sin(2 * M_PI * 140 * h * t) / h;
  return int16_t(env * v * 6000);
}

// Two started channels, `a`'s frames delivered straight into `b` (the loop thread's part).
void connect_pair(std::shared_ptr<VoiceChannel> *a, std::shared_ptr<VoiceChannel> *b) {
  AudioConfig cfg;
  ASSERT_EQ(VoiceChannel::create(cfg, a), kOk);
  ASSERT_EQ(VoiceChannel::create(cfg, b), kOk);
  VoiceChannel *rx = b->get();
  (*a)->start([rx](uint32_t ts, uint8_t, const uint8_t *p, size_t n) {
    rx->on_voice_frame(ts, p, n, int64_t(monotonic_now() / 1000));
  });
  (*b)->start([](uint32_t, uint8_t, const uint8_t *, size_t) {});
}

TEST(VoiceChannel, RejectsBadFormats) {
  std::shared_ptr<VoiceChannel> c;
  AudioConfig cfg;
  cfg.sample_rate = 44100;
  EXPECT_EQ(VoiceChannel::create(cfg, &c), kErrAudioFormat);
  cfg.sample_rate = 16000;
  cfg.channels = 3;
  EXPECT_EQ(VoiceChannel::create(cfg, &c), kErrAudioFormat);
  cfg.channels = 1;
  cfg.mic_buffer_ms = 5;
  EXPECT_EQ(VoiceChannel::create(cfg, &c), kErrInvalidArgument);
  cfg.mic_buffer_ms = 200;
  cfg.profile = 200;
  EXPECT_NE(VoiceChannel::create(cfg, &c), kOk);
}

// Three threads, real time: audio pushed on one channel comes out of the other one's pull,
// with the waveform intact (correlation with the input at the best lag).
TEST(VoiceChannel, ThreeThreadsCarryAudio) {
  std::shared_ptr<VoiceChannel> a, b;
  ASSERT_NO_FATAL_FAILURE(connect_pair(&a, &b));

  constexpr size_t kTotal = kRate * 2;  // 2 s
  std::vector<int16_t> out(kTotal + kRate / 2);
  std::atomic<bool> done{false};
  std::atomic<int> capture_allocs{0}, playout_allocs{0};
  const auto start = std::chrono::steady_clock::now();
  std::thread capture([&] {
    std::vector<int16_t> chunk(kChunk);
    for (size_t pos = 0, tick = 0; pos < kTotal; pos += kChunk, ++tick) {
      for (size_t i = 0; i < kChunk; ++i) chunk[i] = signal_at(pos + i);
      const int before = g_allocations.load();
      t_count_allocations = true;
      const int took = a->push(chunk.data(), kChunk);
      t_count_allocations = false;
      capture_allocs += g_allocations.load() - before;
      EXPECT_EQ(took, int(kChunk));
      std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * (tick + 1)));
    }
  });
  std::thread playout([&] {
    for (size_t pos = 0, tick = 0; pos + kChunk <= out.size(); pos += kChunk, ++tick) {
      const int before = g_allocations.load();
      t_count_allocations = true;
      EXPECT_EQ(b->pull(out.data() + pos, kChunk), kOk);
      t_count_allocations = false;
      playout_allocs += g_allocations.load() - before;
      std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * (tick + 1)));
    }
    done = true;
  });
  // The loop thread's part: encode whatever whole frames are waiting, every 2 ms.
  while (!done) {
    a->encode_ready(int64_t(monotonic_now() / 1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  capture.join();
  playout.join();
  // Sleeps above pace the simulated sound card (real time is the point of this test); no
  // assertion depends on their timing beyond "audio arrives within 500 ms".
  EXPECT_EQ(capture_allocs.load(), 0) << "push allocated";
  EXPECT_EQ(playout_allocs.load(), 0) << "pull allocated";

  // Best lag within 0..300 ms, correlation over the first 1.5 s of input.
  const size_t n = kRate * 3 / 2;
  std::vector<double> in(n);
  for (size_t i = 0; i < n; ++i) in[i] = signal_at(i);
  double best = -1;
  size_t best_lag = 0;
  for (size_t lag = 0; lag < size_t(kRate) * 3 / 10; lag += 1) {
    double xy = 0, xx = 0, yy = 0;
    for (size_t i = 0; i < n; i += 8) {
      const double x = in[i], y = out[i + lag];
      xy += x * y;
      xx += x * x;
      yy += y * y;
    }
    const double c = xx > 0 && yy > 0 ? xy / std::sqrt(xx * yy) : 0;
    if (c > best) {
      best = c;
      best_lag = lag;
    }
  }
  // Block by block: each loud 20 ms block of the input must be in the output, intact (this
  // profile keeps ~0.90 of every block; concealment does not), near the overall lag. One stall of these threads (a loaded machine, a sanitizer) moves the playout
  // point once and pulls a single whole-signal correlation down (0.62 seen at load 5 on two
  // cores), without a single frame broken; a broken path fails most blocks.
  constexpr size_t kBlock = kRate / 50, kSlack = kRate / 25;  // 20 ms blocks, +-40 ms
  size_t loud = 0, intact = 0;
  for (size_t b0 = 0; b0 + kBlock <= n; b0 += kBlock) {
    double energy = 0;
    for (size_t i = b0; i < b0 + kBlock; ++i) energy += in[i] * in[i];
    if (energy < kBlock * 1000.0 * 1000.0) continue;  // RMS under 1000: a gap
    ++loud;
    double xx = 0;
    for (size_t i = b0; i < b0 + kBlock; i += 2) xx += in[i] * in[i];
    double block_best = -1;
    const size_t lo = best_lag > kSlack ? best_lag - kSlack : 0;
    for (size_t lag = lo; lag <= best_lag + kSlack && b0 + kBlock + lag <= out.size(); ++lag) {
      double xy = 0, yy = 0;
      for (size_t i = b0; i < b0 + kBlock; i += 2) {
        xy += in[i] * out[i + lag];
        yy += double(out[i + lag]) * out[i + lag];
      }
      if (yy > 0) block_best = std::max(block_best, xy / std::sqrt(xx * yy));
    }
    if (block_best >= 0.8) ++intact;
  }
  const VoiceStats st = b->stats();
  std::printf("correlation %.3f at lag %zu; loud 20 ms blocks intact: %zu of %zu\n", best,
              best_lag, intact, loud);
  EXPECT_GE(loud, 30u);  // the signal is on 2/3 of the time
  EXPECT_GE(intact * 10, loud * 8) << "correlation " << best << " at lag " << best_lag;
  EXPECT_GT(st.jitter.frames_decoded, 80u);
  EXPECT_EQ(st.jitter.malformed, 0u);
  EXPECT_GT(a->stats().sender.frames, 80u);
}

// RMS level in dB full scale (1.0 = 0 dB) of `x[from..to)`, and its zero crossings per second.
void level_and_pitch(const std::vector<float> &x, size_t from, size_t to, double *db,
                     double *hz) {
  double sum = 0;
  size_t crossings = 0;
  for (size_t i = from; i < to; ++i) {
    sum += double(x[i]) * x[i];
    if (i > from && (x[i - 1] < 0) != (x[i] < 0)) ++crossings;
  }
  *db = 10 * std::log10(sum / double(to - from));
  *hz = crossings / 2.0 / (double(to - from) / kRate);
}

// The float32 path is the int16 path behind a conversion: a 440 Hz tone pushed as float and
// pulled as float comes out at the level of the same tone pushed and pulled as int16, and
// neither float call allocates. Both pairs run side by side on one thread, so a stall of the
// machine hits them alike.
TEST(VoiceChannel, FloatAndInt16CarryTheSameToneAndFloatNeverAllocates) {
  std::shared_ptr<VoiceChannel> a16, b16, af, bf;
  ASSERT_NO_FATAL_FAILURE(connect_pair(&a16, &b16));
  ASSERT_NO_FATAL_FAILURE(connect_pair(&af, &bf));
  constexpr size_t kTotal = kRate * 3 / 2;
  constexpr double kAmplitude = 0.5;
  std::vector<float> out16(kTotal), outf(kTotal);
  std::vector<int16_t> in16(kChunk), pulled16(kChunk);
  std::vector<float> inf(kChunk);
  int float_allocs = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t pos = 0, tick = 0; pos < kTotal; pos += kChunk, ++tick) {
    for (size_t i = 0; i < kChunk; ++i) {
      const double v = kAmplitude * std::sin(2 * M_PI * 440 * double(pos + i) / kRate);
      inf[i] = float(v);
      in16[i] = int16_t(std::lrint(v * 32768));
    }
    EXPECT_EQ(a16->push(in16.data(), kChunk), int(kChunk));
    int before = g_allocations.load();
    t_count_allocations = true;
    const int took = af->push(inf.data(), kChunk);
    t_count_allocations = false;
    float_allocs += g_allocations.load() - before;
    EXPECT_EQ(took, int(kChunk));
    const int64_t now = int64_t(monotonic_now() / 1000);
    a16->encode_ready(now);
    af->encode_ready(now);
    EXPECT_EQ(b16->pull(pulled16.data(), kChunk), kOk);
    for (size_t i = 0; i < kChunk; ++i) out16[pos + i] = float(pulled16[i]) / 32768.0f;
    before = g_allocations.load();
    t_count_allocations = true;
    EXPECT_EQ(bf->pull(outf.data() + pos, kChunk), kOk);
    t_count_allocations = false;
    float_allocs += g_allocations.load() - before;
    // Paces the simulated sound card: real time is what the jitter buffer measures.
    std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * (tick + 1)));
  }
  EXPECT_EQ(float_allocs, 0) << "float push/pull allocated";
  // After the jitter buffer's start-up: the last second.
  double db16, dbf, hz16, hzf;
  level_and_pitch(out16, kRate / 2, kTotal, &db16, &hz16);
  level_and_pitch(outf, kRate / 2, kTotal, &dbf, &hzf);
  const double expected = 20 * std::log10(kAmplitude / std::sqrt(2.0));
  std::printf("int16 %.3f dBFS %.1f Hz, float %.3f dBFS %.1f Hz (input %.3f dBFS)\n", db16,
              hz16, dbf, hzf, expected);
  EXPECT_NEAR(dbf, db16, 0.1);
  EXPECT_NEAR(db16, expected, 1.0);
  EXPECT_NEAR(hz16, 440, 5);
  EXPECT_NEAR(hzf, 440, 5);
}

TEST(VoiceChannel, FloatPushClipsAndTakesNaNAsSilence) {
  std::shared_ptr<VoiceChannel> a, b;
  ASSERT_NO_FATAL_FAILURE(connect_pair(&a, &b));
  const float odd[4] = {2.0f, -2.0f, std::nanf(""), 0.25f};
  EXPECT_EQ(a->push(odd, 4), 4);
  a->end();
  EXPECT_EQ(a->push(odd, 4), kErrCallEnded);
  float out[4] = {1, 1, 1, 1};
  EXPECT_EQ(b->pull(out, 4), kOk);
  b->end();
  EXPECT_EQ(b->pull(out, 4), kErrCallEnded);
  for (float v : out) EXPECT_EQ(v, 0.0f);
}

TEST(VoiceChannel, RefusesAfterEndAndPullsSilence) {
  AudioConfig cfg;
  std::shared_ptr<VoiceChannel> c;
  ASSERT_EQ(VoiceChannel::create(cfg, &c), kOk);
  c->start([](uint32_t, uint8_t, const uint8_t *, size_t) {});
  std::vector<int16_t> pcm(kChunk, 1000);
  EXPECT_EQ(c->push(pcm.data(), kChunk), int(kChunk));
  c->end();
  EXPECT_TRUE(c->ended());
  EXPECT_EQ(c->push(pcm.data(), kChunk), kErrCallEnded);
  EXPECT_EQ(c->pull(pcm.data(), kChunk), kErrCallEnded);
  for (int16_t s : pcm) ASSERT_EQ(s, 0);
}

// Voice still waiting in the jitter buffer when the call ends is not played: the host's
// playout gets silence from the end on.
TEST(VoiceChannel, AudioLeftInTheJitterBufferIsNotPlayedAfterEnd) {
  std::shared_ptr<VoiceChannel> a, b;
  ASSERT_NO_FATAL_FAILURE(connect_pair(&a, &b));
  std::vector<int16_t> pcm(kChunk * 20);
  for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = int16_t(8000 * std::sin(i * 0.0576));
  ASSERT_EQ(a->push(pcm.data(), pcm.size()), int(pcm.size()));
  a->encode_ready(int64_t(monotonic_now() / 1000));
  std::vector<int16_t> out(kChunk, 123);
  ASSERT_EQ(b->pull(out.data(), kChunk), kOk);  // takes the frames into the jitter buffer
  ASSERT_GT(b->stats().jitter.frames_received, 0u) << "frames should be waiting in b";
  b->end();
  std::fill(out.begin(), out.end(), int16_t(123));
  EXPECT_EQ(b->pull(out.data(), kChunk), kErrCallEnded);
  for (int16_t v : out) ASSERT_EQ(v, 0);
}

TEST(VoiceChannel, PushBeyondTheBufferIsCountedAndStaleAudioDroppedAtStart) {
  AudioConfig cfg;
  cfg.mic_buffer_ms = 100;
  std::shared_ptr<VoiceChannel> c;
  ASSERT_EQ(VoiceChannel::create(cfg, &c), kOk);
  std::vector<int16_t> pcm(kRate, 1000);  // 1 s, before the call is active
  const int took = c->push(pcm.data(), pcm.size());
  EXPECT_GE(took, kRate / 10);
  EXPECT_LT(took, kRate / 5);
  EXPECT_EQ(c->stats().mic_overflow, uint64_t(kRate - took));
  int sent = 0;
  c->start([&](uint32_t, uint8_t, const uint8_t *, size_t) { ++sent; });
  c->encode_ready(0);
  EXPECT_EQ(sent, 0) << "audio pushed while ringing was sent";
}

// Muted, the encoder gets silence. By default that goes out like any other audio (every
// frame, the same size: muting is not visible on the wire); with DTX, Opus needs ~200 ms of
// silence before DTX starts (10 frames), then sends a few markers and a comfort-noise update
// every 400 ms: nothing like 50 frames of speech (~4 kB at 32 kbit/s).
TEST(VoiceChannel, MuteSendsSilence) {
  for (bool dtx : {false, true}) {
    SCOPED_TRACE(dtx ? "dtx" : "default");
    AudioConfig cfg;
    cfg.dtx = dtx;
    std::shared_ptr<VoiceChannel> c;
    ASSERT_EQ(VoiceChannel::create(cfg, &c), kOk);
    size_t bytes = 0, frames = 0;
    std::map<size_t, int> sizes;
    c->start([&](uint32_t, uint8_t, const uint8_t *, size_t n) {
      bytes += n;
      ++frames;
      ++sizes[n];
    });
    c->set_muted(true);
    std::vector<int16_t> pcm(kChunk);
    for (size_t pos = 0; pos < size_t(kRate); pos += kChunk) {  // 1 s of loud signal
      for (size_t i = 0; i < kChunk; ++i) pcm[i] = signal_at(pos + i);
      c->push(pcm.data(), kChunk);
      c->encode_ready(int64_t(pos) * 1000 / kRate * 1000);
    }
    EXPECT_TRUE(c->stats().muted);
    EXPECT_EQ(c->stats().sender.frames, 50u);
    if (dtx) {
      EXPECT_LT(frames, 25u);
      EXPECT_LT(bytes, 1000u) << frames << " frames";
    } else {
      EXPECT_EQ(frames, 50u);
      ASSERT_EQ(sizes.size(), 1u);
      EXPECT_EQ(sizes.begin()->first,
                media::kVoicePayloadFixed +
                    media::opus_packet_bytes(*media::voice_profile(cfg.profile)));
    }
  }
}

// What the encoder is fed, for the size test below. All at 48 kHz, mono, -10 to -20 dBFS.
enum class Sound { kSpeechLike, kVowel, kNoise, kTone, kSilence, kMuted };
const char *sound_name(Sound s) {
  switch (s) {
    case Sound::kSpeechLike: return "speech-like";
    case Sound::kVowel: return "vowel";
    case Sound::kNoise: return "noise";
    case Sound::kTone: return "tone";
    case Sound::kSilence: return "silence";
    case Sound::kMuted: break;
  }
  return "muted speech";
}

// A formant synthesiser: a glottal pulse train (pitch f0) and/or noise through three
// resonators (F1-F3). Speech-like: syllables of ~300 ms, each a fricative onset (noise
// through high formants), a voiced nucleus gliding between two vowels with falling pitch and
// a rising-falling envelope, then a short closure; every fourth syllable a 400 ms pause.
// Vowel: a steady /a/ at 120 Hz with a little vibrato.
class Synth {
 public:
  explicit Synth(Sound s) : sound_(s) {}
  int16_t next() {
    const double t = double(n_++) / kRate;
    switch (sound_) {
      case Sound::kSilence: return 0;
      case Sound::kTone: return int16_t(8000 * std::sin(2 * M_PI * 1000 * t));
      case Sound::kNoise: return int16_t(6000 * uniform());
      case Sound::kVowel: {
        set_formants(730, 1090, 2440);
        return int16_t(voiced(120 + 3 * std::sin(2 * M_PI * 5 * t)) * 3000);
      }
      case Sound::kSpeechLike:
      case Sound::kMuted: break;
    }
    // Vowel targets (F1, F2, F3) for the syllables to glide between: /a/ /i/ /u/ /e/ /o/.
    static const double kVowels[5][3] = {
        {730, 1090, 2440}, {270, 2290, 3010}, {300, 870, 2240}, {530, 1840, 2480},
        {570, 840, 2410}};
    const double syl = 0.3;
    const long k = long(t / syl);
    const double u = (t - k * syl) / syl;  // 0..1 within the syllable
    if (k % 4 == 3) return 0;              // a pause
    const double *a = kVowels[k % 5], *b = kVowels[(k * 3 + 1) % 5];
    if (u < 0.2) {  // fricative: noise, high resonances
      set_formants(2500, 4500, 6500);
      return int16_t(resonate(uniform()) * 2500 * std::sin(M_PI * u / 0.2));
    }
    if (u > 0.85) return 0;  // closure
    const double w = (u - 0.2) / 0.65;
    set_formants(a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w,
                 a[2] + (b[2] - a[2]) * w);
    const double f0 = 150 - 40 * w + 10 * (k % 3);
    return int16_t(voiced(f0) * 3500 * std::sin(M_PI * w));
  }

 private:
  double uniform() {
    lcg_ = lcg_ * 1664525u + 1013904223u;
    return double(lcg_ >> 8) / double(1u << 23) - 1.0;
  }
  void set_formants(double f1, double f2, double f3) {
    const double f[3] = {f1, f2, f3}, bw[3] = {90, 110, 170};
    for (int i = 0; i < 3; ++i) {
      const double r = std::exp(-M_PI * bw[i] / kRate);
      a1_[i] = 2 * r * std::cos(2 * M_PI * f[i] / kRate);
      a2_[i] = -r * r;
      g_[i] = 1 - r;
    }
  }
  // The resonators in parallel, so their gains stay bounded whatever the formants.
  double resonate(double x) {
    double y = 0;
    for (int i = 0; i < 3; ++i) {
      const double v = a1_[i] * y1_[i] + a2_[i] * y2_[i] + g_[i] * x;
      y2_[i] = y1_[i];
      y1_[i] = v;
      y += v;
    }
    return y;
  }
  double voiced(double f0) {
    phase_ += f0 / kRate;
    double pulse = 0;
    if (phase_ >= 1) {
      phase_ -= 1;
      pulse = 1;
    }
    return resonate(pulse * 40 + 0.02 * uniform());
  }

  Sound sound_;
  uint64_t n_ = 0;
  uint32_t lcg_ = 12345;
  double phase_ = 0;
  double a1_[3] = {}, a2_[3] = {}, g_[3] = {}, y1_[3] = {}, y2_[3] = {};
};

struct SizeRun {
  std::map<size_t, int> sealed;  // sealed frame size -> frames
  int fec = 0;                   // primaries carrying Opus FEC
  uint64_t skipped = 0;          // frames DTX did not send
};

// Sends `ms` of `sound` through a channel with the default configuration (but `profile` and
// `dtx`) and seals every payload as the call layer does. `loss`: the peer reports that
// fraction (/256) of our frames lost, which turns on Opus FEC.
SizeRun sealed_sizes(Sound sound, uint8_t profile, uint8_t loss, bool dtx, int ms) {
  AudioConfig cfg;
  cfg.profile = profile;
  cfg.dtx = dtx;
  SizeRun run;
  std::shared_ptr<VoiceChannel> c;
  EXPECT_EQ(VoiceChannel::create(cfg, &c), kOk);
  if (!c) return run;
  media::FrameSealer sealer;
  const uint8_t key[media::kFrameKeyLen] = {7};
  EXPECT_EQ(sealer.init(key, 1), kOk);
  std::vector<uint8_t> frame(media::kFrameOverhead + media::kMaxVoicePayload);
  c->start([&](uint32_t ts, uint8_t p, const uint8_t *payload, size_t n) {
    media::FrameHeader h;
    h.flags = media::kFrameFlagVoice;
    h.profile = p;
    h.timestamp = ts;
    size_t len = 0;
    ASSERT_EQ(sealer.seal(h, payload, n, frame.data(), frame.size(), &len, nullptr), kOk);
    ++run.sealed[len];
    media::VoicePayload vp;
    ASSERT_EQ(media::parse_voice_payload(payload, n, &vp), kOk);
    run.fec += media::VoiceDecoder::has_fec(vp.primary.data, vp.primary.len);
  });
  c->set_muted(sound == Sound::kMuted);
  Synth synth(sound);
  std::vector<int16_t> pcm(kChunk);
  // The peer's report: a voice payload whose feedback byte is `loss` (its primary, a bare
  // TOC, is never decoded here).
  const uint8_t report[3] = {loss, 0, 0x78};
  for (size_t pos = 0; pos < size_t(kRate) * ms / 1000; pos += kChunk) {
    const int64_t now_us = int64_t(pos) * 1000 / kRate * 1000;
    if (loss && pos % size_t(kRate) == 0) c->on_voice_frame(0, report, sizeof report, now_us);
    for (auto &v : pcm) v = synth.next();
    EXPECT_EQ(c->push(pcm.data(), kChunk), int(kChunk));
    c->encode_ready(now_us);
  }
  run.skipped = c->stats().sender.dtx_skipped;
  return run;
}

std::string describe(const std::map<size_t, int> &d) {
  std::string s;
  for (const auto &[size, n] : d) s += std::to_string(size) + "x" + std::to_string(n) + " ";
  return s;
}

// RFC 6562: with variable-size frames an observer of the encrypted stream tells silence,
// vowels, fricatives and tones apart (parley's VBR measured 3.5 bytes a frame for silence, 39
// for a vowel, 43-50 for noise, 58 for a tone). By default the sealed sizes must not depend
// on the audio at all: for every profile, with and without a loss report (FEC on), the
// sizes' distribution is the same for every sound. It has one size after the first frames
// (where redundancy fills up): header, tag, payload header, and the profile's packet size
// for the primary and each earlier frame.
TEST(VoiceChannel, SealedFrameSizesDoNotDependOnWhatIsSaid) {
  const Sound sounds[] = {Sound::kSpeechLike, Sound::kVowel,   Sound::kNoise,
                          Sound::kTone,       Sound::kSilence, Sound::kMuted};
  for (uint8_t id = 0; id < media::voice_profile_count(); ++id) {
    const media::VoiceProfile &p = *media::voice_profile(id);
    for (uint8_t loss : {0, 26}) {
      SCOPED_TRACE(testing::Message() << "profile " << int(id) << ", loss " << int(loss));
      SizeRun ref;
      for (Sound s : sounds) {
        const SizeRun run = sealed_sizes(s, id, loss, /*dtx=*/false, 1500);
        SCOPED_TRACE(sound_name(s));
        if (s == sounds[0]) {
          ref = run;
          const size_t packet = media::opus_packet_bytes(p);
          const size_t full = media::kFrameOverhead + media::kVoicePayloadFixed + packet +
                              p.redundancy * (media::kVoiceRedBlockHeader + packet);
          int frames = 0;
          for (const auto &[size, n] : run.sealed) frames += n;
          EXPECT_EQ(frames, 1500 / p.frame_ms);
          EXPECT_EQ(run.sealed.rbegin()->first, full) << describe(run.sealed);
          EXPECT_EQ(run.sealed.rbegin()->second, frames - int(p.redundancy));
          // Profile 2 is SILK wideband, where has_fec reads LBRR reliably: the report did
          // turn FEC on, and the sizes stayed put regardless.
          if (id == 2 && loss) {
            EXPECT_GT(run.fec, 10);
          }
          if (loss == 0) {
            EXPECT_EQ(run.fec, 0);
          }
        }
        EXPECT_EQ(run.sealed, ref.sealed)
            << describe(run.sealed) << "vs " << sound_name(sounds[0]) << " "
            << describe(ref.sealed);
        EXPECT_EQ(run.skipped, 0u);
      }
    }
  }
}

// DTX is the host's choice: silence is then (mostly) not sent, which is what it saves and
// what it leaks; everything else keeps one size per profile. (That the receiving side plays
// DTX gaps as comfort noise: media/voice_sender_test.cc.)
TEST(VoiceChannel, DtxSkipsSilenceAndKeepsSpeechFramesOneSize) {
  for (uint8_t id : {1, 4}) {
    SCOPED_TRACE(testing::Message() << "profile " << int(id));
    const media::VoiceProfile &p = *media::voice_profile(id);
    const SizeRun silence = sealed_sizes(Sound::kSilence, id, 0, /*dtx=*/true, 3000);
    EXPECT_GT(silence.skipped, uint64_t(3000 / p.frame_ms / 2)) << describe(silence.sealed);
    // Markers: a 1-byte primary and no redundancy.
    EXPECT_GT(silence.sealed.count(media::kFrameOverhead + media::kVoicePayloadFixed + 1), 0u)
        << describe(silence.sealed);
    for (Sound s : {Sound::kVowel, Sound::kTone, Sound::kNoise}) {
      const SizeRun run = sealed_sizes(s, id, 0, /*dtx=*/true, 1500);
      SCOPED_TRACE(sound_name(s));
      EXPECT_EQ(run.skipped, 0u);
      const size_t packet = media::opus_packet_bytes(p);
      EXPECT_EQ(run.sealed.rbegin()->first,
                media::kFrameOverhead + media::kVoicePayloadFixed + packet +
                    p.redundancy * (media::kVoiceRedBlockHeader + packet))
          << describe(run.sealed);
      EXPECT_EQ(run.sealed.rbegin()->second, 1500 / p.frame_ms - int(p.redundancy));
    }
  }
}

// The receiver's loss report: frame indices with every 10th missing over > 1 s.
TEST(VoiceChannel, MeasuresTheLossItReports) {
  AudioConfig cfg;
  std::shared_ptr<VoiceChannel> c;
  ASSERT_EQ(VoiceChannel::create(cfg, &c), kOk);
  for (uint64_t i = 0; i < 120; ++i) {
    if (i % 10 == 5) continue;
    c->on_frame_index(1000 + i, int64_t(i) * 20000);
  }
  const uint8_t f = c->stats().loss_fraction;
  EXPECT_GE(f, 20);  // 10 % = 25.6 / 256
  EXPECT_LE(f, 31);
}

}  // namespace
}  // namespace parley::call

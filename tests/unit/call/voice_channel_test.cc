// VoiceChannel's threading contract, with real threads: a capture thread pushes, the "loop"
// (this test's main thread) encodes and hands the payloads to a second channel, a playout
// thread pulls. Runs under TSan in scripts/test-all. Also: push/pull never allocate, the
// channel refuses after end(), mute sends comfort noise, loss feedback is measured.
#include "call/voice_channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"

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
  const VoiceStats st = b->stats();
  EXPECT_GT(best, 0.9) << "lag " << best_lag;
  EXPECT_GT(st.jitter.frames_decoded, 80u);
  EXPECT_EQ(st.jitter.malformed, 0u);
  EXPECT_GT(a->stats().sender.frames, 80u);
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
  EXPECT_EQ(c->push(pcm.data(), kChunk), kErrCallNotFound);
  EXPECT_EQ(c->pull(pcm.data(), kChunk), kErrCallNotFound);
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
  EXPECT_EQ(b->pull(out.data(), kChunk), kErrCallNotFound);
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

TEST(VoiceChannel, MuteSendsComfortNoiseOnly) {
  AudioConfig cfg;
  std::shared_ptr<VoiceChannel> c;
  ASSERT_EQ(VoiceChannel::create(cfg, &c), kOk);
  size_t bytes = 0, frames = 0;
  c->start([&](uint32_t, uint8_t, const uint8_t *, size_t n) {
    bytes += n;
    ++frames;
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
  // Opus needs ~200 ms of silence before DTX starts (10 frames), then a few markers and a
  // comfort-noise update every 400 ms: nothing like 50 frames of speech (~4 kB at 32 kb/s).
  EXPECT_LT(frames, 25u);
  EXPECT_LT(bytes, 1000u) << frames << " frames";
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

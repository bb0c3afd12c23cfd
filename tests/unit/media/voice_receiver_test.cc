#include "media/voice_receiver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <new>
#include <random>
#include <tuple>
#include <vector>

#include "base/error.h"

// Counts allocations while armed, to prove insert/pull never allocate. Under ASan through its
// allocator hooks (which see malloc too); otherwise by replacing the global operator new,
// which changes nothing for the rest of the binary but the count. TSan has its own
// operator new that a replacement would fight with: there the test is skipped.
namespace {
thread_local bool g_alloc_armed = false;
std::atomic<long> g_allocs{0};
}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define RECV_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECV_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define RECV_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RECV_TEST_TSAN 1
#endif
#endif

#if defined(RECV_TEST_ASAN)
// Declared here: GCC ships no sanitizer/allocator_interface.h (the runtime has the function).
extern "C" int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t), void (*free_hook)(const volatile void *));
namespace {
void on_malloc(const volatile void *, size_t) {
  if (g_alloc_armed) g_allocs.fetch_add(1, std::memory_order_relaxed);
}
void on_free(const volatile void *) {}
const int g_hooks = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#elif !defined(RECV_TEST_TSAN)
// GCC sees malloc'd memory reach free() through operator delete and thinks it mismatched.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void *operator new(size_t n) {
  if (g_alloc_armed) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void *p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
void *operator new[](size_t n) { return operator new(n); }
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif

namespace parley::media {
namespace {

constexpr int kRate = 48000;

// Harmonics of a slowly gliding pitch under a syllable envelope: bursts of 120-300 ms with
// short gaps, and every few syllables a pause long enough for Opus to go into DTX.
std::vector<int16_t> voice(int ms, uint32_t seed, int lead_ms = 100) {
  std::mt19937 rng(seed);
  const size_t n = size_t(ms) * 48;
  std::vector<double> env(n, 0.0);
  size_t pos = size_t(lead_ms) * 48;
  int syllables = 0;
  while (pos < n) {
    const size_t len = size_t(120 + rng() % 180) * 48;
    const double amp = 0.5 + double(rng() % 50) / 100.0;
    for (size_t i = 0; i < len && pos + i < n; ++i) {
      const double s = std::sin(M_PI * double(i) / double(len));
      env[pos + i] = amp * s * s;
    }
    pos += len;
    pos += size_t(++syllables % 7 == 0 ? 350 + rng() % 300 : 30 + rng() % 90) * 48;
  }
  std::vector<int16_t> pcm(n);
  double phase = 0;
  double weight[64] = {};
  int harmonics = 0;
  for (size_t i = 0; i < n; ++i) {
    const double t = double(i) / kRate;
    const double f0 = 140 + 35 * std::sin(2 * M_PI * 0.7 * t) + 15 * std::sin(2 * M_PI * 2.3 * t);
    phase += 2 * M_PI * f0 / kRate;
    if (i % 48 == 0) {  // the spectral envelope moves slowly: two formants, -6 dB/octave
      harmonics = std::min(63, int(7000 / f0));
      for (int k = 1; k <= harmonics; ++k) {
        const double f = k * f0;
        weight[k] = (1.0 + 2.0 * std::exp(-std::pow((f - 700) / 300, 2)) +
                     std::exp(-std::pow((f - 1800) / 400, 2))) / k;
      }
    }
    // sin(k x) by the Chebyshev recurrence: one sin and one cos per sample.
    const double c2 = 2 * std::cos(phase);
    double s_prev = 0, s_cur = std::sin(phase), sum = 0;
    for (int k = 1; k <= harmonics; ++k) {
      sum += weight[k] * s_cur;
      const double next = c2 * s_cur - s_prev;
      s_prev = s_cur;
      s_cur = next;
    }
    pcm[i] = int16_t(std::lrint(3500 * env[i] * sum));
  }
  return pcm;
}

struct Pkt {
  uint32_t ts;
  std::vector<uint8_t> data;  // at most 2 bytes: a DTX marker
  int samples;
};

// Encodes like the sender: the first three DTX packets in a row are sent, the rest are not.
// They are sent whole, not cut to their TOC byte: a 60 ms hybrid packet is code 3 (three
// 20 ms frames), and its DTX packet needs its frame count byte to be an Opus packet at all.
std::vector<Pkt> encode(const std::vector<int16_t> &pcm, uint32_t ts0,
                        const std::vector<int> &frame_ms, int loss_hint) {
  std::unique_ptr<VoiceEncoder> enc;
  EXPECT_EQ(kOk, VoiceEncoder::create(kRate, 1, &enc));
  EXPECT_EQ(kOk, enc->set_dtx(true));  // the voice has pauses: DTX gaps are part of the test
  VoiceProfile p = *voice_profile(1);
  EXPECT_EQ(kOk, enc->set_loss_percent(loss_hint));
  std::vector<Pkt> out;
  uint8_t buf[kMaxOpusPacket];
  size_t pos = 0;
  uint32_t ts = ts0;
  int dtx_run = 0;
  for (size_t i = 0;; ++i) {
    p.frame_ms = uint16_t(frame_ms[i % frame_ms.size()]);
    EXPECT_EQ(kOk, enc->set_profile(p));
    const size_t fs = size_t(enc->frame_samples());
    if (pos + fs > pcm.size()) break;
    const int len = enc->encode(pcm.data() + pos, buf, sizeof buf);
    EXPECT_GT(len, 0);
    if (is_dtx_packet(size_t(len))) {
      if (dtx_run++ < 3) out.push_back(Pkt{ts, std::vector<uint8_t>(buf, buf + len), int(fs)});
    } else {
      dtx_run = 0;
      out.push_back(Pkt{ts, std::vector<uint8_t>(buf, buf + len), int(fs)});
    }
    ts += uint32_t(fs);
    pos += fs;
  }
  return out;
}

// Encoding is the slow part of these tests: streams are shared between tests.
const std::vector<Pkt> &stream(int ms, uint32_t seed, uint32_t ts0,
                               const std::vector<int> &frame_ms = {20}, int loss_hint = 0) {
  static std::map<std::tuple<int, uint32_t, uint32_t, std::vector<int>, int>, std::vector<Pkt>>
      cache;
  auto key = std::make_tuple(ms, seed, ts0, frame_ms, loss_hint);
  auto it = cache.find(key);
  if (it == cache.end()) {
    it = cache.emplace(key, encode(voice(ms, seed), ts0, frame_ms, loss_hint)).first;
  }
  return it->second;
}

// What a decoder makes of the packets in order, filling DTX gaps with comfort noise in
// chunks of at most 20 ms (what the receiver does). off[i]: where packet i starts.
struct Ref {
  std::vector<int16_t> pcm;
  std::vector<size_t> off;
};
Ref reference(const std::vector<Pkt> &pk, int rate = kRate, int channels = 1) {
  std::unique_ptr<VoiceDecoder> dec;
  EXPECT_EQ(kOk, VoiceDecoder::create(rate, channels, &dec));
  const int per = kRate / rate;
  Ref r;
  std::vector<int16_t> buf(kMaxFrameSamples * 2);
  int last = 960 / per;
  for (size_t i = 0; i < pk.size(); ++i) {
    if (i > 0) {
      int gap = int(uint32_t(pk[i].ts - pk[i - 1].ts - uint32_t(pk[i - 1].samples))) / per;
      while (gap > 0) {
        const int c = std::min({gap, last, 960 / per});
        EXPECT_EQ(c, dec->conceal(buf.data(), c));
        r.pcm.insert(r.pcm.end(), buf.begin(), buf.begin() + c * channels);
        gap -= c;
      }
    }
    r.off.push_back(r.pcm.size() / size_t(channels));
    const int n = dec->decode(pk[i].data.data(), pk[i].data.size(), buf.data(),
                              int(kMaxFrameSamples));
    EXPECT_EQ(n, pk[i].samples / per);
    r.pcm.insert(r.pcm.end(), buf.begin(), buf.begin() + n * channels);
    last = n;
  }
  return r;
}

std::vector<uint8_t> payload(const std::vector<Pkt> &pk, size_t i, size_t red = 0) {
  VoiceBlock blocks[kMaxRedundancy];
  size_t n = 0;
  for (size_t j = i >= red ? i - red : 0; j < i; ++j) {
    const uint32_t back = pk[i].ts - pk[j].ts;
    if (back == 0 || back > 0xffff) continue;
    blocks[n++] = VoiceBlock{uint16_t(back), pk[j].data.data(), pk[j].data.size()};
  }
  std::vector<uint8_t> out(kMaxVoicePayload);
  const size_t len = write_voice_payload(0, blocks, n, pk[i].data.data(), pk[i].data.size(),
                                         out.data(), out.size());
  EXPECT_GT(len, 0u);
  out.resize(len);
  return out;
}

struct Arrival {
  int64_t at_us;
  uint32_t ts;
  std::vector<uint8_t> payload;
};

int64_t ts_us(uint32_t ts, uint32_t ts0) { return int64_t(uint32_t(ts - ts0)) * 125 / 6; }

// Every packet once, at base + its media time + jitter(i) (microseconds).
std::vector<Arrival> arrivals(const std::vector<Pkt> &pk, int64_t base_us,
                              const std::function<int64_t(size_t)> &jitter = {},
                              size_t red = 0) {
  std::vector<Arrival> a;
  for (size_t i = 0; i < pk.size(); ++i) {
    a.push_back(Arrival{base_us + ts_us(pk[i].ts, pk[0].ts) + (jitter ? jitter(i) : 0), pk[i].ts,
                        payload(pk, i, red)});
  }
  return a;
}

// Inserts the arrivals (in time order) and pulls `chunk` samples per period until `end_us`;
// `each` sees the stats after every pull. `at` is the stats when the last arrival is in:
// after that the stream has ended and the receiver rightly underruns.
struct Sim {
  std::vector<int16_t> out;
  JitterStats at, end;
};
Sim run(VoiceReceiver &rx, std::vector<Arrival> arr, size_t chunk, int64_t end_us,
        int channels = 1, int rate = kRate,
        const std::function<void(int64_t, const JitterStats &)> &each = {}) {
  std::stable_sort(arr.begin(), arr.end(),
                   [](const Arrival &a, const Arrival &b) { return a.at_us < b.at_us; });
  Sim sim;
  size_t next = 0;
  for (int64_t k = 0;; ++k) {
    const int64_t t = k * int64_t(chunk) * 1000000 / rate;
    if (t > end_us) break;
    for (; next < arr.size() && arr[next].at_us <= t; ++next) {
      rx.insert(arr[next].ts, arr[next].payload.data(), arr[next].payload.size(),
                arr[next].at_us);
    }
    sim.out.resize(sim.out.size() + chunk * size_t(channels));
    rx.pull(sim.out.data() + sim.out.size() - chunk * size_t(channels), chunk, t);
    if (next < arr.size() || arr.empty() || t <= arr.back().at_us) sim.at = rx.stats();
    if (each) each(t, rx.stats());
  }
  sim.end = rx.stats();
  return sim;
}

std::unique_ptr<VoiceReceiver> receiver(JitterConfig c = {}) {
  std::unique_ptr<VoiceReceiver> rx;
  EXPECT_EQ(kOk, VoiceReceiver::create(c, &rx));
  return rx;
}

// Where `ref` starts in `out` (exact match of its first `len` samples), or SIZE_MAX.
size_t find_exact(const std::vector<int16_t> &out, const std::vector<int16_t> &ref, size_t len) {
  len = std::min(len, ref.size());
  for (size_t o = 0; o + len <= out.size(); ++o) {
    if (std::equal(ref.begin(), ref.begin() + ptrdiff_t(len), out.begin() + ptrdiff_t(o))) {
      return o;
    }
  }
  return SIZE_MAX;
}

bool contains_at(const std::vector<int16_t> &out, size_t o, const std::vector<int16_t> &ref) {
  return o != SIZE_MAX && o + ref.size() <= out.size() &&
         std::equal(ref.begin(), ref.end(), out.begin() + ptrdiff_t(o));
}

double rms(const int16_t *p, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) e += double(p[i]) * p[i];
  return n ? std::sqrt(e / double(n)) : 0;
}

double energy_error(const int16_t *out, const int16_t *ref, size_t n) {
  double e = 0, r = 0;
  for (size_t i = 0; i < n; ++i) {
    e += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    r += double(ref[i]) * ref[i];
  }
  return e / std::max(r, 1.0);
}

// Finds every reference frame louder than `min_rms` in `out`, in order, each within
// -max_back..+max_fwd samples (multiples of 2.5 ms, the unit of every time-scale step) of
// where the last match predicts it, with a relative error of at most `max_err`. A frame
// cannot match twice or out of order: each search is relative to the previous match. Right
// after concealment the decoder's state differs from the reference's (CELT predicts band
// energies from the previous frame), so up to 5 loud frames in a row may only resemble
// theirs (error up to `loose`); where they sit is then unreliable, so the next exact match
// is searched from the last exact one.
struct Matches {
  size_t loud = 0, found = 0, loose = 0;
  double worst = 0;  // of the exact matches
};
Matches match_loud_frames(const std::vector<int16_t> &out, const Ref &ref,
                          const std::vector<Pkt> &pk, size_t start, double min_rms,
                          double max_err, int max_back, int max_fwd, double loose = 0) {
  Matches m;
  size_t prev_i = 0, prev_o = start;
  int in_a_row = 0;
  for (size_t i = 0; i < pk.size(); ++i) {
    const int16_t *r = ref.pcm.data() + ref.off[i];
    const size_t n = size_t(pk[i].samples);
    if (rms(r, n) < min_rms) continue;
    ++m.loud;
    const int64_t expect = int64_t(prev_o) + int64_t(ref.off[i] - ref.off[prev_i]);
    double best = 1e9;
    int64_t best_o = -1;
    for (int d = -max_back; d <= max_fwd + in_a_row * int(n); d += 120) {
      const int64_t o = expect + d;
      if (o <= int64_t(prev_o) - (m.found == 0 ? 1 : 0) || o + int64_t(n) > int64_t(out.size())) {
        continue;
      }
      const double e = energy_error(out.data() + o, r, n);
      if (e < best) best = e, best_o = o;
    }
    if (best <= max_err) {
      ++m.found;
      m.worst = std::max(m.worst, best);
      prev_i = i;
      prev_o = size_t(best_o);
      in_a_row = 0;
    } else if (best <= loose && ++in_a_row <= 5) {
      ++m.found;
      ++m.loose;
    } else {
      ADD_FAILURE() << "loud frame " << i << " (ts " << pk[i].ts << ") not found; best error "
                    << best;
    }
  }
  return m;
}

// Opus's LBRR flag for one-frame (code 0) packets, read the plain way (RFC 6716 4.2.3: one
// VAD flag per SILK frame, then the LBRR flag), as the test's own account of which lost
// frames the next packet can rebuild.
// Whether a packet carries LBRR: VoiceDecoder::has_fec, which the receiver does not use (it
// has its own reader), and which also reads the code 3 packets that constant-bitrate padding
// makes.
bool lbrr(const std::vector<uint8_t> &pkt) { return VoiceDecoder::has_fec(pkt.data(), pkt.size()); }

size_t count_speech(const std::vector<Pkt> &pk) {
  return size_t(std::count_if(pk.begin(), pk.end(), [](const Pkt &p) { return p.data.size() > 2; }));
}

TEST(VoiceReceiver, CreateRejectsBadConfigs) {
  std::unique_ptr<VoiceReceiver> rx;
  JitterConfig c;
  c.sample_rate = 44100;
  EXPECT_EQ(kErrAudioFormat, VoiceReceiver::create(c, &rx));
  c = JitterConfig{};
  c.channels = 3;
  EXPECT_EQ(kErrAudioFormat, VoiceReceiver::create(c, &rx));
  c = JitterConfig{};
  c.min_delay_ms = 600;
  EXPECT_EQ(kErrInvalidArgument, VoiceReceiver::create(c, &rx));
  c = JitterConfig{};
  c.quantile = 0;
  EXPECT_EQ(kErrInvalidArgument, VoiceReceiver::create(c, &rx));
  c.quantile = 1.5;
  EXPECT_EQ(kErrInvalidArgument, VoiceReceiver::create(c, &rx));
  EXPECT_EQ(nullptr, rx);
}

TEST(VoiceReceiver, SilenceBeforeTheFirstFrame) {
  auto rx = receiver();
  std::vector<int16_t> out(480, 7);
  for (int i = 0; i < 10; ++i) rx->pull(out.data(), out.size(), i * 10000);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](int16_t s) { return s == 0; }));
  EXPECT_EQ(0u, rx->stats().concealed);
  EXPECT_EQ(4800u, rx->stats().samples_out);
}

TEST(VoiceReceiver, CleanStreamIsTheReferenceDecodeAfterTheTargetDelay) {
  const auto &pk = stream(6000, 1, 1000);
  const Ref ref = reference(pk);
  auto rx = receiver();
  std::vector<uint32_t> delays;
  const Sim sim = run(*rx, arrivals(pk, 33300), 480, 6500000, 1, kRate,
                       [&](int64_t t, const JitterStats &s) {
                         if (t > 1000000 && t < 6000000) delays.push_back(s.current_delay_ms);
                       });
  const auto &out = sim.out;
  const size_t o = find_exact(out, ref.pcm, 48000);
  ASSERT_TRUE(contains_at(out, o, ref.pcm));
  // The first frame arrived at 33.3 ms and starts playing when it has waited the target.
  const JitterStats s = sim.at;
  EXPECT_EQ(20u, s.target_delay_ms);  // no jitter: the pull period, raised to min_delay_ms
  EXPECT_NEAR(double(o), (33.3 + 20) * 48, 1);
  EXPECT_EQ(count_speech(pk), sim.end.frames_decoded);
  EXPECT_EQ(pk.size(), sim.end.frames_received);
  EXPECT_GT(s.comfort_noise, 0u);  // the pauses went through DTX
  EXPECT_EQ(0u, s.concealed + s.late + s.duplicates + s.grow_ms + s.shrink_ms + s.malformed);
  for (uint32_t d : delays) ASSERT_EQ(20u, d);
  std::printf("[ measured ] clean: start %zu samples, %zu frames, %llu comfort noise, delay %u/%u ms\n",
              o, pk.size(), (unsigned long long)s.comfort_noise, s.current_delay_ms,
              s.target_delay_ms);
}

// A sender whose capture started with a burst (the first six frames arrive together, with
// the sixth): the young window reads that as ~100 ms of jitter, and says how young it is,
// so quality can wait until a few seconds have diluted it (quality::settled_jitter_ms).
TEST(VoiceReceiver, AStartBurstReadsAsJitterOnlyWhileTheWindowIsYoung) {
  const auto &pk = stream(6000, 1, 1000);
  std::vector<Arrival> arr = arrivals(pk, 33300);
  for (size_t i = 0; i < 5; ++i) arr[i].at_us = arr[5].at_us;
  auto rx = receiver();
  JitterStats early, late;
  run(*rx, arr, 480, 5000000, 1, kRate, [&](int64_t t, const JitterStats &s) {
    if (t <= 500000) early = s;
    if (t <= 4800000) late = s;
  });
  EXPECT_GE(early.jitter_ms, 80u);
  EXPECT_LT(early.jitter_window_ms, 600u);
  EXPECT_GE(late.jitter_window_ms, 4000u);
  EXPECT_LE(late.jitter_ms, 5u);
  std::printf("[ measured ] start burst: jitter %u ms with a %u ms window, %u ms at %u ms\n",
              early.jitter_ms, early.jitter_window_ms, late.jitter_ms, late.jitter_window_ms);
}

TEST(VoiceReceiver, MixedFrameDurationsAndOtherRatesPlayUnchanged) {
  const auto &pk = stream(4000, 2, 77, {10, 20, 40, 60, 20, 20});
  {
    const Ref ref = reference(pk);
    auto rx = receiver();
    const Sim sim = run(*rx, arrivals(pk, 12000), 480, 4600000);
    const auto &out = sim.out;
    ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 4800), ref.pcm));
    EXPECT_EQ(0u, sim.at.concealed);
  }
  {
    // 16 kHz stereo out of mono 48 kHz packets: timestamps stay in 48 kHz units.
    const Ref ref = reference(pk, 16000, 2);
    JitterConfig c;
    c.sample_rate = 16000;
    c.channels = 2;
    auto rx = receiver(c);
    const Sim sim = run(*rx, arrivals(pk, 12000), 160, 4600000, 2, 16000);
    const auto &out = sim.out;
    ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 3200), ref.pcm));
    EXPECT_EQ(0u, sim.at.concealed);
    EXPECT_EQ(count_speech(pk), sim.end.frames_decoded);
  }
}

TEST(VoiceReceiver, ReorderingWithinTheTargetIsInaudible) {
  const auto &pk = stream(6000, 1, 1000);
  const Ref ref = reference(pk);
  JitterConfig c;
  c.min_delay_ms = 60;
  auto rx = receiver(c);
  // Every third frame arrives 30 ms late: after the one that follows it.
  const Sim sim = run(*rx, arrivals(pk, 20000, [](size_t i) { return i % 3 == 1 ? 30000 : 0; }),
                       480, 6500000);
  const auto &out = sim.out;
  ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 48000), ref.pcm));
  const JitterStats s = sim.at;
  EXPECT_EQ(0u, s.concealed + s.late + s.grow_ms + s.shrink_ms);
  EXPECT_EQ(60u, s.target_delay_ms);
}

TEST(VoiceReceiver, DuplicatesAreCountedAndHarmless) {
  const auto &pk = stream(5000, 1, 1000);
  const Ref ref = reference(pk);
  auto arr = arrivals(pk, 20000);
  size_t dups = 0;
  for (size_t i = 0; i < pk.size(); i += 5, ++dups) {
    arr.push_back(arr[i]);
    arr.back().at_us += 3000 + int64_t(i % 3) * 4000;  // the other path, a little later
  }
  auto rx = receiver();
  const Sim sim = run(*rx, arr, 480, 5500000);
  const auto &out = sim.out;
  ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 48000), ref.pcm));
  const JitterStats s = sim.at;
  EXPECT_EQ(dups, s.duplicates);
  EXPECT_EQ(0u, s.concealed + s.late);
}

TEST(VoiceReceiver, ALateFrameIsConcealedThenDroppedOnArrival) {
  const auto &pk = stream(5000, 1, 1000);
  const Ref ref = reference(pk);
  size_t late = 0;
  while (pk[late].data.size() <= 2 || late < 100) ++late;
  JitterConfig c;
  c.min_delay_ms = 40;  // the next frame is there in time: a loss, not an underrun
  auto rx = receiver(c);
  const Sim sim = run(*rx, arrivals(pk, 20000, [&](size_t i) { return i == late ? 300000 : 0; }),
                       480, 5500000);
  const auto &out = sim.out;
  const JitterStats s = sim.at;
  EXPECT_EQ(1u, s.late);
  EXPECT_EQ(1u, s.concealed);
  EXPECT_EQ(0u, s.grow_ms);
  EXPECT_EQ(count_speech(pk) - 1, sim.end.frames_decoded);
  // Everything before it is untouched, and it does not play when it finally arrives.
  const size_t o = find_exact(out, ref.pcm, 48000);
  ASSERT_NE(SIZE_MAX, o);
  EXPECT_TRUE(std::equal(ref.pcm.begin(), ref.pcm.begin() + ptrdiff_t(ref.off[late]),
                         out.begin() + ptrdiff_t(o)));
  const Matches m = match_loud_frames(out, ref, pk, o, 800, 0.5, 0, 0);
  EXPECT_GE(m.found + 1, m.loud);
}

TEST(VoiceReceiver, RandomLossIsRebuiltFromFec) {
  const auto &pk = stream(10000, 3, 5000, {20}, 10);
  std::mt19937 rng(42);
  std::vector<bool> lost(pk.size(), false);
  size_t n_lost = 0, burst = 0, max_burst = 0;
  for (size_t i = 1; i < pk.size(); ++i) {
    lost[i] = pk[i].data.size() > 2 && rng() % 10 == 0;
    n_lost += lost[i];
    burst = lost[i] ? burst + 1 : 0;
    max_burst = std::max(max_burst, burst);
  }
  auto arr = arrivals(pk, 33300);
  std::vector<Arrival> kept;
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!lost[i]) kept.push_back(arr[i]);
  }
  auto rx = receiver();
  const Sim sim = run(*rx, kept, 480, 10500000);
  const JitterStats s = sim.at;
  // FEC can rebuild a lost frame when the next one arrived and carries it (Opus spends LBRR
  // bits on active speech only).
  size_t rebuildable = 0;
  for (size_t i = 0; i + 1 < pk.size(); ++i) {
    rebuildable += lost[i] && !lost[i + 1] && lbrr(pk[i + 1].data);
  }
  std::printf("[ measured ] 10%% loss: %zu lost (longest burst %zu, %zu rebuildable), %llu fec, "
              "%llu concealed, longest gap %llu ms, grow %llu ms, skipped %llu ms, delay %u/%u ms\n",
              n_lost, max_burst, rebuildable, (unsigned long long)s.fec_recovered,
              (unsigned long long)s.concealed, (unsigned long long)s.longest_gap_ms,
              (unsigned long long)s.grow_ms, (unsigned long long)s.skipped_ms,
              s.current_delay_ms, s.target_delay_ms);
  EXPECT_GE(s.fec_recovered, rebuildable * 9 / 10);
  EXPECT_LE(s.fec_recovered, rebuildable);
  EXPECT_EQ(n_lost, s.fec_recovered + s.concealed);
  EXPECT_EQ(count_speech(pk) - n_lost, sim.end.frames_decoded);
  // FEC rebuilds the last frame of a burst: a gap is at most one frame shorter than its burst.
  EXPECT_LE(s.longest_gap_ms, 20 * (max_burst - 1));
  // Bursts longer than the lookahead look like underruns; what they added is skipped again.
  EXPECT_NEAR(double(s.grow_ms), double(s.skipped_ms), 20);
  EXPECT_EQ(30u, s.target_delay_ms);  // the pull period and one frame of FEC lookahead
  EXPECT_EQ(30u, s.current_delay_ms);
}

TEST(VoiceReceiver, RedundancyRebuildsTwoFrameBursts) {
  const auto &pk = stream(5000, 1, 1000);
  const Ref ref = reference(pk);
  auto arr = arrivals(pk, 20000, {}, 2);
  std::vector<Arrival> kept;
  size_t dropped = 0;
  for (size_t i = 0; i < arr.size(); ++i) {
    const bool burst = (i >= 60 && i < 62) || (i >= 150 && i < 152);
    if (!burst) kept.push_back(arr[i]);
    dropped += burst;
  }
  JitterConfig c;
  c.min_delay_ms = 60;  // the copies ride two frames later: they must still be in time
  auto rx = receiver(c);
  const Sim sim = run(*rx, kept, 480, 5500000);
  const auto &out = sim.out;
  const JitterStats s = sim.at;
  EXPECT_EQ(dropped, s.red_recovered);
  EXPECT_EQ(0u, s.concealed + s.fec_recovered + s.late);
  // The copies are the very packets: the decode is the reference's.
  ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 48000), ref.pcm));
}

TEST(VoiceReceiver, RedundancyAddsOneFrameOfLookaheadAndRebuildsIsolatedLosses) {
  // 40 ms frames, each datagram carrying a copy of the one before (profile 3's shape), with
  // the default bounds: the target grows by one frame as soon as copies are seen, so every
  // isolated loss is rebuilt from the next datagram in time, with no concealment at all.
  const auto &pk = stream(6000, 4, 2000, {40});
  const Ref ref = reference(pk);
  auto arr = arrivals(pk, 20000, {}, 1);
  std::vector<Arrival> kept;
  size_t dropped = 0;
  for (size_t i = 0; i < arr.size(); ++i) {
    const bool lose = i >= 20 && i % 7 == 3 && pk[i].data.size() > 2;
    if (!lose) kept.push_back(arr[i]);
    dropped += lose;
  }
  ASSERT_GT(dropped, 10u);
  auto rx = receiver();
  const Sim sim = run(*rx, kept, 480, 6500000);
  const JitterStats s = sim.at;
  EXPECT_EQ(dropped, s.red_recovered);
  EXPECT_EQ(0u, s.concealed + s.late);
  EXPECT_EQ(50u, s.target_delay_ms);  // the pull period and one 40 ms frame
  // Playout started before the copies were believed: the extra frame of delay came from
  // one inserted frame of concealment (at a quiet point), and nothing else changed.
  EXPECT_EQ(40u, s.grow_ms);
  EXPECT_EQ(0u, s.shrink_ms + s.skipped_ms);
  // Every loud frame plays once, in order, one frame later than it started out: the copies
  // are the very packets, so the lost ones sound as sent.
  const size_t o = find_exact(sim.out, ref.pcm, 480);
  ASSERT_NE(SIZE_MAX, o);
  const Matches m = match_loud_frames(sim.out, ref, pk, o, 800, 0.01, 0, 1920, 0.8);
  std::printf("[ measured ] RED at 1/7 loss: %zu lost, %llu rebuilt, %zu/%zu loud frames "
              "(%zu loose), worst error %.4f, delay %u/%u ms\n", dropped,
              (unsigned long long)s.red_recovered, m.found, m.loud, m.loose, m.worst,
              s.current_delay_ms, s.target_delay_ms);
  EXPECT_EQ(m.loud, m.found);
}

TEST(VoiceReceiver, PathSlowerBy60msGrowsByConcealmentWithoutLosingAFrame) {
  const auto &pk = stream(10000, 4, 1000);
  const Ref ref = reference(pk);
  auto rx = receiver();
  uint64_t grow_at_step = 0;
  int64_t settled_at = -1;
  const Sim sim = run(*rx, arrivals(pk, 20000, [&](size_t i) {
                         return ts_us(pk[i].ts, pk[0].ts) >= 3000000 ? 60000 : 0;
                       }),
                       480, 10500000, 1, kRate, [&](int64_t t, const JitterStats &s) {
                         if (t < 3000000) grow_at_step = s.grow_ms;
                         const bool near = std::abs(int(s.current_delay_ms) -
                                                    int(s.target_delay_ms)) <= 10;
                         if (t > 9500000) return;  // the stream ends at 10 s
                         if (t > 3000000 && !near) settled_at = -1;
                         if (t > 3000000 && near && settled_at < 0) settled_at = t;
                       });
  const auto &out = sim.out;
  const JitterStats s = sim.at;
  std::printf("[ measured ] +60 ms: grow %llu ms (before the step %llu), concealed %llu, "
              "shrink %llu ms, settled %.2f s after the step, delay %u/%u ms\n",
              (unsigned long long)s.grow_ms, (unsigned long long)grow_at_step,
              (unsigned long long)s.concealed, (unsigned long long)s.shrink_ms,
              (settled_at - 3000000) / 1e6, s.current_delay_ms, s.target_delay_ms);
  EXPECT_EQ(0u, grow_at_step);
  EXPECT_GE(s.grow_ms, 60u);
  EXPECT_LE(s.grow_ms, 80u);
  EXPECT_EQ(0u, s.late + s.skipped_ms);
  EXPECT_EQ(count_speech(pk), sim.end.frames_decoded);  // every frame played, none twice
  EXPECT_GE(settled_at, 3000000);
  EXPECT_LE(settled_at, 6000000);
  const size_t o = find_exact(out, ref.pcm, 48000);
  ASSERT_NE(SIZE_MAX, o);
  const Matches m = match_loud_frames(out, ref, pk, o, 800, 0.01, 0, 4800, 0.8);
  EXPECT_EQ(m.loud, m.found);
  std::printf("[ measured ] +60 ms: %zu/%zu loud frames in order, worst error %.4f\n", m.found,
              m.loud, m.worst);
}

TEST(VoiceReceiver, PathFasterBy40msShrinksOnlyInQuietAudio) {
  const auto &pk = stream(12000, 5, 1000);
  const Ref ref = reference(pk);
  auto rx = receiver();
  std::vector<std::pair<int64_t, uint64_t>> shrinks;  // when, how much
  uint64_t shrunk = 0;
  const Sim sim = run(*rx, arrivals(pk, 80000, [&](size_t i) {
                         return ts_us(pk[i].ts, pk[0].ts) >= 3000000 ? -40000 : 0;
                       }),
                       480, 12500000, 1, kRate, [&](int64_t t, const JitterStats &s) {
                         if (s.shrink_ms != shrunk) shrinks.emplace_back(t, s.shrink_ms - shrunk);
                         shrunk = s.shrink_ms;
                       });
  const auto &out = sim.out;
  const JitterStats s = sim.at;
  std::printf("[ measured ] -40 ms: shrink %llu ms in %zu steps", (unsigned long long)s.shrink_ms,
              shrinks.size());
  for (auto &[t, ms] : shrinks) std::printf(" (%.2f s: %llu ms)", t / 1e6, (unsigned long long)ms);
  std::printf(", delay %u/%u ms\n", s.current_delay_ms, s.target_delay_ms);
  EXPECT_GE(s.shrink_ms, 30u);
  EXPECT_LE(s.shrink_ms, 50u);
  ASSERT_FALSE(shrinks.empty());
  EXPECT_LE(shrinks.back().first, 9000000);  // within a few seconds of the window forgetting
  EXPECT_EQ(0u, s.concealed + s.late + s.grow_ms);
  EXPECT_NEAR(double(s.current_delay_ms), double(s.target_delay_ms), 15);
  // Speech is never cut: every loud frame still plays, once and in order.
  const size_t o = find_exact(out, ref.pcm, 48000);
  ASSERT_NE(SIZE_MAX, o);
  const Matches m = match_loud_frames(out, ref, pk, o, 800, 0.1, 4800, 0);
  EXPECT_EQ(m.loud, m.found);
  std::printf("[ measured ] -40 ms: %zu/%zu loud frames in order, worst error %.4f\n", m.found,
              m.loud, m.worst);
}

TEST(VoiceReceiver, UniformJitterSetsTheTargetNearItsQuantile) {
  const auto &pk = stream(10000, 6, 1000);
  std::mt19937 rng(7);
  std::vector<int64_t> jit(pk.size());
  for (auto &j : jit) j = int64_t(rng() % 40001);
  auto rx = receiver();
  uint64_t late_at_2s = 0;
  const Sim sim = run(*rx, arrivals(pk, 25000, [&](size_t i) { return jit[i]; }), 480, 10500000,
                       1, kRate, [&](int64_t t, const JitterStats &s) {
                         if (t <= 2000000) late_at_2s = s.late;
                       });
  const JitterStats s = sim.at;
  std::printf("[ measured ] jitter 0..40 ms: target %u ms, delay %u ms, late %llu (%llu in the "
              "first 2 s), concealed %llu, grow %llu ms, shrink %llu ms\n",
              s.target_delay_ms, s.current_delay_ms, (unsigned long long)s.late,
              (unsigned long long)late_at_2s, (unsigned long long)s.concealed,
              (unsigned long long)s.grow_ms, (unsigned long long)s.shrink_ms);
  EXPECT_GE(s.target_delay_ms, 30u);
  EXPECT_LE(s.target_delay_ms, 70u);
  EXPECT_LE(s.late - late_at_2s, pk.size() / 50);  // once learnt, under 2% late
  EXPECT_NEAR(double(s.current_delay_ms), double(s.target_delay_ms), 20);
}

TEST(VoiceReceiver, DtxGapIsComfortNoiseAndKeepsTheDelay) {
  // 2 s of speech, 1.5 s of digital silence, 2 s of speech.
  std::vector<int16_t> pcm = voice(2000, 8);
  pcm.resize(pcm.size() + 72000, 0);
  const auto tail = voice(2000, 9);
  pcm.insert(pcm.end(), tail.begin(), tail.end());
  const auto pk = encode(pcm, 3000, {20}, 0);
  const Ref ref = reference(pk);
  auto rx = receiver();
  uint32_t delay_before = 0;
  uint64_t cn_before = 0;
  const Sim sim = run(*rx, arrivals(pk, 20000), 480, 6000000, 1, kRate,
                       [&](int64_t t, const JitterStats &s) {
                         if (t < 1900000) delay_before = s.current_delay_ms, cn_before = s.comfort_noise;
                       });
  const auto &out = sim.out;
  const JitterStats s = sim.at;
  EXPECT_GT(s.comfort_noise - cn_before, 60u);  // ~1.4 s of 20 ms stretches
  EXPECT_EQ(0u, s.concealed + s.grow_ms + s.shrink_ms + s.late);
  EXPECT_EQ(delay_before, s.current_delay_ms);
  const size_t o = find_exact(out, ref.pcm, 48000);
  ASSERT_TRUE(contains_at(out, o, ref.pcm));
  EXPECT_LT(rms(out.data() + o + 2500 * 48, 48000 / 2), 100.0);  // the gap is quiet
}

TEST(VoiceReceiver, TimestampWrapIsInvisible) {
  const auto &pk = stream(5000, 1, 0xffffffffu - 2 * 48000 + 1);
  ASSERT_LT(pk.back().ts, pk.front().ts);
  const Ref ref = reference(pk);
  auto rx = receiver();
  const Sim sim = run(*rx, arrivals(pk, 20000), 480, 5500000);
  const auto &out = sim.out;
  ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 48000), ref.pcm));
  const JitterStats s = sim.at;
  EXPECT_EQ(0u, s.concealed + s.late + s.resets + s.duplicates);
  EXPECT_EQ(count_speech(pk), sim.end.frames_decoded);
}

TEST(VoiceReceiver, AnyPullSizeGivesTheSameAudio) {
  const auto &pk = stream(3000, 10, 1000);
  const Ref ref = reference(pk);
  for (size_t chunk : {480, 1, 441, 960, 2048}) {
    auto rx = receiver();
    const Sim sim = run(*rx, arrivals(pk, 20000), chunk, 3600000);
    const auto &out = sim.out;
    const JitterStats s = sim.at;
    EXPECT_TRUE(contains_at(out, find_exact(out, ref.pcm, 48000), ref.pcm)) << chunk;
    EXPECT_EQ(count_speech(pk), sim.end.frames_decoded) << chunk;
    EXPECT_EQ(0u, s.concealed + s.grow_ms + s.shrink_ms) << chunk;
    EXPECT_EQ(out.size(), sim.end.samples_out) << chunk;
    // The pull period is part of the target.
    EXPECT_EQ(std::max<uint32_t>(20, uint32_t(chunk * 1000 / 48000)), s.target_delay_ms) << chunk;
  }
}

TEST(VoiceReceiver, DeadStreamFadesToSilence) {
  const auto &pk = stream(6000, 11, 1000);
  std::vector<Pkt> head(pk.begin(), pk.begin() + 100);
  const Ref full = reference(head);
  while (head.back().data.size() <= 2 || rms(full.pcm.data() + full.off[head.size() - 1], 960) < 1000) {
    head.pop_back();  // stop in the middle of a loud syllable, where a cut would buzz
  }
  auto rx = receiver();
  const Sim sim = run(*rx, arrivals(head, 20000), 480, 4000000);
  const auto &out = sim.out;
  const Ref ref = reference(head);
  const size_t o = find_exact(out, ref.pcm, 4800);
  ASSERT_NE(SIZE_MAX, o);
  const size_t end = o + ref.pcm.size();
  const JitterStats s = sim.end;
  std::printf("[ measured ] dead stream: %llu concealed, longest gap %llu ms\n",
              (unsigned long long)s.concealed, (unsigned long long)s.longest_gap_ms);
  EXPECT_GT(rms(out.data() + end, 960), 50.0);  // concealment first
  EXPECT_LE(s.concealed, 240u / 20 + 1);
  EXPECT_GE(s.longest_gap_ms, 1900u);  // until the end of the run
  // ... then, past max_conceal_ms (and the frame that fades), nothing at all.
  EXPECT_TRUE(std::all_of(out.begin() + ptrdiff_t(end + (240 + 20) * 48), out.end(),
                          [](int16_t v) { return v == 0; }));
}

TEST(VoiceReceiver, LongOutageThenResumption) {
  const auto &pk = stream(9000, 12, 1000);
  auto arr = arrivals(pk, 20000);
  std::vector<Arrival> kept;
  for (auto &a : arr) {
    const int64_t m = ts_us(a.ts, pk[0].ts);
    if (m < 3000000 || m >= 5000000) kept.push_back(a);
  }
  int64_t resume_us = INT64_MAX;  // the first arrival after the outage
  for (auto &a : kept) {
    if (a.at_us > 3100000) resume_us = std::min(resume_us, a.at_us);
  }
  auto rx = receiver();
  JitterStats before;
  int64_t back_at = -1;
  auto played = [](const JitterStats &x) { return x.frames_decoded + x.comfort_noise; };
  const Sim sim = run(*rx, kept, 480, 9500000, 1, kRate, [&](int64_t t, const JitterStats &x) {
    if (t < resume_us) before = x;
    if (back_at < 0 && t >= resume_us && played(x) > played(before)) back_at = t - resume_us;
  });
  const JitterStats s = sim.at;
  std::printf("[ measured ] 2 s outage: audio back %.0f ms after the first frame arrived, "
              "skipped %llu ms, delay %u/%u ms, concealed %llu\n",
              back_at / 1e3, (unsigned long long)s.skipped_ms, s.current_delay_ms,
              s.target_delay_ms, (unsigned long long)s.concealed);
  ASSERT_GT(back_at, 0);
  EXPECT_LE(back_at, 30000);  // at the target delay (20 ms), not 2 s late
  EXPECT_EQ(0u, s.resets);
  EXPECT_NEAR(double(s.current_delay_ms), double(s.target_delay_ms), 10);
  EXPECT_GE(s.skipped_ms, 1900u);
  EXPECT_EQ(0u, s.late);
}

TEST(VoiceReceiver, SenderRestartResetsWithoutAClick) {
  // Three streams back to back in real time; the second jumps 10 s ahead in timestamps, the
  // third 20 s back.
  const auto &a = stream(3000, 13, 1000);
  const auto &b = stream(3000, 14, 1000 + 144000 + 480000);
  const auto &c = stream(3000, 15, 1000 + 144000 + 480000 + 144000 - 960000);
  std::vector<Arrival> arr = arrivals(a, 20000);
  for (auto &x : arrivals(b, 20000 + 3000000)) arr.push_back(x);
  for (auto &x : arrivals(c, 20000 + 6000000)) arr.push_back(x);
  auto rx = receiver();
  const Sim sim = run(*rx, arr, 480, 9500000);
  const auto &out = sim.out;
  const JitterStats s = sim.at;
  std::printf("[ measured ] restarts: %llu resets, %llu decoded of %zu, late %llu, delay %u/%u\n",
              (unsigned long long)s.resets, (unsigned long long)sim.end.frames_decoded,
              count_speech(a) + count_speech(b) + count_speech(c), (unsigned long long)s.late,
              s.current_delay_ms, s.target_delay_ms);
  EXPECT_EQ(2u, s.resets);
  // Each restart costs the frame that raised the suspicion, nothing else.
  EXPECT_GE(sim.end.frames_decoded + 2, count_speech(a) + count_speech(b) + count_speech(c));
  EXPECT_EQ(0u, s.late);
  EXPECT_NEAR(double(s.current_delay_ms), double(s.target_delay_ms), 10);
  // The third stream's loud frames all play.
  const Ref rc = reference(c);
  const Matches m = match_loud_frames(out, rc, c, 6000000 * 48 / 1000, 800, 0.2, 0, 9600);
  EXPECT_EQ(m.loud, m.found);
  // No click: no step between samples larger than the signal's own steepest.
  auto steepest = [](const int16_t *p, size_t n) {
    int d = 0;
    for (size_t i = 1; i < n; ++i) d = std::max(d, std::abs(int(p[i]) - int(p[i - 1])));
    return d;
  };
  const Ref ra = reference(a);
  const int natural = steepest(ra.pcm.data(), ra.pcm.size());
  for (size_t at : {size_t(3000000 * 48 / 1000), size_t(6000000 * 48 / 1000)}) {
    EXPECT_LE(steepest(out.data() + at - 4800, 9600), natural) << at;
  }
}

TEST(VoiceReceiver, MalformedPayloadsAreCountedAndIgnored) {
  const auto &pk = stream(3000, 1, 1000);
  const Ref ref = reference(pk);
  auto arr = arrivals(pk, 20000);
  const std::vector<std::vector<uint8_t>> bad = {
      {},                            // empty
      {0},                           // no primary
      {0, 4, 0, 1, 0, 1, 9},         // four redundant blocks
      {0, 1, 0, 0, 0, 1, 9, 9},      // ts_back 0
      {0, 1, 0, 5, 0, 9, 1, 2},      // block longer than the payload
      {0, 0, 0xfb},                  // Opus code 3 without its frame count
      {0, 0, 0xfb, 0x41, 10, 1, 2},  // Opus padding (10 bytes) longer than the packet
  };
  size_t n = 0;
  for (size_t i = 7; i < arr.size(); i += 11, ++n) {
    const auto &b = bad[n % bad.size()];
    arr.push_back(Arrival{arr[i].at_us + 1, arr[i].ts + 480, b});
  }
  auto rx = receiver();
  EXPECT_EQ(kErrMediaMalformed, rx->insert(5, nullptr, 10, 0));
  const Sim sim = run(*rx, arr, 480, 3500000);
  const auto &out = sim.out;
  ASSERT_TRUE(contains_at(out, find_exact(out, ref.pcm, 48000), ref.pcm));
  EXPECT_EQ(n + 1, sim.end.malformed);
  EXPECT_EQ(pk.size(), sim.end.frames_received);
}

TEST(VoiceReceiver, InsertAndPullNeverAllocate) {
#if defined(RECV_TEST_TSAN)
  GTEST_SKIP() << "no allocation counter under TSan";
#endif
  const auto &pk = stream(4000, 3, 1000, {20}, 10);
  std::mt19937 rng(3);
  auto arr = arrivals(pk, 20000, [&](size_t) { return int64_t(rng() % 30000); }, 2);
  std::vector<Arrival> kept;
  for (size_t i = 0; i < arr.size(); ++i) {
    if (rng() % 8 != 0) kept.push_back(arr[i]);
    if (i % 13 == 0) kept.push_back(arr[i]);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [](const Arrival &a, const Arrival &b) { return a.at_us < b.at_us; });
  auto rx = receiver();
  std::vector<int16_t> out(4096);
  const size_t sizes[] = {480, 1, 441, 960, 2048, 7};
  size_t next = 0;
  int64_t t = 0;
  g_allocs = 0;
  for (size_t k = 0; t < 4600000; ++k) {
    const size_t chunk = sizes[k % 6];
    g_alloc_armed = true;
    for (; next < kept.size() && kept[next].at_us <= t; ++next) {
      rx->insert(kept[next].ts, kept[next].payload.data(), kept[next].payload.size(),
                 kept[next].at_us);
    }
    rx->pull(out.data(), chunk, t);
    g_alloc_armed = false;
    t += int64_t(chunk) * 1000000 / kRate;
  }
  EXPECT_EQ(0, g_allocs.load());
  // The counter works: it sees this.
  g_alloc_armed = true;
  auto *p = new std::vector<int>(3);
  g_alloc_armed = false;
  delete p;
  EXPECT_GE(g_allocs.load(), 1);
  const JitterStats s = rx->stats();
  EXPECT_GT(s.frames_decoded, 100u);
  EXPECT_GT(s.red_recovered + s.fec_recovered, 0u);
}

}  // namespace
}  // namespace parley::media

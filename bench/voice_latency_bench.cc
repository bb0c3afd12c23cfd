// Mouth-to-ear latency of a loopback call, through the public C API only (plus the test
// support's RelayProcess to run the real parley-relay).
//
//   parley_bench_voice_latency [--impulses N] [--chunk-ms C] [--path relay|direct|both]
//                              [--relay PATH]
//
// A relay process and two contexts on 127.0.0.1; A calls B. One thread stands in for both
// sound cards: every C ms on an absolute clock it pushes one chunk of A's microphone and
// pulls one chunk of B's speaker (and the reverse direction, silent, so both ends run as in a
// real call). A's microphone carries low-level noise (-45 dBFS, a quiet room) and, once a
// second, a 1 kHz tone burst at -6 dBFS whose first sample sits on a frame boundary: the
// worst case for framing, the first sample waits a whole frame before it can be encoded.
//
// Time base (a sound card with C ms buffers on both sides): input sample i was captured at
// t0 + i/rate - C (its chunk is pushed when the chunk is full), output sample o plays at
// t0 + o/rate (the chunk pulled at t_j starts playing at t_j). An onset is the first sample
// whose magnitude passes half the burst's amplitude, the same detector on both sides, so
//   mouth-to-ear = (o - i) / rate + C.
//
// Reference, measured in the same run: the codec alone, i.e. the same burst through
// libopus (VoiceEncoder -> VoiceDecoder, the call's profile) with nothing else in between:
// one frame of capture plus Opus's algorithmic delay. That is the floor of any Opus voice
// path; parley adds the network hop, the jitter buffer and the sound-card quantisation.
// The budget is frame + jitter-buffer target + 10 ms of processing; the table says
// how the measured p50 and max compare with it.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <parley/parley.h>

#include "base/error.h"
#include "media/opus_codec.h"
#include "media/voice_profile.h"
#include "relay_process.h"

#ifndef PARLEY_RELAY_BIN
#define PARLEY_RELAY_BIN "parley-relay"
#endif

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kRate = 48000;
constexpr double kBurstAmp = 16000;  // -6 dBFS
constexpr double kNoiseAmp = 180;    // about -45 dBFS rms (uniform noise)
constexpr int kBurstMs = 30;

struct Options {
  int impulses = 20;
  int chunk_ms = 10;
  bool relay_path = true, direct_path = true;
  std::string relay = PARLEY_RELAY_BIN;
};

// Deterministic noise (xorshift), the same on every run.
struct Noise {
  uint32_t s = 0x9e3779b9u;
  int16_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return int16_t(std::lrint((double(s) / 4294967295.0 * 2 - 1) * kNoiseAmp * std::sqrt(3.0)));
  }
};

// A's microphone: noise, and a burst starting at every whole second from `first` on.
int16_t mic_sample(uint64_t i, uint64_t first, Noise *n) {
  const int16_t noise = n->next();
  const uint64_t in_second = i % kRate;
  if (i >= first && in_second < uint64_t(kRate / 1000 * kBurstMs)) {
    const double ph = 2 * M_PI * 1000.0 * double(in_second) / kRate;
    return int16_t(std::lrint(kBurstAmp * std::sin(ph + M_PI / 2)));  // starts at its peak
  }
  return noise;
}

bool onset(int16_t s) { return std::abs(int(s)) >= int(kBurstAmp / 2); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t k = size_t(std::min<double>(double(v.size() - 1), std::ceil(q * v.size()) - 1));
  return v[k];
}

// The reference: the burst through libopus alone, at frame boundaries as in the call.
double codec_only_ms(uint8_t profile_id) {
  using namespace parley::media;
  const VoiceProfile *p = voice_profile(profile_id);
  std::unique_ptr<VoiceEncoder> enc;
  std::unique_ptr<VoiceDecoder> dec;
  if (!p || VoiceEncoder::create(kRate, 1, &enc) != parley::kOk || enc->set_profile(*p) != 0 ||
      VoiceDecoder::create(kRate, 1, &dec) != parley::kOk) {
    return NAN;
  }
  const int fs = enc->frame_samples();
  Noise noise;
  std::vector<int16_t> in(static_cast<size_t>(fs)), out(kMaxFrameSamples);
  uint8_t pkt[kMaxOpusPacket];
  uint64_t i = 0, o = 0;
  int64_t first_in = -1;
  for (int k = 0; k < 3 * kRate / fs; ++k) {
    for (int s = 0; s < fs; ++s, ++i) {
      in[size_t(s)] = mic_sample(i, kRate, &noise);
      if (first_in < 0 && onset(in[size_t(s)])) first_in = int64_t(i);
    }
    const int n = enc->encode(in.data(), pkt, sizeof pkt);
    const int m = n > 0 && !is_dtx_packet(size_t(n))
                      ? dec->decode(pkt, size_t(n), out.data(), int(kMaxFrameSamples))
                      : dec->conceal(out.data(), fs);
    for (int s = 0; s < m; ++s, ++o) {
      if (first_in >= 0 && int64_t(o) >= first_in && onset(out[size_t(s)])) {
        // Captured at first_in; the frame leaves the encoder once full, at the end of
        // the frame, and its decoded samples play from then on.
        const int64_t frame_end = (first_in / fs + 1) * fs;
        return (double(frame_end - first_in) + double(int64_t(o) - (first_in / fs) * fs)) *
               1000.0 / kRate;
      }
    }
  }
  return NAN;
}

struct Party {
  parley_identity *id = nullptr;
  parley_context *ctx = nullptr;
  parley_call *call = nullptr;
  char fp[PARLEY_FINGERPRINT_BUF_LEN] = {};
};

// Polls both contexts until `done` holds or the deadline passes; records what happens.
template <typename F>
bool pump(Party *a, Party *b, Clock::duration timeout, F done) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (Party *p : {a, b}) {
      parley_event ev;
      while (parley_context_poll_event(p->ctx, &ev) == 1) {
        if (ev.type == PARLEY_EVENT_INCOMING_CALL && p == b) {
          b->call = ev.call;
          parley_call_accept(ev.call);
        }
        if (done(p, ev)) return true;
      }
    }
    if (Clock::now() > deadline) return false;
    // The poll API has no wait; a short pause keeps this set-up loop off the CPU.
    usleep(1000);
  }
}

struct Result {
  bool ok = false;
  int profile = -1;
  std::vector<double> ms;
  double target_ms = 0, delay_ms = 0;
  int path = -1;
  int missed = 0;
};

Result measure(const Options &o, const parley::testing::RelayProcess &relay, bool direct) {
  Result r;
  Party a, b;
  const std::string relay_addr = relay.address.to_string();
  const std::string relay_fp = relay.fingerprint.hex();
  for (Party *p : {&a, &b}) {
    parley_context_config cfg;
    parley_context_config_init(&cfg);
    cfg.relay_address = relay_addr.c_str();
    cfg.relay_fingerprint = relay_fp.c_str();
    cfg.bind_address = "127.0.0.1:0";
    cfg.sample_rate = kRate;
    cfg.include_loopback = 1;
    cfg.disable_direct = direct ? 0 : 1;
    if (parley_identity_generate(&p->id) != 0 || parley_context_create(p->id, &cfg, &p->ctx) != 0) {
      std::fprintf(stderr, "latency: context: %s\n", parley_last_error_message());
      return r;
    }
    parley_context_fingerprint(p->ctx, p->fp, sizeof p->fp);
  }
  int registered = 0;
  if (!pump(&a, &b, std::chrono::seconds(10), [&](Party *, const parley_event &ev) {
        return ev.type == PARLEY_EVENT_RELAY_STATE && ev.relay_state == PARLEY_RELAY_REGISTERED &&
               ++registered == 2;
      })) {
    std::fprintf(stderr, "latency: contexts did not register\n");
    return r;
  }
  if (parley_call_start(a.ctx, b.fp, &a.call) != 0) {
    std::fprintf(stderr, "latency: call: %s\n", parley_last_error_message());
    return r;
  }
  int active = 0;
  if (!pump(&a, &b, std::chrono::seconds(10), [&](Party *, const parley_event &ev) {
        if (ev.type == PARLEY_EVENT_CALL_STATE && ev.call_state == PARLEY_CALL_ACTIVE) ++active;
        return active == 2;
      })) {
    std::fprintf(stderr, "latency: call not active within 10 s\n");
    return r;
  }

  // The sound cards run from here on: media flows on the relay, and the path manager needs
  // frames on both paths to move to direct. Bursts start at the first whole second two
  // seconds after the path is final (the jitter buffer has learnt it), one a second.
  const size_t chunk = size_t(kRate / 1000 * o.chunk_ms);
  const uint64_t kNever = UINT64_MAX;
  uint64_t first_burst = direct ? kNever : 2 * uint64_t(kRate);
  uint64_t total = direct ? uint64_t(kRate) * 10 : first_burst + uint64_t(kRate) * uint64_t(o.impulses + 1);
  int on_direct = 0;
  std::vector<int16_t> mic(chunk), silence(chunk, 0), spk(chunk), sink(chunk);
  Noise noise;
  std::vector<int64_t> in_onsets, out_onsets;
  bool in_burst = false, out_burst = false;
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  parley_call_stats st;
  double target_sum = 0, delay_sum = 0;
  int samples = 0;
  for (uint64_t pos = 0; pos < total; pos += chunk) {
    next.tv_nsec += long(o.chunk_ms) * 1000000L;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);  // the device clock
    for (size_t s = 0; s < chunk; ++s) {
      mic[s] = mic_sample(pos + s, first_burst, &noise);
      const bool on = onset(mic[s]);
      if (on && !in_burst) in_onsets.push_back(int64_t(pos + s));
      if (on) in_burst = true;
      if ((pos + s) % kRate == uint64_t(kRate / 2)) in_burst = false;
    }
    parley_call_push_audio(a.call, mic.data(), chunk);
    parley_call_push_audio(b.call, silence.data(), chunk);
    parley_call_pull_audio(b.call, spk.data(), chunk);
    parley_call_pull_audio(a.call, sink.data(), chunk);
    for (size_t s = 0; s < chunk; ++s) {
      const bool on = onset(spk[s]);
      // One onset per burst: the detector re-arms half a second after the last one.
      if (on && !out_burst) out_onsets.push_back(int64_t(pos + s));
      if (on) out_burst = true;
      if (!out_onsets.empty() && int64_t(pos + s) - out_onsets.back() > kRate / 2) {
        out_burst = false;
      }
    }
    for (Party *p : {&a, &b}) {
      parley_event ev;
      while (parley_context_poll_event(p->ctx, &ev) == 1) {
        if (ev.type == PARLEY_EVENT_PATH_CHANGED) {
          on_direct += ev.path == PARLEY_PATH_DIRECT ? 1 : -1;
          if (first_burst != kNever && on_direct != 2) {
            std::fprintf(stderr, "latency: the path changed during the measurement\n");
            return r;
          }
        }
      }
    }
    if (first_burst == kNever && on_direct == 2) {
      first_burst = (pos / kRate + 3) * uint64_t(kRate);
      total = first_burst + uint64_t(kRate) * uint64_t(o.impulses + 1);
    }
    if (first_burst == kNever && pos + chunk >= total) {
      std::fprintf(stderr, "latency: no direct path within 10 s of audio\n");
      return r;
    }
    if (pos % kRate == 0 && pos >= first_burst) {
      st.struct_size = sizeof st;
      if (parley_call_get_stats(b.call, &st) == 0) {
        target_sum += st.jitter_target_ms;
        delay_sum += st.jitter_delay_ms;
        ++samples;
        r.path = st.path;
      }
      parley_call_stats sa;
      sa.struct_size = sizeof sa;
      if (parley_call_get_stats(a.call, &sa) == 0) r.profile = sa.profile;
    }
  }
  // Match each input onset with the first output onset after it (bursts are 1 s apart and
  // the buffer's maximum is 500 ms, so the match is unambiguous).
  size_t k = 0;
  for (int64_t in : in_onsets) {
    while (k < out_onsets.size() && out_onsets[k] < in) ++k;
    if (k < out_onsets.size() && out_onsets[k] - in < kRate / 2) {
      r.ms.push_back(double(out_onsets[k] - in) * 1000.0 / kRate + o.chunk_ms);
      ++k;
    } else {
      ++r.missed;
    }
  }
  r.target_ms = samples ? target_sum / samples : NAN;
  r.delay_ms = samples ? delay_sum / samples : NAN;
  r.ok = !r.ms.empty();
  for (Party *p : {&a, &b}) {
    parley_context_destroy(p->ctx);
    parley_call_destroy(p->call);
    parley_identity_destroy(p->id);
  }
  return r;
}

int usage() {
  std::fprintf(stderr,
               "usage: parley_bench_voice_latency [--impulses N] [--chunk-ms C] "
               "[--path relay|direct|both] [--relay PATH]\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (a == "--impulses") {
      o.impulses = std::atoi(v.c_str());
    } else if (a == "--chunk-ms") {
      o.chunk_ms = std::atoi(v.c_str());
    } else if (a == "--path") {
      o.relay_path = v == "relay" || v == "both";
      o.direct_path = v == "direct" || v == "both";
      if (!o.relay_path && !o.direct_path) return usage();
    } else if (a == "--relay") {
      o.relay = v;
    } else {
      return usage();
    }
  }
  if (o.impulses < 1 || o.impulses > 600 || (o.chunk_ms != 5 && o.chunk_ms != 10 &&
                                             o.chunk_ms != 20)) {
    return usage();
  }
  char dir[] = "/tmp/parley-latency-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  const std::string seed = std::string(dir) + "/relay.seed";
  parley::testing::RelayProcess relay;
  if (!relay.start(o.relay, {"--listen", "127.0.0.1:0", "--stun-alt", "none", "--seed", seed,
                             "--log-level", "error"})) {
    std::fprintf(stderr, "latency: %s did not start\n", o.relay.c_str());
    return 1;
  }
  char host[256] = "?";
  gethostname(host, sizeof host);
  std::printf("# mouth-to-ear on loopback, %d bursts per path, %d ms sound-card chunks, 48 kHz "
              "mono, host %s, %ld cores\n",
              o.impulses, o.chunk_ms, host, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%-7s %-14s %5s %10s %10s %8s %8s %8s %10s %9s %7s %6s\n", "path", "profile",
              "frame", "codec-only", "jb-target", "p50", "p90", "max", "budget", "p50-frm-tgt",
              "ratio", "missed");
  int rc = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const bool direct = pass == 1;
    if ((direct && !o.direct_path) || (!direct && !o.relay_path)) continue;
    const Result r = measure(o, relay, direct);
    if (!r.ok) {
      std::printf("%-7s measurement failed\n", direct ? "direct" : "relay");
      rc = 1;
      continue;
    }
    const parley::media::VoiceProfile *p = parley::media::voice_profile(uint8_t(r.profile));
    const double frame = p ? p->frame_ms : NAN;
    const double ref = codec_only_ms(uint8_t(r.profile));
    const double p50 = percentile(r.ms, 0.5), p90 = percentile(r.ms, 0.9),
                 mx = percentile(r.ms, 1.0);
    const double budget = frame + r.target_ms + 10;
    std::printf("%-7s %-14s %3.0fms %8.1fms %8.1fms %6.1fms %6.1fms %6.1fms %8.1fms %9.1fms %7.2f "
                "%6d\n",
                r.path == PARLEY_PATH_DIRECT ? "direct" : "relay", p ? p->name : "?", frame, ref,
                r.target_ms, p50, p90, mx, budget, p50 - frame - r.target_ms, p50 / ref, r.missed);
  }
  std::printf("# codec-only: the same burst through libopus alone (one frame of capture + "
              "algorithmic delay); ratio = p50 / codec-only;\n# budget = frame + jitter-buffer "
              "target + 10 ms; p50-frm-tgt: what the rest of the path costs at the median.\n");
  relay.stop();
  std::string rm = std::string("rm -rf ") + dir;
  if (std::system(rm.c_str()) != 0) rc = 1;
  return rc;
}

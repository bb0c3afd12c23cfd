// parley_voice_sim: the voice pipeline offline, deterministic, on a simulated clock.
//
//   parley_voice_sim --in IN.wav [--out OUT.wav] [--profile P] [--loss PCT] [--jitter-ms J]
//                    [--delay-ms D] [--seed S] [--tail-ms T] [--no-feedback]
//                    [--frames-only N] [--reference]
//   parley_voice_sim --list-profiles
//
// Pipeline mode (the default): 16-bit mono PCM at an Opus rate (8, 12, 16, 24, 48 kHz) goes
// through media::VoiceSender (profile P) -> media::FrameSealer (ChaCha20-Poly1305 under a
// fixed key) -> a simulated network (each datagram lost with probability PCT %, else
// delivered after D ms plus a uniform 0..J ms of jitter, so J > 0 also reorders) ->
// media::FrameOpener -> media::VoiceReceiver, which is pulled in 10 ms chunks on the
// simulated clock, as a sound card would. The output WAV has the input's rate and is T ms
// (default 500) longer than the input, so the delayed tail is not cut off.
//
// Frame k (first sample at k x frame) is encoded and sent when its last sample has been
// "captured", at (k + 1) x frame on the simulated clock; the receiver inserts what arrived by
// each pull, stamped with its arrival time, as the call layer does. Loss feedback is modelled
// as in a call: the receiving side measures the loss of frame indices per second
// (call::VoiceChannel's rule) and the sender gets that report D ms later with every frame
// (each report itself lost with the same probability); --no-feedback leaves the sender's FEC
// loss hint at 0.
//
// --reference runs only libopus through parley's thin wrappers (VoiceEncoder::encode ->
// VoiceDecoder::decode, the same profile, loss hint 0, every packet decoded): the reference
// for the pipeline's CPU cost, and the codec alone for quality. --frames-only N runs N frames
// of the input looped and writes nothing (CPU measurement; bench/voice_cpu_bench.sh).
//
// Everything is deterministic: the same arguments give the same output, byte for byte.
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "media/frame_crypto.h"
#include "media/frame_header.h"
#include "media/opus_codec.h"
#include "media/voice_payload.h"
#include "media/voice_profile.h"
#include "media/voice_receiver.h"
#include "media/voice_sender.h"

using namespace parley;
using namespace parley::media;

namespace {

// --- WAV (16-bit PCM; mono, or stereo mixed down) ---

uint32_t le32(const unsigned char *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t le16(const unsigned char *p) { return uint16_t(p[0] | p[1] << 8); }

bool read_wav(const char *path, int *rate, std::vector<int16_t> *out) {
  FILE *f = std::fopen(path, "rb");
  if (!f) {
    std::fprintf(stderr, "voice_sim: cannot open %s: %s\n", path, std::strerror(errno));
    return false;
  }
  unsigned char h[12], ch[8], fmt[16];
  int channels = 0;
  bool ok = false;
  if (std::fread(h, 1, 12, f) != 12 || std::memcmp(h, "RIFF", 4) != 0 ||
      std::memcmp(h + 8, "WAVE", 4) != 0) {
    std::fprintf(stderr, "voice_sim: %s is not RIFF/WAVE\n", path);
    std::fclose(f);
    return false;
  }
  while (std::fread(ch, 1, 8, f) == 8) {
    const uint32_t len = le32(ch + 4);
    if (std::memcmp(ch, "fmt ", 4) == 0 && len >= 16) {
      if (std::fread(fmt, 1, 16, f) != 16) break;
      if (le16(fmt) != 1 || le16(fmt + 14) != 16) {
        std::fprintf(stderr, "voice_sim: %s is not 16-bit PCM\n", path);
        break;
      }
      channels = le16(fmt + 2);
      *rate = int(le32(fmt + 4));
      if (std::fseek(f, long(len - 16 + (len & 1)), SEEK_CUR) != 0) break;
    } else if (std::memcmp(ch, "data", 4) == 0 && channels > 0) {
      std::vector<unsigned char> raw(len);
      if (std::fread(raw.data(), 1, len, f) != len) {
        std::fprintf(stderr, "voice_sim: %s: truncated data\n", path);
        break;
      }
      const size_t frames = len / 2 / size_t(channels);
      out->resize(frames);
      for (size_t i = 0; i < frames; ++i) {
        int sum = 0;
        for (int c = 0; c < channels; ++c) sum += int16_t(le16(&raw[2 * (i * channels + c)]));
        (*out)[i] = int16_t(sum / channels);
      }
      ok = true;
      break;
    } else if (std::fseek(f, long(len + (len & 1)), SEEK_CUR) != 0) {
      break;
    }
  }
  std::fclose(f);
  if (!ok && channels == 0) std::fprintf(stderr, "voice_sim: %s: no fmt/data chunk\n", path);
  return ok;
}

void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

bool write_wav(const char *path, int rate, const std::vector<int16_t> &s) {
  FILE *f = std::fopen(path, "wb");
  if (!f) {
    std::fprintf(stderr, "voice_sim: cannot create %s: %s\n", path, std::strerror(errno));
    return false;
  }
  unsigned char h[44];
  const uint32_t bytes = uint32_t(s.size() * 2);
  std::memcpy(h, "RIFF", 4);
  put32(h + 4, 36 + bytes);
  std::memcpy(h + 8, "WAVEfmt ", 8);
  put32(h + 16, 16);
  put16(h + 20, 1);
  put16(h + 22, 1);
  put32(h + 24, uint32_t(rate));
  put32(h + 28, uint32_t(rate * 2));
  put16(h + 32, 2);
  put16(h + 34, 16);
  std::memcpy(h + 36, "data", 4);
  put32(h + 40, bytes);
  std::vector<unsigned char> raw(s.size() * 2);
  for (size_t i = 0; i < s.size(); ++i) put16(&raw[2 * i], uint16_t(s[i]));
  const bool ok = std::fwrite(h, 1, 44, f) == 44 &&
                  std::fwrite(raw.data(), 1, raw.size(), f) == raw.size();
  if (std::fclose(f) != 0 || !ok) {
    std::fprintf(stderr, "voice_sim: writing %s failed\n", path);
    return false;
  }
  return true;
}

// --- a small PRNG of our own (splitmix64): the same stream on every platform ---

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

struct Options {
  const char *in = nullptr;
  const char *out = nullptr;
  int profile = kDefaultProfile;
  double loss_pct = 0;
  double jitter_ms = 0;
  double delay_ms = 20;
  uint64_t seed = 1;
  int tail_ms = 500;
  bool feedback = true;
  long frames_only = 0;
  bool reference = false;
};

int usage() {
  std::fprintf(stderr,
               "usage: parley_voice_sim --in IN.wav [--out OUT.wav] [--profile P] [--loss PCT]\n"
               "                        [--jitter-ms J] [--delay-ms D] [--seed S] [--tail-ms T]\n"
               "                        [--no-feedback] [--frames-only N] [--reference]\n"
               "       parley_voice_sim --list-profiles\n");
  return 2;
}

// The input, looped when more is asked for than it holds (--frames-only), else zero-padded.
struct Source {
  const std::vector<int16_t> &pcm;
  bool loop;
  size_t pos = 0;
  void next(int16_t *out, size_t n) {
    for (size_t i = 0; i < n; ++i, ++pos) {
      if (loop) {
        out[i] = pcm[pos % pcm.size()];
      } else {
        out[i] = pos < pcm.size() ? pcm[pos] : 0;
      }
    }
  }
};

int run_reference(const Options &o, int rate, const std::vector<int16_t> &in) {
  const VoiceProfile *p = voice_profile(uint8_t(o.profile));
  std::unique_ptr<VoiceEncoder> enc;
  std::unique_ptr<VoiceDecoder> dec;
  if (VoiceEncoder::create(rate, 1, &enc) != kOk || enc->set_profile(*p) != kOk ||
      VoiceDecoder::create(rate, 1, &dec) != kOk) {
    std::fprintf(stderr, "voice_sim: codec: %s\n", last_error_message());
    return 1;
  }
  const size_t fs = size_t(enc->frame_samples());
  const size_t frames =
      o.frames_only > 0 ? size_t(o.frames_only)
                        : (in.size() + size_t(rate) * size_t(o.tail_ms) / 1000 + fs - 1) / fs;
  Source src{in, o.frames_only > 0};
  std::vector<int16_t> frame(fs), pcm(kMaxFrameSamples), out;
  if (o.frames_only == 0) out.reserve(frames * fs);
  uint8_t packet[kMaxOpusPacket];
  uint64_t bytes = 0, dtx = 0;
  for (size_t k = 0; k < frames; ++k) {
    src.next(frame.data(), fs);
    const int n = enc->encode(frame.data(), packet, sizeof packet);
    if (n < 0) return 1;
    bytes += uint64_t(n);
    if (is_dtx_packet(size_t(n))) ++dtx;
    const int m = dec->decode(packet, size_t(n), pcm.data(), int(kMaxFrameSamples));
    if (m < 0) return 1;
    if (o.frames_only == 0) out.insert(out.end(), pcm.begin(), pcm.begin() + m);
  }
  std::printf("voice_sim reference profile=%d (%s) rate=%d frame_ms=%u frames=%zu\n",
              o.profile, p->name, rate, unsigned(p->frame_ms), frames);
  std::printf("codec frames=%zu bytes=%llu dtx=%llu kbps=%.1f\n", frames,
              (unsigned long long)bytes, (unsigned long long)dtx,
              double(bytes) * 8 / (double(frames) * p->frame_ms));
  if (o.out && o.frames_only == 0) {
    out.resize(in.size() + size_t(rate) * size_t(o.tail_ms) / 1000);
    if (!write_wav(o.out, rate, out)) return 1;
  }
  return 0;
}

// A datagram in flight on the simulated network.
struct InFlight {
  bool used = false;
  int64_t arrival_us = 0;
  uint64_t order = 0;  // send order, to break ties
  size_t len = 0;
  uint8_t data[kFrameOverhead + kMaxVoicePayload];
};

int run_pipeline(const Options &o, int rate, const std::vector<int16_t> &in) {
  const VoiceProfile *p = voice_profile(uint8_t(o.profile));
  std::unique_ptr<VoiceSender> sender;
  if (VoiceSender::create(rate, 1, uint8_t(o.profile), &sender) != kOk) {
    std::fprintf(stderr, "voice_sim: sender: %s\n", last_error_message());
    return 1;
  }
  JitterConfig jc;  // the defaults a context uses (20..500 ms)
  jc.sample_rate = rate;
  jc.channels = 1;
  std::unique_ptr<VoiceReceiver> receiver;
  if (VoiceReceiver::create(jc, &receiver) != kOk) {
    std::fprintf(stderr, "voice_sim: receiver: %s\n", last_error_message());
    return 1;
  }
  uint8_t key[kFrameKeyLen];
  for (size_t i = 0; i < kFrameKeyLen; ++i) key[i] = uint8_t(0xa5 ^ i);
  FrameSealer sealer;
  FrameOpener opener;
  if (sealer.init(key, 123456) != kOk || opener.init(key) != kOk) {
    std::fprintf(stderr, "voice_sim: frame crypto: %s\n", last_error_message());
    return 1;
  }

  const size_t fs = size_t(sender->frame_samples());
  const int64_t frame_us = int64_t(p->frame_ms) * 1000;
  const size_t chunk = size_t(rate) / 100;  // 10 ms pulls
  const int64_t chunk_us = 10000;
  const size_t out_len = in.size() + size_t(rate) * size_t(o.tail_ms) / 1000;
  const size_t frames = o.frames_only > 0 ? size_t(o.frames_only) : (out_len + fs - 1) / fs;
  // With --frames-only, one pull more than the audio lasts, so the last frame is sent too.
  const size_t pulls = o.frames_only > 0 ? size_t(int64_t(frames) * frame_us / chunk_us) + 1
                                         : (out_len + chunk - 1) / chunk;
  const int64_t delay_us = int64_t(std::llround(o.delay_ms * 1000));
  const double jitter_us = o.jitter_ms * 1000;
  const double loss = o.loss_pct / 100.0;

  Rng net(o.seed), fb_rng(o.seed ^ 0x5eedfeedbacull), jit(o.seed * 0x2545f4914f6cdd1dull + 7);
  // Enough for max jitter + delay at 10 ms frames: 500 ms / 10 ms = 50 (plus slack).
  constexpr size_t kSlots = 128;
  std::unique_ptr<InFlight[]> flight(new InFlight[kSlots]);
  std::vector<int16_t> frame(fs), out;
  if (o.frames_only == 0) out.resize(pulls * chunk);
  std::vector<int16_t> pull_buf(chunk);
  std::unique_ptr<uint8_t[]> payload(new uint8_t[kMaxVoicePayload]);
  std::unique_ptr<uint8_t[]> plain(new uint8_t[kMaxVoicePayload]);

  // Receiver-side loss measurement (call::VoiceChannel::on_frame_index) and its reports as
  // the sender sees them, delay_us later.
  struct Report {
    int64_t at_us;
    uint8_t fraction;
  };
  std::vector<Report> reports;  // grows once per second
  reports.reserve(64);
  bool have_index = false;
  int64_t interval_start = 0;
  uint64_t first = 0, highest = 0, received = 0;
  uint8_t current_fraction = 0;

  uint32_t ts48 = 3000000000u;
  Source src{in, o.frames_only > 0};
  size_t next_frame = 0;
  uint64_t order = 0, sent = 0, lost = 0, delivered = 0, open_failed = 0, overflow = 0;
  size_t report_seen = 0;

  for (size_t j = 0; j < pulls; ++j) {
    const int64_t now = int64_t(j) * chunk_us;
    // Encode and send every frame whose last sample has been captured by now.
    while (next_frame < frames && int64_t(next_frame + 1) * frame_us <= now) {
      const int64_t t_send = int64_t(next_frame + 1) * frame_us;
      src.next(frame.data(), fs);
      if (o.feedback) {
        while (report_seen < reports.size() && reports[report_seen].at_us + delay_us <= t_send) {
          current_fraction = reports[report_seen].fraction;
          ++report_seen;
        }
        // The report rides on each of the peer's frames; some of those are lost too.
        if (fb_rng.uniform() >= loss) sender->on_peer_feedback(current_fraction, t_send / 1000);
      }
      size_t len = 0;
      if (sender->encode(frame.data(), ts48, 0, t_send / 1000, payload.get(), kMaxVoicePayload,
                         &len) != kOk) {
        std::fprintf(stderr, "voice_sim: encode: %s\n", last_error_message());
        return 1;
      }
      ts48 += to_ts48(rate, fs);
      ++next_frame;
      if (len == 0) continue;  // DTX: nothing sent
      FrameHeader h;
      h.flags = kFrameFlagVoice;
      h.profile = uint8_t(o.profile);
      h.stream_id = 1;
      h.timestamp = ts48 - to_ts48(rate, fs);
      size_t i = 0;
      while (i < kSlots && flight[i].used) ++i;
      if (i == kSlots) {
        ++overflow;
        continue;
      }
      InFlight &f = flight[i];
      if (sealer.seal(h, payload.get(), len, f.data, sizeof f.data, &f.len, nullptr) != kOk) {
        std::fprintf(stderr, "voice_sim: seal: %s\n", last_error_message());
        return 1;
      }
      ++sent;
      if (net.uniform() < loss) {
        ++lost;
        continue;
      }
      f.used = true;
      f.order = order++;
      f.arrival_us = t_send + delay_us + int64_t(jit.uniform() * jitter_us);
    }
    // Deliver what has arrived, in arrival order.
    for (;;) {
      int best = -1;
      for (size_t i = 0; i < kSlots; ++i) {
        const InFlight &f = flight[i];
        if (!f.used || f.arrival_us > now) continue;
        if (best < 0 || f.arrival_us < flight[best].arrival_us ||
            (f.arrival_us == flight[best].arrival_us && f.order < flight[best].order)) {
          best = int(i);
        }
      }
      if (best < 0) break;
      InFlight &f = flight[best];
      f.used = false;
      FrameHeader h;
      uint64_t index = 0;
      size_t plen = 0;
      if (opener.open(f.data, f.len, &h, &index, plain.get(), kMaxVoicePayload, &plen) != kOk) {
        ++open_failed;
        continue;
      }
      ++delivered;
      // Loss measurement over 1 s intervals of frame indices, as the call layer does.
      if (!have_index) {
        have_index = true;
        interval_start = f.arrival_us;
        first = highest = index;
        received = 1;
      } else {
        ++received;
        if (index > highest) highest = index;
        if (f.arrival_us - interval_start >= 1000000) {
          const uint64_t expected = highest - first + 1;
          const uint64_t got = received < expected ? received : expected;
          const uint64_t frac = (expected - got) * 256 / expected;
          reports.push_back(Report{f.arrival_us, uint8_t(frac > 255 ? 255 : frac)});
          interval_start = f.arrival_us;
          first = highest + 1;
          received = 0;
        }
      }
      receiver->insert(h.timestamp, plain.get(), plen, f.arrival_us);
    }
    receiver->pull(o.frames_only > 0 ? pull_buf.data() : out.data() + j * chunk, chunk, now);
  }

  const VoiceSenderStats ss = sender->stats();
  const JitterStats js = receiver->stats();
  std::printf("voice_sim pipeline profile=%d (%s) rate=%d frame_ms=%u loss=%g%% jitter_ms=%g "
              "delay_ms=%g seed=%llu feedback=%d frames=%zu\n",
              o.profile, p->name, rate, unsigned(p->frame_ms), o.loss_pct, o.jitter_ms,
              o.delay_ms, (unsigned long long)o.seed, o.feedback ? 1 : 0, next_frame);
  std::printf("sender frames=%llu sent=%llu dtx_skipped=%llu opus_bytes=%llu loss_hint=%d "
              "kbps=%.1f\n",
              (unsigned long long)ss.frames, (unsigned long long)ss.sent,
              (unsigned long long)ss.dtx_skipped, (unsigned long long)ss.bytes, ss.loss_hint,
              ss.frames ? double(ss.bytes) * 8 / (double(ss.frames) * p->frame_ms) : 0.0);
  std::printf("network sent=%llu lost=%llu delivered=%llu open_failed=%llu overflow=%llu\n",
              (unsigned long long)sent, (unsigned long long)lost,
              (unsigned long long)delivered, (unsigned long long)open_failed,
              (unsigned long long)overflow);
  std::printf("receiver received=%llu decoded=%llu fec_recovered=%llu red_recovered=%llu "
              "concealed=%llu late=%llu comfort_noise=%llu duplicates=%llu malformed=%llu "
              "shrink_ms=%llu grow_ms=%llu longest_gap_ms=%llu delay_ms=%u target_ms=%u\n",
              (unsigned long long)js.frames_received, (unsigned long long)js.frames_decoded,
              (unsigned long long)js.fec_recovered, (unsigned long long)js.red_recovered,
              (unsigned long long)js.concealed, (unsigned long long)js.late,
              (unsigned long long)js.comfort_noise, (unsigned long long)js.duplicates,
              (unsigned long long)js.malformed, (unsigned long long)js.shrink_ms,
              (unsigned long long)js.grow_ms, (unsigned long long)js.longest_gap_ms,
              js.current_delay_ms, js.target_delay_ms);
  if (o.out && o.frames_only == 0) {
    out.resize(out_len);
    if (!write_wav(o.out, rate, out)) return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reference") { o.reference = true; continue; }
    if (a == "--no-feedback") { o.feedback = false; continue; }
    if (a == "--list-profiles") {
      // One line per profile: id, name, frame ms, Opus bitrate, redundancy (for the scripts).
      for (size_t k = 0; k < voice_profile_count(); ++k) {
        const VoiceProfile *vp = voice_profile(uint8_t(k));
        std::printf("%u %s %u %u %u\n", unsigned(vp->id), vp->name, unsigned(vp->frame_ms),
                    unsigned(vp->bitrate_bps), unsigned(vp->redundancy));
      }
      return 0;
    }
    if (i + 1 >= argc) return usage();
    const char *v = argv[++i];
    char *end = nullptr;
    if (a == "--in") o.in = v;
    else if (a == "--out") o.out = v;
    else if (a == "--profile") o.profile = int(std::strtol(v, &end, 10));
    else if (a == "--loss") o.loss_pct = std::strtod(v, &end);
    else if (a == "--jitter-ms") o.jitter_ms = std::strtod(v, &end);
    else if (a == "--delay-ms") o.delay_ms = std::strtod(v, &end);
    else if (a == "--seed") o.seed = std::strtoull(v, &end, 10);
    else if (a == "--tail-ms") o.tail_ms = int(std::strtol(v, &end, 10));
    else if (a == "--frames-only") o.frames_only = std::strtol(v, &end, 10);
    else return usage();
    if (end != nullptr && (*end != '\0' || end == v)) return usage();
  }
  if (!o.in || o.profile < 0 || size_t(o.profile) >= voice_profile_count() || o.loss_pct < 0 ||
      o.loss_pct > 100 || o.jitter_ms < 0 || o.jitter_ms > 400 || o.delay_ms < 0 ||
      o.delay_ms > 1000 || o.tail_ms < 0 || o.frames_only < 0) {
    return usage();
  }
  int rate = 0;
  std::vector<int16_t> in;
  if (!read_wav(o.in, &rate, &in)) return 1;
  if (!is_opus_rate(rate) || in.empty()) {
    std::fprintf(stderr, "voice_sim: %s: %d Hz (need 8000, 12000, 16000, 24000 or 48000), "
                 "%zu samples\n", o.in, rate, in.size());
    return 1;
  }
  return o.reference ? run_reference(o, rate, in) : run_pipeline(o, rate, in);
}

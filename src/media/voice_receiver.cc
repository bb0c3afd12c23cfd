// Why this file is long: the jitter buffer is one state machine. Every playout decision in
// produce() (decode, rebuild from a redundant copy or FEC, conceal, comfort noise, shrink or
// grow the delay) reads the same slots, delay window, cursor and level history; split up, those
// invariants would be spread over files, and no part would be usable alone.

#include "media/voice_receiver.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "base/error.h"

namespace parley::media {

namespace {

// 64 frames are 640 ms even of 10 ms frames: more than max_delay_ms can ever hold back.
constexpr int kSlots = 64;
// 4 s of 10 ms frames is 400 observations; the ring drops the oldest beyond this.
constexpr int kWindowCap = 512;
// The pull period is the largest of the recent chunks: a host that alternates 441/442 (or
// whose callback sometimes asks for two periods) must not be underrun by the larger one.
constexpr int kPullRing = 32;
// Frames closer than this to the cursor are "at" it: concealment only comes in multiples of
// 2.5 ms, and a sliver that small is not worth a discontinuity.
constexpr int64_t kTol48 = 120;
constexpr int64_t kDefaultDur48 = 960;
// Time-scale operations (shrink, grow without underrun) at most this often, so the delay
// converges over seconds instead of jumping.
constexpr int64_t kOpGapUs = 200000;
// No shrinking this soon after an underrun: the window needs ~5% of its length of the new
// (slower) path's frames before the quantile (and so the target) reflects it, and shrinking
// in between would only cause the next underrun.
constexpr int64_t kShrinkHoldUs = 1000000;
constexpr int kFadeMs = 5;       // fade-in after silence, crossfade at a shrink splice
constexpr int kFadeOutMs = 10;   // PLC faded out when the stream stops (reset)
// Low energy: below 1/8 (-18 dB) of the recent speech level, or below an absolute floor
// (-50 dBFS) for quiet talkers.
constexpr double kLowRatio = 0.125;
constexpr double kLowFloor = 100.0;

struct Slot {
  bool used = false;
  bool red = false;        // rebuilt from a redundant copy
  bool candidate = false;  // first frame of a suspected sender restart (not playable yet)
  int64_t ts = 0;          // extended, 48 kHz units
  int64_t dur = 0;         // 48 kHz units
  uint16_t len = 0;
  uint8_t data[kMaxOpusPacket];
};

struct Obs {
  int64_t at_us;
  int64_t rd_us;
};

// Whether `packet` carries LBRR (FEC) data for the frame before it. This is
// VoiceDecoder::has_fec with the SILK frame count per packet corrected: has_fec takes
// `config & 3` as the duration index for every config < 16, which is right for SILK-only
// configs only, and even there counts 40 and 60 ms as 1 and 2 SILK frames instead of 2 and
// 3. Hybrid configs 12-15 (SWB/FB 10 or 20 ms; profile 1 is FB 20 ms = config 15) always hold
// one SILK frame, so has_fec read the wrong flag for them. Drop this for has_fec once fixed.
bool carries_fec(const uint8_t *packet, size_t len) {
  if (len < 2 || len > kMaxOpusPacket) return false;
  const int config = packet[0] >> 3;
  if (config >= 16) return false;  // CELT only
  int silk_frames = 1;
  if (config < 12) silk_frames = (config & 3) == 2 ? 2 : (config & 3) == 3 ? 3 : 1;
  // The first frame's data: after the TOC, a frame count (code 3) and frame lengths; only
  // the first frame's first byte matters, and VoiceDecoder::packet_samples has validated
  // the packet's structure before this runs, so a lenient walk is enough.
  size_t pos = 1;
  const int code = packet[0] & 3;
  if (code == 2) {  // two frames, the first's length coded
    pos += packet[pos] < 252 ? 1 : 2;
  } else if (code == 3) {
    const bool vbr = packet[pos] & 0x80, padded = packet[pos] & 0x40;
    const int count = packet[pos] & 0x3f;
    ++pos;
    if (padded) {
      while (pos < len && packet[pos] == 255) ++pos;
      ++pos;
    }
    if (vbr) {
      for (int i = 0; i + 1 < count && pos < len; ++i) pos += packet[pos] < 252 ? 1 : 2;
    }
  }
  if (pos >= len) return false;
  const uint8_t first = packet[pos];
  if ((first >> (7 - silk_frames)) & 1) return true;
  return (packet[0] & 0x4) && ((first >> (6 - 2 * silk_frames)) & 1);
}

int64_t ts_to_us(int64_t ts48) { return ts48 * 125 / 6; }
int64_t us_to_ts(int64_t us) { return us * 6 / 125; }
int64_t floor_tol(int64_t ts48) { return ts48 / kTol48 * kTol48; }

}  // namespace

struct VoiceReceiver::Impl {
  JitterConfig cfg;
  std::unique_ptr<VoiceDecoder> dec;
  int ch = 1;
  int ts_per_sample = 1;  // 48 kHz units per output sample
  JitterStats st;

  Slot slots[kSlots];

  // Delay window: arrival order ring.
  Obs win[kWindowCap];
  int win_head = 0, win_count = 0;
  int64_t scratch[kWindowCap];
  bool have_base = false;
  int64_t base_us = 0, q_us = 0;
  int64_t win_since_us = 0, win_last_us = 0;  // first and latest observation since a clear

  uint32_t pulls[kPullRing] = {};
  int pull_idx = 0;

  // Playout.
  bool have_cursor = false;  // a frame has been seen (the cursor is a valid reference)
  bool playing = false;
  int64_t cursor = 0;        // extended ts of the next audio to produce
  int64_t highest = 0;       // highest extended ts accepted
  int64_t last_dur = kDefaultDur48;
  bool dtx = false;
  bool decoded_any = false;  // the decoder has produced real audio (fresh decoders need no fade-in)
  bool faded = false;        // concealment ran past max_conceal_ms: concealment is silence
  bool out_silent = true;    // the last output was silence: the next audio fades in
  int64_t conceal_run = 0;   // 48 kHz units of consecutive concealment
  bool last_low = true;      // the last decoded frame was of low energy
  double level = 0;          // recent speech level (rms), peak-hold with slow decay
  int64_t last_op_us = INT64_MIN / 2;
  int64_t last_underrun_us = INT64_MIN / 2;
  int cand = -1;             // slot of the restart candidate
  int64_t cand_rd_us = 0, cand_at_us = 0;  // and its relative delay and arrival
  uint32_t protect_bits = 0;            // the last 32 frames received: FEC or a RED copy
  int64_t protect_dur = kDefaultDur48;  // the duration of the latest protected one

  // Decoded PCM waiting to be pulled (one unit: a frame, a concealment chunk, a splice).
  int16_t pcm[kMaxFrameSamples * 2];
  int16_t tmp[kMaxFrameSamples * 2];
  size_t pcm_pos = 0, pcm_len = 0;  // per channel

  int rate() const { return cfg.sample_rate; }
  int64_t samples_to_ts(int64_t n) const { return n * ts_per_sample; }
  int64_t ts_to_samples(int64_t ts) const { return ts / ts_per_sample; }
  int64_t maxd_us() const { return int64_t(cfg.max_delay_ms) * 1000; }

  int64_t extend(uint32_t ts) const {
    return cursor + int32_t(ts - uint32_t(uint64_t(cursor)));
  }

  int64_t pull_period_us() const {
    uint32_t m = 0;
    for (uint32_t p : pulls) m = std::max(m, p);
    return int64_t(m) * 1000000 / rate();
  }

  // While the peer protects its frames (Opus FEC, or redundant copies of earlier frames),
  // one frame more: a lost frame is rebuilt from the next datagram, which must be here by
  // then; without it every isolated loss would be an underrun, concealed first and rebuilt
  // late, which is worse than no protection at all. (Bursts longer than one frame still
  // underrun; the redundancy then plays them late instead of losing them.) The FEC flag is
  // read from range-coded bits, which a carry from later symbols can flip now and then, so
  // it takes a few of the last 32 frames to believe it.
  bool protected_recent() const { return __builtin_popcount(protect_bits) >= 4; }

  int64_t target_us() const {
    int64_t t = (have_base ? q_us : 0) + pull_period_us();
    if (protected_recent()) t += ts_to_us(protect_dur);
    return std::clamp<int64_t>(t, int64_t(cfg.min_delay_ms) * 1000, maxd_us());
  }

  // --- delay window ---

  void window_add(int64_t now_us, int64_t rd_us) {
    const int64_t horizon = now_us - int64_t(cfg.window_ms) * 1000;
    while (win_count > 0 && win[win_head].at_us < horizon) {
      win_head = (win_head + 1) % kWindowCap;
      --win_count;
    }
    if (win_count == kWindowCap) {
      win_head = (win_head + 1) % kWindowCap;
      --win_count;
    }
    win[(win_head + win_count) % kWindowCap] = Obs{now_us, rd_us};
    ++win_count;
    int64_t base = INT64_MAX;
    for (int i = 0; i < win_count; ++i) {
      scratch[i] = win[(win_head + i) % kWindowCap].rd_us;
      base = std::min(base, scratch[i]);
    }
    int k = int(std::ceil(cfg.quantile * win_count)) - 1;
    k = std::clamp(k, 0, win_count - 1);
    std::nth_element(scratch, scratch + k, scratch + win_count);
    base_us = base;
    q_us = scratch[k] - base;
    if (!have_base) win_since_us = now_us;
    win_last_us = now_us;
    have_base = true;
  }

  void window_clear() {
    win_head = win_count = 0;
    have_base = false;
    base_us = q_us = 0;
  }

  // --- slots ---

  int find_at(int64_t ts) const {
    for (int i = 0; i < kSlots; ++i) {
      if (slots[i].used && !slots[i].candidate && std::llabs(slots[i].ts - ts) < kTol48) {
        return i;
      }
    }
    return -1;
  }

  int find_exact(int64_t ts) const {
    for (int i = 0; i < kSlots; ++i) {
      if (slots[i].used && slots[i].ts == ts) return i;
    }
    return -1;
  }

  // The earliest playable frame at or after `from`.
  int find_next(int64_t from) const {
    int best = -1;
    for (int i = 0; i < kSlots; ++i) {
      if (slots[i].used && !slots[i].candidate && slots[i].ts >= from &&
          (best < 0 || slots[i].ts < slots[best].ts)) {
        best = i;
      }
    }
    return best;
  }

  // Frames the cursor has passed (an overlapping frame of another length, a frame that lost
  // the race to a concealment) can never play.
  void purge_stale() {
    for (Slot &s : slots) {
      if (s.used && !s.candidate && s.ts <= cursor - kTol48) {
        s.used = false;
        ++st.late;
      }
    }
  }

  int free_slot() {
    for (int i = 0; i < kSlots; ++i) {
      if (!slots[i].used) return i;
    }
    return -1;
  }

  // Stores one Opus packet; false if it was not (late, duplicate, full).
  bool store(int64_t ts, int64_t dur, const uint8_t *data, size_t len, bool red) {
    if (playing && ts <= cursor - kTol48) {
      if (!red) ++st.late;
      return false;
    }
    if (!playing && ts < cursor) {
      // Reordered ahead of the first frame: start earlier, unless it would wait for a
      // frame that is already too old to be worth it.
      if (red || cursor - ts > us_to_ts(maxd_us())) {
        if (!red) ++st.late;
        return false;
      }
    }
    for (const Slot &s : slots) {
      if (s.used && !s.candidate && std::llabs(s.ts - ts) < kTol48) {
        if (!red) ++st.duplicates;
        return false;
      }
    }
    int i = free_slot();
    if (i < 0) {
      purge_stale();
      i = free_slot();
    }
    if (i < 0) {
      if (!red) ++st.overflow;
      return false;
    }
    Slot &s = slots[i];
    s.used = true;
    s.red = red;
    s.candidate = false;
    s.ts = ts;
    s.dur = dur;
    s.len = uint16_t(len);
    std::memcpy(s.data, data, len);
    if (!playing && ts < cursor) cursor = ts;
    return true;
  }

  // A restart: everything of the old stream goes; the new one starts like the first.
  void reset() {
    ++st.resets;
    for (Slot &s : slots) {
      if (!s.candidate) s.used = false;
    }
    window_clear();
    playing = false;
    dtx = false;
    conceal_run = 0;
  }

  // --- output helpers ---

  void ramp(int16_t *p, size_t n, double from, double to) {
    for (size_t i = 0; i < n; ++i) {
      const double g = from + (to - from) * double(i) / double(n);
      for (int c = 0; c < ch; ++c) p[i * ch + c] = int16_t(std::lrint(p[i * ch + c] * g));
    }
  }

  double rms(const int16_t *p, size_t n) const {
    if (n == 0) return 0;
    double e = 0;
    for (size_t i = 0; i < n * size_t(ch); ++i) e += double(p[i]) * p[i];
    return std::sqrt(e / double(n * size_t(ch)));
  }

  bool is_low(double r) const { return r < std::max(kLowFloor, level * kLowRatio); }

  void note_level(double r, int64_t dur48) {
    level -= level * double(dur48) / (48.0 * 4000.0);
    level = std::max(level, r);
    last_low = is_low(r);
  }

  // Real audio was produced into pcm[0, n): ends concealment, fades in after silence.
  void audio_out(size_t n) {
    if (out_silent && decoded_any) {
      ramp(pcm, std::min<size_t>(n, size_t(rate() / 1000 * kFadeMs)), 0.0, 1.0);
    }
    out_silent = false;
    faded = false;
    decoded_any = true;
    conceal_run = 0;
  }

  // PLC or comfort noise for `dur48` into pcm. Concealment (not comfort noise) counts toward
  // max_conceal_ms and fades out past it.
  void conceal_unit(int64_t dur48, bool comfort, bool gap = true) {
    const int n = int(ts_to_samples(dur48));
    pcm_pos = 0;
    pcm_len = size_t(n);
    if (comfort) {
      if (dec->conceal(pcm, n) < 0) std::memset(pcm, 0, sizeof(int16_t) * size_t(n) * ch);
      faded = false;
      out_silent = false;
      conceal_run = 0;
      return;
    }
    const int64_t limit = int64_t(cfg.max_conceal_ms) * 48;
    if (faded || !decoded_any) {
      std::memset(pcm, 0, sizeof(int16_t) * size_t(n) * ch);
      out_silent = true;
    } else {
      if (dec->conceal(pcm, n) < 0) std::memset(pcm, 0, sizeof(int16_t) * size_t(n) * ch);
      if (conceal_run + dur48 > limit) {
        ramp(pcm, size_t(n), 1.0, 0.0);
        faded = true;
        out_silent = true;
      } else {
        out_silent = false;
      }
    }
    if (!gap) return;
    conceal_run += dur48;
    st.longest_gap_ms = std::max<uint64_t>(st.longest_gap_ms, uint64_t(conceal_run / 48));
  }

  bool can_op(int64_t t) const { return t - last_op_us >= kOpGapUs; }

  // Fills pcm with the next unit of playout; may produce nothing (a skip), then the caller
  // asks again. `t` is when the unit's first sample plays.
  void produce(int64_t t) {
    pcm_pos = pcm_len = 0;
    purge_stale();
    const int64_t delay = t - ts_to_us(cursor) - base_us;
    st.current_delay_ms = uint32_t(std::max<int64_t>(0, delay) / 1000);
    const int64_t excess = delay - target_us();
    const int64_t excess48 = us_to_ts(excess);

    const int at = find_at(cursor);
    if (at >= 0) {
      Slot &f = slots[at];
      const bool marker = is_dtx_packet(f.len);
      // Growing is easier than shrinking (half a frame short against three quarters over):
      // an underrun costs more than 10 ms of latency, and the two thresholds together span
      // more than a frame, so one step never triggers the other.
      if (!marker && !dtx && excess48 <= -(last_dur / 2) && last_low && !out_silent &&
          can_op(t)) {
        // Target rose: one frame of concealment where it is least audible.
        conceal_unit(last_dur, false, false);  // an inserted frame is not a gap
        st.grow_ms += uint64_t(last_dur / 48);
        last_op_us = t;
        return;
      }
      cursor = f.ts;
      const int n = dec->decode(f.data, f.len, pcm, int(kMaxFrameSamples));
      f.used = false;
      if (n <= 0 || samples_to_ts(n) != f.dur) {
        ++st.malformed;
        ++st.concealed;
        conceal_unit(f.dur, false);
        cursor += f.dur;
        last_dur = f.dur;
        return;
      }
      pcm_pos = 0;
      pcm_len = size_t(n);
      cursor += f.dur;
      last_dur = f.dur;
      if (marker) {
        dtx = true;
        ++st.comfort_noise;
        out_silent = false;
        faded = false;
        conceal_run = 0;
        last_low = true;
        return;
      }
      dtx = false;
      if (f.red) {
        ++st.red_recovered;
      } else {
        ++st.frames_decoded;
      }
      const double r = rms(pcm, pcm_len);
      // A frame is dropped only inside a pause: it and the frame before it low. One low frame
      // between two loud ones is a dip inside a word (a stop consonant), and cutting it cuts
      // the word (natlab VoiceDelayStepTest saw 20 ms go from the middle of speech).
      const bool in_pause = last_low;
      note_level(r, f.dur);
      audio_out(pcm_len);
      if (excess48 > f.dur * 3 / 4 && in_pause && is_low(r) && can_op(t) &&
          t - last_underrun_us >= kShrinkHoldUs) {
        shrink_splice(t, f.dur);
      }
      return;
    }

    const int next = find_next(cursor + kTol48);
    if (dtx) {
      // The sender is silent until its next frame: comfort noise, and the cursor moves on.
      // At most 20 ms at a time: a longer chunk could run past a frame that is about to
      // arrive (after a 60 ms frame, speech may resume 20 ms into the gap).
      int64_t chunk = std::min<int64_t>(last_dur, 960);
      if (next >= 0) chunk = std::min(chunk, floor_tol(slots[next].ts - cursor));
      if (excess48 > chunk * 3 / 4 && can_op(t)) {
        cursor += chunk;  // noise skipped leaves no splice to hear
        st.shrink_ms += uint64_t(chunk / 48);
        last_op_us = t;
        return;
      }
      conceal_unit(chunk, true);
      ++st.comfort_noise;
      if (excess48 <= -(chunk / 2) && next < 0 && can_op(t)) {
        st.grow_ms += uint64_t(chunk / 48);
        last_op_us = t;
      } else {
        cursor += chunk;
      }
      return;
    }

    if (next >= 0) {
      const Slot &nf = slots[next];
      int64_t gap = floor_tol(nf.ts - cursor);
      if (conceal_run > 0 && excess48 > 0) {
        // Coming out of an underrun with frames missing: what the underrun already concealed
        // stands in for them, so skip as much of the hole as the excess delay allows.
        const int64_t skip = std::min(gap, floor_tol(excess48));
        if (skip > 0) {
          cursor += skip;
          st.skipped_ms += uint64_t(skip / 48);
          return;
        }
      }
      if (gap > nf.dur) {
        const int64_t chunk = std::min(gap - nf.dur, last_dur);
        if (!faded) ++st.concealed;
        conceal_unit(chunk, false);
        cursor += chunk;
        return;
      }
      if (!faded && carries_fec(nf.data, nf.len) &&
          dec->decode_fec(nf.data, nf.len, pcm, int(ts_to_samples(gap))) > 0) {
        ++st.fec_recovered;
        pcm_pos = 0;
        pcm_len = size_t(ts_to_samples(gap));
        note_level(rms(pcm, pcm_len), gap);
        audio_out(pcm_len);
      } else {
        if (!faded) ++st.concealed;
        conceal_unit(gap, false);
      }
      cursor += gap;
      return;
    }

    // Nothing buffered: the frame is late. Conceal without moving the cursor.
    if (!faded) {
      ++st.concealed;
      st.grow_ms += uint64_t(last_dur / 48);
    }
    conceal_unit(last_dur, false);
    last_underrun_us = t;
  }

  // F (in pcm, just decoded, low energy) is dropped: the following frame G is decoded (so the
  // decoder state stays that of the full stream) and crossfaded in from F's start.
  void shrink_splice(int64_t t, int64_t f_dur) {
    const int g = find_at(cursor);
    if (g < 0 || is_dtx_packet(slots[g].len)) return;
    Slot &gs = slots[g];
    const int n = dec->decode(gs.data, gs.len, tmp, int(kMaxFrameSamples));
    gs.used = false;
    if (n <= 0 || samples_to_ts(n) != gs.dur) {
      // G is lost to the decoder either way; play F and let G's time be concealed.
      ++st.malformed;
      cursor = gs.ts;
      return;
    }
    const size_t fn = pcm_len;
    const size_t x = std::min({fn, size_t(n), size_t(rate() / 1000 * kFadeMs)});
    for (size_t i = 0; i < x; ++i) {
      const double w = double(i) / double(x);
      for (int c = 0; c < ch; ++c) {
        const size_t k = i * size_t(ch) + size_t(c);
        pcm[k] = int16_t(std::lrint(pcm[k] * (1.0 - w) + tmp[k] * w));
      }
    }
    std::memcpy(pcm + x * ch, tmp + x * ch, sizeof(int16_t) * (size_t(n) - x) * ch);
    pcm_len = size_t(n);
    cursor = gs.ts + gs.dur;
    last_dur = gs.dur;
    if (gs.red) {
      ++st.red_recovered;
    } else {
      ++st.frames_decoded;
    }
    note_level(rms(pcm, pcm_len), gs.dur);
    st.shrink_ms += uint64_t(f_dur / 48);
    last_op_us = t;
  }
};

int VoiceReceiver::create(const JitterConfig &config, std::unique_ptr<VoiceReceiver> *out) {
  if (!is_opus_rate(config.sample_rate) || config.channels < 1 || config.channels > 2) {
    return fail(kErrAudioFormat, "voice receiver: %d Hz x %d channels is not an Opus format",
                config.sample_rate, config.channels);
  }
  if (config.min_delay_ms > config.max_delay_ms || !(config.quantile > 0.0) ||
      config.quantile > 1.0 || config.window_ms == 0) {
    return fail(kErrInvalidArgument, "voice receiver: bad jitter config");
  }
  std::unique_ptr<VoiceReceiver> r(new (std::nothrow) VoiceReceiver);
  if (!r) return fail(kErrNoMemory, "voice receiver");
  r->impl_.reset(new (std::nothrow) Impl);
  if (!r->impl_) return fail(kErrNoMemory, "voice receiver");
  Impl &m = *r->impl_;
  m.cfg = config;
  m.ch = config.channels;
  m.ts_per_sample = 48000 / config.sample_rate;
  m.last_dur = kDefaultDur48;
  const int e = VoiceDecoder::create(config.sample_rate, config.channels, &m.dec);
  if (e != kOk) return e;
  *out = std::move(r);
  return kOk;
}

VoiceReceiver::VoiceReceiver() = default;
VoiceReceiver::~VoiceReceiver() = default;

int VoiceReceiver::insert(uint32_t ts48, const uint8_t *payload, size_t len, int64_t now_us) {
  Impl &m = *impl_;
  VoicePayload p;
  int prim_n = kErrCodec;
  if (payload == nullptr || parse_voice_payload(payload, len, &p) != kOk ||
      (prim_n = VoiceDecoder::packet_samples(p.primary.data, p.primary.len, m.rate())) <= 0 ||
      prim_n > int(kMaxFrameSamples) || m.samples_to_ts(prim_n) % kTol48 != 0) {
    ++m.st.malformed;
    return kErrMediaMalformed;
  }
  ++m.st.frames_received;
  const int64_t dur = m.samples_to_ts(prim_n);

  if (!m.have_cursor) {
    m.have_cursor = true;
    m.cursor = int64_t(ts48);
    m.highest = m.cursor;
  }
  const int64_t ts = m.extend(ts48);
  const int64_t rd = now_us - ts_to_us(ts);
  const int64_t maxd48 = us_to_ts(m.maxd_us());

  // A sender restart: the timestamps jumped away from what the arrival times predict, and not
  // as a continuation of the sequence (a burst of frames held up by the network continues
  // it). One such frame may be a straggler of the old stream, so it takes a second one
  // consistent with the first to reset.
  const bool off_sequence = ts < m.highest - maxd48 || ts > m.highest + maxd48;
  const bool restart =
      m.have_base ? (std::llabs(rd - m.base_us) > m.maxd_us() && off_sequence)
                  : (m.playing && ts < m.cursor - maxd48);
  bool reset_now = false;
  if (restart) {
    if (m.cand >= 0 && m.slots[m.cand].used && m.slots[m.cand].candidate &&
        std::llabs(m.cand_rd_us - rd) <= m.maxd_us() &&
        std::llabs(m.slots[m.cand].ts - ts) <= maxd48) {
      Slot &c = m.slots[m.cand];
      m.reset();
      c.candidate = false;
      m.cand = -1;
      m.cursor = std::min(c.ts, ts);
      m.highest = std::max(c.ts, ts);
      m.window_add(m.cand_at_us, m.cand_rd_us);
      reset_now = true;
    } else {
      if (m.cand >= 0) m.slots[m.cand].used = false;
      m.cand = -1;
      const int i = m.free_slot();
      if (i >= 0 && p.primary.len <= kMaxOpusPacket) {
        Slot &s = m.slots[i];
        s.used = true;
        s.candidate = true;
        s.red = false;
        s.ts = ts;
        s.dur = dur;
        s.len = uint16_t(p.primary.len);
        std::memcpy(s.data, p.primary.data, p.primary.len);
        m.cand = i;
        m.cand_rd_us = rd;
        m.cand_at_us = now_us;
      }
      return kOk;
    }
  } else if (m.cand >= 0) {
    m.slots[m.cand].used = false;
    m.cand = -1;
  }

  const bool prot = p.red_count > 0 || carries_fec(p.primary.data, p.primary.len);
  m.protect_bits = m.protect_bits << 1 | (prot ? 1u : 0u);
  if (prot) m.protect_dur = dur;
  // A copy's arrival says nothing new about the path (and the first one's was counted).
  const int same = m.find_exact(ts);
  if (same < 0 || reset_now) m.window_add(now_us, rd);
  if (ts > m.highest) m.highest = ts;
  m.store(ts, dur, p.primary.data, p.primary.len, false);

  for (size_t i = 0; i < p.red_count; ++i) {
    const VoiceBlock &b = p.red[i];
    const int64_t rts = ts - b.ts_back;
    if (!m.playing || rts <= m.cursor - kTol48 || m.find_at(rts) >= 0) continue;
    const int n = VoiceDecoder::packet_samples(b.data, b.len, m.rate());
    if (n <= 0 || n > int(kMaxFrameSamples) || m.samples_to_ts(n) % kTol48 != 0) continue;
    m.store(rts, m.samples_to_ts(n), b.data, b.len, true);
  }
  return kOk;
}

void VoiceReceiver::pull(int16_t *out, size_t samples, int64_t now_us) {
  Impl &m = *impl_;
  const int ch = m.ch;
  m.pulls[m.pull_idx] = uint32_t(std::min<size_t>(samples, UINT32_MAX));
  m.pull_idx = (m.pull_idx + 1) % kPullRing;
  size_t w = 0;
  while (w < samples) {
    if (m.pcm_pos < m.pcm_len) {
      const size_t k = std::min(samples - w, m.pcm_len - m.pcm_pos);
      std::memcpy(out + w * ch, m.pcm + m.pcm_pos * ch, sizeof(int16_t) * k * ch);
      m.pcm_pos += k;
      w += k;
      continue;
    }
    const int64_t t = now_us + int64_t(w) * 1000000 / m.rate();
    if (!m.playing) {
      m.st.current_delay_ms = 0;
      if (!m.out_silent) {
        // The stream stopped under us (a restart): fade what the decoder would have said.
        const int64_t d = int64_t(m.rate()) / 1000 * kFadeOutMs;
        if (m.dec->conceal(m.pcm, int(d)) < 0) std::memset(m.pcm, 0, sizeof(int16_t) * d * ch);
        m.ramp(m.pcm, size_t(d), 1.0, 0.0);
        m.pcm_pos = 0;
        m.pcm_len = size_t(d);
        m.out_silent = true;
        continue;
      }
      const int first = m.find_next(INT64_MIN);
      int64_t wait = int64_t(samples - w);
      if (first >= 0 && m.have_base) {
        m.cursor = m.slots[first].ts;
        const int64_t delay = t - ts_to_us(m.cursor) - m.base_us;
        const int64_t need = m.target_us() - delay;
        if (need <= 0) {
          m.playing = true;
          m.dtx = false;
          m.conceal_run = 0;
          continue;
        }
        wait = std::min(wait, (need * m.rate() + 999999) / 1000000);
      }
      std::memset(out + w * ch, 0, sizeof(int16_t) * size_t(wait) * ch);
      w += size_t(wait);
      continue;
    }
    m.produce(t);
  }
  m.st.samples_out += samples;
  m.st.target_delay_ms = uint32_t(m.target_us() / 1000);
  m.st.jitter_ms = uint32_t(m.q_us / 1000);
}

JitterStats VoiceReceiver::stats() const {
  JitterStats s = impl_->st;
  s.target_delay_ms = uint32_t(impl_->target_us() / 1000);
  s.jitter_ms = uint32_t(impl_->q_us / 1000);
  s.jitter_window_ms =
      impl_->have_base ? uint32_t((impl_->win_last_us - impl_->win_since_us) / 1000) : 0;
  return s;
}

}  // namespace parley::media

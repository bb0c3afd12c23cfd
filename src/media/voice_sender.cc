#include "media/voice_sender.h"

#include <cstring>
#include <new>

#include "base/error.h"

namespace parley::media {

namespace {

// What a muted frame encodes: the longest frame (60 ms at 48 kHz), stereo. Static so that
// muting needs neither an allocation nor a per-sender copy.
constexpr size_t kSilenceSamples = 2 * size_t(samples_for_ms(48000, 60));
const int16_t kSilence[kSilenceSamples] = {};

// RTCP-style 1/256 units to whole percent, rounded up so that any reported loss, however
// small, gives Opus a non-zero hint (0 would mean no FEC bits at all).
int loss_percent_of(uint8_t fraction) { return (int(fraction) * 100 + 255) / 256; }

}  // namespace

struct VoiceSender::Impl {
  std::unique_ptr<VoiceEncoder> enc;
  const VoiceProfile *profile = nullptr;
  VoiceSenderStats stats;

  // Peer reports as a monotonic max-queue: values strictly decrease from head to tail, so the
  // head is the maximum of the window. Because the values are u8 the queue never holds more
  // than 256 entries, which bounds it without dropping anything.
  struct Report {
    int64_t at_ms;
    uint8_t fraction;
  };
  static constexpr size_t kReportSlots = 256;
  Report reports[kReportSlots];
  size_t report_head = 0, report_count = 0;

  // The last kMaxRedundancy frames actually sent (markers and skipped frames excluded), in a
  // ring: hist_next is where the next one goes, so the newest is just before it.
  struct Sent {
    uint32_t ts48;
    uint16_t len;
    uint8_t data[kMaxOpusPacket];
  };
  Sent hist[kMaxRedundancy];
  size_t hist_next = 0, hist_count = 0;

  int dtx_run = 0;  // consecutive DTX packets from the encoder
  uint8_t primary[kMaxOpusPacket];

  Report &report_at(size_t i) { return reports[(report_head + i) % kReportSlots]; }

  void expire_reports(int64_t now_ms) {
    // A clock that steps back leaves reports "in the future"; they then count as fresh.
    while (report_count > 0 && now_ms - reports[report_head].at_ms >= int64_t(kLossHintHoldMs)) {
      report_head = (report_head + 1) % kReportSlots;
      --report_count;
    }
  }

  int apply_loss_hint(int64_t now_ms) {
    expire_reports(now_ms);
    const int percent = report_count > 0 ? loss_percent_of(reports[report_head].fraction) : 0;
    if (percent == enc->loss_percent()) return kOk;
    return enc->set_loss_percent(percent);
  }

  void add_report(uint8_t fraction, int64_t now_ms) {
    // An older report no larger than this one can never be the maximum again: it leaves the
    // window before this one does.
    while (report_count > 0 && report_at(report_count - 1).fraction <= fraction) --report_count;
    report_at(report_count) = Report{now_ms, fraction};
    ++report_count;
  }

  // Fills `red` (oldest first) with up to `depth` of the newest history entries that a
  // u16 ts_back can reach from `ts48`. Walking newest to oldest and requiring each to be
  // strictly older than the last one taken keeps ts_back strictly decreasing in the output
  // even if the caller's timestamps ever went backwards.
  size_t pick_redundancy(uint32_t ts48, size_t depth, VoiceBlock *red) const {
    if (depth > hist_count) depth = hist_count;
    VoiceBlock picked[kMaxRedundancy];
    size_t n = 0;
    uint32_t newer_back = 0;
    for (size_t i = 0; i < depth; ++i) {
      const Sent &s = hist[(hist_next + kMaxRedundancy - 1 - i) % kMaxRedundancy];
      // Unsigned subtraction: correct across the 2^32 wrap of the media timestamp.
      const uint32_t back = ts48 - s.ts48;
      if (back == 0 || back > 0xffff || back <= newer_back) continue;
      picked[n].ts_back = uint16_t(back);
      picked[n].data = s.data;
      picked[n].len = s.len;
      newer_back = back;
      ++n;
    }
    for (size_t i = 0; i < n; ++i) red[i] = picked[n - 1 - i];
    return n;
  }

  void remember(uint32_t ts48, const uint8_t *data, size_t len) {
    Sent &s = hist[hist_next];
    s.ts48 = ts48;
    s.len = uint16_t(len);
    std::memcpy(s.data, data, len);
    hist_next = (hist_next + 1) % kMaxRedundancy;
    if (hist_count < kMaxRedundancy) ++hist_count;
  }
};

VoiceSender::VoiceSender() = default;
VoiceSender::~VoiceSender() = default;

int VoiceSender::create(int sample_rate, int channels, uint8_t profile,
                        std::unique_ptr<VoiceSender> *out) {
  const VoiceProfile *p = voice_profile(profile);
  if (p == nullptr) return fail(kErrInvalidArgument, "voice sender: unknown profile %u",
                                unsigned(profile));
  std::unique_ptr<VoiceSender> s(new (std::nothrow) VoiceSender);
  if (!s) return fail(kErrNoMemory, "voice sender");
  s->impl_.reset(new (std::nothrow) Impl);
  if (!s->impl_) return fail(kErrNoMemory, "voice sender");
  int r = VoiceEncoder::create(sample_rate, channels, &s->impl_->enc);
  if (r != kOk) return r;
  r = s->set_profile(profile);
  if (r != kOk) return r;
  *out = std::move(s);
  return kOk;
}

int VoiceSender::set_profile(uint8_t id) {
  const VoiceProfile *p = voice_profile(id);
  if (p == nullptr) return fail(kErrInvalidArgument, "voice sender: unknown profile %u",
                                unsigned(id));
  const int r = impl_->enc->set_profile(*p);
  if (r != kOk) return r;
  impl_->profile = p;
  impl_->stats.profile = id;
  return kOk;
}

uint8_t VoiceSender::profile() const { return impl_->profile->id; }

int VoiceSender::set_dtx(bool on) {
  const int r = impl_->enc->set_dtx(on);
  if (r == kOk && !on) impl_->dtx_run = 0;
  return r;
}

bool VoiceSender::dtx() const { return impl_->enc->dtx(); }

int VoiceSender::frame_samples() const { return impl_->enc->frame_samples(); }

void VoiceSender::on_peer_feedback(uint8_t fraction, int64_t now_ms) {
  impl_->expire_reports(now_ms);
  impl_->add_report(fraction, now_ms);
  // A refusal here is retried by the next encode(), which applies the hint again.
  (void)impl_->apply_loss_hint(now_ms);
}

int VoiceSender::encode(const int16_t *pcm, uint32_t ts48, uint8_t feedback, int64_t now_ms,
                        uint8_t *out, size_t cap, size_t *len) {
  Impl &m = *impl_;
  *len = 0;
  if (cap < kMaxVoicePayload) {
    return fail(kErrBufferTooSmall, "voice sender: %zu byte buffer, need %zu", cap,
                kMaxVoicePayload);
  }
  int r = m.apply_loss_hint(now_ms);
  if (r != kOk) return r;
  const int n = m.enc->encode(pcm != nullptr ? pcm : kSilence, m.primary, sizeof m.primary);
  if (n < 0) return n;
  ++m.stats.frames;

  size_t written = 0, opus_bytes = 0;
  if (is_dtx_packet(size_t(n))) {
    if (m.dtx_run >= kDtxMarkers) {
      ++m.stats.dtx_skipped;
      return kOk;
    }
    ++m.dtx_run;
    // The TOC byte alone: a valid Opus packet (an empty frame) that still says the mode and
    // duration, and costs one byte. Never repeated as redundancy: a lost marker is covered by
    // the next one, and a receiver that misses all of them merely conceals the silence.
    written = write_voice_payload(feedback, nullptr, 0, m.primary, 1, out, cap);
    opus_bytes = 1;
  } else {
    m.dtx_run = 0;
    VoiceBlock red[kMaxRedundancy];
    const size_t red_count = m.pick_redundancy(ts48, m.profile->redundancy, red);
    written = write_voice_payload(feedback, red, red_count, m.primary, size_t(n), out, cap);
    if (written > 0) m.remember(ts48, m.primary, size_t(n));
    opus_bytes = size_t(n);
    for (size_t i = 0; i < red_count; ++i) opus_bytes += red[i].len;
  }
  if (written == 0) return fail(kErrInternal, "voice sender: payload does not fit");
  *len = written;
  ++m.stats.sent;
  m.stats.bytes += opus_bytes;
  return kOk;
}

VoiceSenderStats VoiceSender::stats() const {
  VoiceSenderStats s = impl_->stats;
  s.loss_hint = impl_->enc->loss_percent();
  return s;
}

}  // namespace parley::media

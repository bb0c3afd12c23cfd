#include "media/opus_codec.h"

#include <opus/opus.h>

#include "base/error.h"

namespace parley::media {

bool is_opus_rate(int r) {
  return r == 8000 || r == 12000 || r == 16000 || r == 24000 || r == 48000;
}

namespace {
int opus_bandwidth(Bandwidth b) {
  switch (b) {
    case Bandwidth::kNarrow: return OPUS_BANDWIDTH_NARROWBAND;
    case Bandwidth::kMedium: return OPUS_BANDWIDTH_MEDIUMBAND;
    case Bandwidth::kWide: return OPUS_BANDWIDTH_WIDEBAND;
    case Bandwidth::kSuperWide: return OPUS_BANDWIDTH_SUPERWIDEBAND;
    case Bandwidth::kFull: break;
  }
  return OPUS_BANDWIDTH_FULLBAND;
}
bool valid_frame_ms(int ms) { return ms == 10 || ms == 20 || ms == 40 || ms == 60; }
}  // namespace

size_t opus_packet_bytes(const VoiceProfile &p) {
  // libopus' CBR budget: (bitrate * duration + 4) / 8 bytes (bitrate_to_bits, then the
  // rounding in opus_encode_native); the same here, so its packets need no padding.
  const uint64_t bits = uint64_t(p.bitrate_bps) * p.frame_ms / 1000;
  const uint64_t bytes = (bits + 4) / 8;
  // Above 2 bytes so that no packet reads as DTX silence (is_dtx_packet).
  if (bytes < 3) return 3;
  return bytes > kMaxOpusPacket ? kMaxOpusPacket : size_t(bytes);
}

int VoiceEncoder::create(int sample_rate, int channels, std::unique_ptr<VoiceEncoder> *out) {
  if (!is_opus_rate(sample_rate) || channels < 1 || channels > 2) {
    return fail(kErrAudioFormat, "opus encoder: %d Hz x %d channels is not an Opus format",
                sample_rate, channels);
  }
  std::unique_ptr<VoiceEncoder> e(new (std::nothrow) VoiceEncoder);
  if (!e) return fail(kErrNoMemory, "opus encoder");
  int err = 0;
  e->enc_ = opus_encoder_create(sample_rate, channels, OPUS_APPLICATION_VOIP, &err);
  if (err != OPUS_OK || !e->enc_) {
    return fail(kErrCodec, "opus_encoder_create: %s", opus_strerror(err));
  }
  e->rate_ = sample_rate;
  e->channels_ = channels;
  opus_encoder_ctl(e->enc_, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
  if (opus_encoder_ctl(e->enc_, OPUS_SET_DTX(0)) != OPUS_OK ||
      opus_encoder_ctl(e->enc_, OPUS_SET_VBR(0)) != OPUS_OK) {
    return fail(kErrCodec, "opus encoder: constant bitrate refused");
  }
  const VoiceProfile *p = voice_profile(kDefaultProfile);
  int r = e->set_profile(*p);
  if (r != kOk) return r;
  *out = std::move(e);
  return kOk;
}

VoiceEncoder::~VoiceEncoder() {
  if (enc_) opus_encoder_destroy(enc_);
}

int VoiceEncoder::set_profile(const VoiceProfile &p) {
  if (!valid_frame_ms(p.frame_ms)) {
    return fail(kErrAudioFormat, "opus encoder: %u ms frames", unsigned(p.frame_ms));
  }
  if (opus_encoder_ctl(enc_, OPUS_SET_BITRATE(int(p.bitrate_bps))) != OPUS_OK ||
      opus_encoder_ctl(enc_, OPUS_SET_MAX_BANDWIDTH(opus_bandwidth(p.max_bandwidth))) !=
          OPUS_OK ||
      opus_encoder_ctl(enc_, OPUS_SET_INBAND_FEC(p.fec ? 1 : 0)) != OPUS_OK) {
    return fail(kErrCodec, "opus encoder: profile %s refused", p.name);
  }
  frame_samples_ = samples_for_ms(rate_, p.frame_ms);
  packet_bytes_ = opus_packet_bytes(p);
  return kOk;
}

int VoiceEncoder::set_dtx(bool on) {
  if (opus_encoder_ctl(enc_, OPUS_SET_DTX(on ? 1 : 0)) != OPUS_OK) {
    return fail(kErrCodec, "opus encoder: DTX %s refused", on ? "on" : "off");
  }
  dtx_ = on;
  return kOk;
}

int VoiceEncoder::set_loss_percent(int percent) {
  if (percent < 0) percent = 0;
  if (percent > 100) percent = 100;
  if (percent == loss_percent_) return kOk;
  if (opus_encoder_ctl(enc_, OPUS_SET_PACKET_LOSS_PERC(percent)) != OPUS_OK) {
    return fail(kErrCodec, "opus encoder: loss hint %d refused", percent);
  }
  loss_percent_ = percent;
  return kOk;
}

int VoiceEncoder::encode(const int16_t *pcm, uint8_t *out, size_t cap) {
  if (cap < packet_bytes_) {
    return fail(kErrBufferTooSmall, "opus encoder: %zu byte buffer, packets are %zu", cap,
                packet_bytes_);
  }
  // The cap is what libopus' CBR produces anyway; it makes "never larger" hold by
  // construction, and the padding below "never smaller".
  const int n = opus_encode(enc_, pcm, frame_samples_, out, opus_int32(packet_bytes_));
  if (n <= 0) return fail(kErrCodec, "opus_encode: %s", opus_strerror(n));
  if (dtx_ && is_dtx_packet(size_t(n))) return n;
  if (size_t(n) < packet_bytes_) {
    const int r = opus_packet_pad(out, n, opus_int32(packet_bytes_));
    if (r != OPUS_OK) return fail(kErrCodec, "opus_packet_pad: %s", opus_strerror(r));
  }
  return int(packet_bytes_);
}

int VoiceDecoder::create(int sample_rate, int channels, std::unique_ptr<VoiceDecoder> *out) {
  if (!is_opus_rate(sample_rate) || channels < 1 || channels > 2) {
    return fail(kErrAudioFormat, "opus decoder: %d Hz x %d channels is not an Opus format",
                sample_rate, channels);
  }
  std::unique_ptr<VoiceDecoder> d(new (std::nothrow) VoiceDecoder);
  if (!d) return fail(kErrNoMemory, "opus decoder");
  int err = 0;
  d->dec_ = opus_decoder_create(sample_rate, channels, &err);
  if (err != OPUS_OK || !d->dec_) {
    return fail(kErrCodec, "opus_decoder_create: %s", opus_strerror(err));
  }
  d->rate_ = sample_rate;
  d->channels_ = channels;
  *out = std::move(d);
  return kOk;
}

VoiceDecoder::~VoiceDecoder() {
  if (dec_) opus_decoder_destroy(dec_);
}

// No error messages on the decode paths: they run on the audio thread, per frame, and a
// corrupt packet is counted by the caller instead.
int VoiceDecoder::decode(const uint8_t *packet, size_t len, int16_t *out, int max_samples) {
  if (len > kMaxOpusPacket) return kErrCodec;
  const int n = opus_decode(dec_, packet, opus_int32(len), out, max_samples, 0);
  return n < 0 ? kErrCodec : n;
}

int VoiceDecoder::decode_fec(const uint8_t *next, size_t len, int16_t *out, int samples) {
  if (len > kMaxOpusPacket) return kErrCodec;
  const int n = opus_decode(dec_, next, opus_int32(len), out, samples, 1);
  return n < 0 ? kErrCodec : n;
}

int VoiceDecoder::conceal(int16_t *out, int samples) {
  const int n = opus_decode(dec_, nullptr, 0, out, samples, 0);
  return n < 0 ? kErrCodec : n;
}

// libopus 1.3 has no query for this (1.5 added one). In SILK and hybrid packets (TOC config
// < 16) the first frame starts with range-coded flags of probability 1/2, which occupy
// the top bits of its first byte in order: one VAD flag per 20 ms SILK frame, then the LBRR
// flag (RFC 6716 4.2.3-4.2.4), then for stereo the side channel's VAD flags and LBRR flag.
// CELT-only packets never carry FEC.
bool VoiceDecoder::has_fec(const uint8_t *packet, size_t len) {
  if (len < 2 || len > kMaxOpusPacket) return false;
  const int config = packet[0] >> 3;
  if (config >= 16) return false;
  const unsigned char *frames[48];
  opus_int16 sizes[48];
  unsigned char toc = 0;
  const int n = opus_packet_parse(packet, opus_int32(len), &toc, frames, sizes, nullptr);
  if (n <= 0 || sizes[0] == 0) return false;
  // SILK-only configs (0..11): 10 or 20 ms frames hold one SILK frame, 40 ms two, 60 ms
  // three. Hybrid configs (12..15) are 10 or 20 ms: one.
  const int duration = config & 3;  // SILK-only: 10, 20, 40, 60 ms
  const int silk_frames = config >= 12 || duration < 2 ? 1 : duration;
  const uint8_t first = frames[0][0];
  bool lbrr = (first >> (7 - silk_frames)) & 1;
  if (!lbrr && (packet[0] & 0x4)) lbrr = (first >> (6 - 2 * silk_frames)) & 1;
  return lbrr;
}

int VoiceDecoder::packet_samples(const uint8_t *packet, size_t len, int sample_rate) {
  if (len == 0 || len > kMaxOpusPacket) return kErrCodec;
  // opus_packet_get_nb_samples reads the TOC and frame count only; the parse checks that the
  // frame lengths and the padding fit the packet.
  const unsigned char *frames[48];
  opus_int16 sizes[48];
  unsigned char toc = 0;
  if (opus_packet_parse(packet, opus_int32(len), &toc, frames, sizes, nullptr) <= 0) {
    return kErrCodec;
  }
  const int n = opus_packet_get_nb_samples(packet, opus_int32(len), sample_rate);
  return n < 0 ? kErrCodec : n;
}

}  // namespace parley::media

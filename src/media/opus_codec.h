// Thin wrappers over libopus: one encoder and one decoder per call direction. Both are
// created (and allocate) once; encode/decode never allocate, never block and take bounded
// time, so the decoder may run on the host's real-time audio thread.
//
// Sample rates are the ones Opus supports natively (8, 12, 16, 24, 48 kHz); channels 1 or 2.
// Frame lengths 10, 20, 40, 60 ms. The encoder runs in VOIP mode at a constant bitrate: every
// packet is exactly opus_packet_bytes() of its profile, whatever the audio, because the
// sizes of variable-bitrate packets tell an observer of the encrypted stream what is said
// (RFC 6562: silence, vowels, fricatives and tones each have their own sizes). Opus CBR
// already fills each packet to the byte; encode() also caps and pads (with Opus's own
// padding, RFC 6716 3.2.5) so the size is a property of the profile rather than of a libopus
// version. Only with DTX switched on (set_dtx) does the encoder, during silence, produce
// packets of at most 2 bytes that need not be sent (is_dtx_packet); the decoder plays comfort
// noise across the gap.
#ifndef PARLEY_MEDIA_OPUS_CODEC_H
#define PARLEY_MEDIA_OPUS_CODEC_H

#include <cstddef>
#include <cstdint>
#include <memory>

#include "media/voice_profile.h"

struct OpusEncoder;
struct OpusDecoder;

namespace parley::media {

// The largest Opus packet (RFC 6716 3.4: 1275 bytes per frame; parley sends one frame each).
constexpr size_t kMaxOpusPacket = 1275;
// The most samples per channel one call returns: 120 ms at 48 kHz (a decoder output bound).
constexpr size_t kMaxFrameSamples = 5760;

// True for the rates Opus runs at natively.
bool is_opus_rate(int sample_rate);
// Samples per channel in `ms` milliseconds at `sample_rate`.
constexpr int samples_for_ms(int sample_rate, int ms) { return sample_rate / 1000 * ms; }
// Converts between a rate's samples and the media timestamp's 48 kHz units.
constexpr uint32_t to_ts48(int sample_rate, uint64_t samples) {
  return uint32_t(samples * (48000 / sample_rate));
}
// A packet the encoder produced during DTX silence (not worth sending).
inline bool is_dtx_packet(size_t len) { return len <= 2; }
// The size of every packet the encoder produces with profile `p` (DTX packets excepted): the
// profile's bitrate over one frame, rounded as libopus rounds its CBR budget, at least 3.
size_t opus_packet_bytes(const VoiceProfile &p);

class VoiceEncoder {
 public:
  // kOk, kErrAudioFormat (rate or channels), kErrCodec, kErrNoMemory.
  static int create(int sample_rate, int channels, std::unique_ptr<VoiceEncoder> *out);
  ~VoiceEncoder();

  // Applies a profile: bitrate, maximum bandwidth, frame length, FEC, and so the packet size.
  // kOk, kErrAudioFormat (a frame length Opus cannot encode) or kErrCodec.
  int set_profile(const VoiceProfile &p);
  // DTX (off after create()): on, silence becomes packets of at most 2 bytes, which makes
  // the sender's speech/silence pattern visible in the stream's timing and sizes (what
  // docs/protocol.md, "Voice payload", describes). kOk or kErrCodec.
  int set_dtx(bool on);
  bool dtx() const { return dtx_; }
  // The expected packet loss in percent (0..100), which is what makes Opus spend bits on
  // FEC: with 0 it adds none even when FEC is on. kOk or kErrCodec.
  int set_loss_percent(int percent);
  int loss_percent() const { return loss_percent_; }
  int frame_samples() const { return frame_samples_; }  // per channel, for the profile
  size_t packet_bytes() const { return packet_bytes_; }  // opus_packet_bytes(profile)
  int sample_rate() const { return rate_; }
  int channels() const { return channels_; }

  // Encodes exactly frame_samples() samples per channel (interleaved) into `out` (`cap`
  // bytes; kMaxOpusPacket is always enough). Returns the packet length: packet_bytes(), or
  // with DTX on possibly 1..2 (is_dtx_packet). kErrBufferTooSmall (`cap` < packet_bytes()) or
  // kErrCodec.
  int encode(const int16_t *pcm, uint8_t *out, size_t cap);

 private:
  VoiceEncoder() = default;
  OpusEncoder *enc_ = nullptr;
  int rate_ = 0, channels_ = 0, frame_samples_ = 0, loss_percent_ = 0;
  size_t packet_bytes_ = 0;
  bool dtx_ = false;
};

class VoiceDecoder {
 public:
  // kOk, kErrAudioFormat, kErrCodec, kErrNoMemory.
  static int create(int sample_rate, int channels, std::unique_ptr<VoiceDecoder> *out);
  ~VoiceDecoder();

  int sample_rate() const { return rate_; }
  int channels() const { return channels_; }

  // Decodes one packet into `out` (room for `max_samples` per channel). Returns the samples
  // per channel written, or kErrCodec (corrupt packet; the decoder stays usable).
  int decode(const uint8_t *packet, size_t len, int16_t *out, int max_samples);
  // Rebuilds the frame *before* `next` from the FEC data `next` carries (or conceals it if
  // `next` has none): exactly `samples` per channel. Returns `samples` or kErrCodec.
  int decode_fec(const uint8_t *next, size_t len, int16_t *out, int samples);
  // Packet loss concealment (or comfort noise after DTX) for `samples` per channel (a
  // multiple of 2.5 ms). Returns `samples` or kErrCodec.
  int conceal(int16_t *out, int samples);
  // Whether `packet` carries FEC (LBRR) data for the frame before it.
  static bool has_fec(const uint8_t *packet, size_t len);
  // Samples per channel `packet` decodes to at `sample_rate`, or kErrCodec: also for a
  // packet whose framing does not add up (RFC 6716 3.2: frame count, frame lengths, and the
  // padding length, which must fit in the packet), so a receiver refuses it before it is
  // buffered rather than when it fails to decode.
  static int packet_samples(const uint8_t *packet, size_t len, int sample_rate);

 private:
  VoiceDecoder() = default;
  OpusDecoder *dec_ = nullptr;
  int rate_ = 0, channels_ = 0;
};

}  // namespace parley::media

#endif

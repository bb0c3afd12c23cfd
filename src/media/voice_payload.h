// The plaintext of a voice frame: what the sealed part of a media frame whose header has
// kFrameFlagVoice (media/frame_header.h) carries. Anything else in a frame's flags means an
// application datagram, which parley hands to the host untouched.
//
//   feedback u8   the sender's receiver report, piggybacked: the fraction of the *peer's*
//                 frames it lost recently, in 1/256 units (RTCP's "fraction lost"). The peer's
//                 encoder turns it into its FEC loss hint.
//   count u8      how many earlier frames follow (0..kMaxRedundancy), oldest first
//   count x { ts_back u16, len u16 }   big-endian: an earlier frame's timestamp as an offset
//                 back from this frame's (48 kHz units, > 0), and its length (1..kMaxOpusPacket)
//   count x the earlier frames' Opus packets, in the same order
//   the primary Opus packet: the rest, at least 1 byte (a 1-byte packet is a DTX marker:
//                 the sender is silent from this timestamp until its next frame)
//
// Redundant copies (RED, RFC 2198 in spirit) let a receiver rebuild frames lost in bursts
// that Opus FEC (one frame back, at reduced quality) cannot.
#ifndef PARLEY_MEDIA_VOICE_PAYLOAD_H
#define PARLEY_MEDIA_VOICE_PAYLOAD_H

#include <cstddef>
#include <cstdint>

#include "media/opus_codec.h"
#include "media/voice_profile.h"

namespace parley::media {

constexpr size_t kVoicePayloadFixed = 2;
constexpr size_t kVoiceRedBlockHeader = 4;
// The largest voice payload parley writes: a full primary plus kMaxRedundancy full copies.
constexpr size_t kMaxVoicePayload =
    kVoicePayloadFixed + (kMaxRedundancy + 1) * kMaxOpusPacket +
    kMaxRedundancy * kVoiceRedBlockHeader;

struct VoiceBlock {
  uint16_t ts_back = 0;  // 0 for the primary
  const uint8_t *data = nullptr;
  size_t len = 0;
};

struct VoicePayload {
  uint8_t feedback = 0;
  size_t red_count = 0;
  VoiceBlock red[kMaxRedundancy];  // oldest first
  VoiceBlock primary;
};

// Parses `len` bytes at `data` (pointers in *out point into `data`). kOk, or
// kErrMediaMalformed (truncated, count above kMaxRedundancy, a zero ts_back or a ts_back not
// strictly decreasing, an empty or oversized block, an empty primary). No error message: the
// receive path counts failures instead.
int parse_voice_payload(const uint8_t *data, size_t len, VoicePayload *out);

// Writes a payload of `red_count` earlier blocks (oldest first) and the primary into `out`
// (`cap` bytes). Returns the length written, or 0 if it does not fit or a block is invalid
// (the same rules the parser enforces).
size_t write_voice_payload(uint8_t feedback, const VoiceBlock *red, size_t red_count,
                           const uint8_t *primary, size_t primary_len, uint8_t *out,
                           size_t cap);

}  // namespace parley::media

#endif

// The authenticated-but-not-encrypted header of a media frame (docs/design.md "Media
// frames"). One frame travels as one QUIC DATAGRAM; the relay routes on the stream id without
// ever seeing the sealed payload that follows the header.
//
//   version u8 (=1) | flags u8 | profile u8 | reserved u8 (0)
//   stream id u32 | sequence u32 | timestamp u32 (48 kHz units)      all big-endian
//
// The whole header is the AEAD's associated data, so a relay that rewrote any of it would
// make the frame fail authentication at the receiver.
#ifndef PARLEY_MEDIA_FRAME_HEADER_H
#define PARLEY_MEDIA_FRAME_HEADER_H

#include <cstddef>
#include <cstdint>

namespace parley::media {

constexpr uint8_t kFrameVersion = 1;
constexpr size_t kFrameHeaderSize = 16;
// flags: the payload is a voice payload (media/voice_payload.h). Without it a frame is an
// application datagram, delivered to the host as it was sent. Other bits are reserved (0).
constexpr uint8_t kFrameFlagVoice = 0x01;

struct FrameHeader {
  uint8_t flags = 0;
  uint8_t profile = 0;
  uint32_t stream_id = 0;
  uint32_t sequence = 0;
  uint32_t timestamp = 0;
};

// Writes the 16 header bytes to `out` (at least kFrameHeaderSize bytes).
void write_frame_header(const FrameHeader &h, uint8_t *out);

// Parses the header at the start of a datagram of `len` bytes. kOk, or kErrMediaMalformed
// (too short, unknown version, reserved byte set). Sets no error message: the relay calls
// this per packet and counts failures instead.
int parse_frame_header(const uint8_t *data, size_t len, FrameHeader *out);

// Only the stream id, for the relay's forwarding fast path. False if `len` is too short or
// the version is unknown.
inline bool peek_stream_id(const uint8_t *data, size_t len, uint32_t *stream_id) {
  if (len < kFrameHeaderSize || data[0] != kFrameVersion) return false;
  *stream_id = uint32_t(data[4]) << 24 | uint32_t(data[5]) << 16 | uint32_t(data[6]) << 8 |
               uint32_t(data[7]);
  return true;
}

}  // namespace parley::media

#endif

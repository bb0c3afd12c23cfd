#include "media/frame_header.h"

#include "base/error.h"

namespace parley::media {

namespace {
void put32(uint8_t *p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
uint32_t get32(const uint8_t *p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
}  // namespace

void write_frame_header(const FrameHeader &h, uint8_t *out) {
  out[0] = kFrameVersion;
  out[1] = h.flags;
  out[2] = h.profile;
  out[3] = 0;
  put32(out + 4, h.stream_id);
  put32(out + 8, h.sequence);
  put32(out + 12, h.timestamp);
}

int parse_frame_header(const uint8_t *data, size_t len, FrameHeader *out) {
  if (len < kFrameHeaderSize || data[0] != kFrameVersion || data[3] != 0) {
    return kErrMediaMalformed;
  }
  out->flags = data[1];
  out->profile = data[2];
  out->stream_id = get32(data + 4);
  out->sequence = get32(data + 8);
  out->timestamp = get32(data + 12);
  return kOk;
}

}  // namespace parley::media

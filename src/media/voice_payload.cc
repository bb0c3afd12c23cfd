#include "media/voice_payload.h"

#include <cstring>

#include "base/error.h"

namespace parley::media {

namespace {
bool valid_block(size_t len) { return len >= 1 && len <= kMaxOpusPacket; }
}  // namespace

int parse_voice_payload(const uint8_t *data, size_t len, VoicePayload *out) {
  if (len < kVoicePayloadFixed + 1) return kErrMediaMalformed;
  VoicePayload p;
  p.feedback = data[0];
  p.red_count = data[1];
  if (p.red_count > kMaxRedundancy) return kErrMediaMalformed;
  size_t pos = kVoicePayloadFixed;
  if (len - pos < p.red_count * kVoiceRedBlockHeader) return kErrMediaMalformed;
  uint32_t prev_back = 0x10000;
  for (size_t i = 0; i < p.red_count; ++i) {
    const uint8_t *h = data + pos + i * kVoiceRedBlockHeader;
    p.red[i].ts_back = uint16_t(h[0] << 8 | h[1]);
    p.red[i].len = size_t(h[2] << 8 | h[3]);
    if (p.red[i].ts_back == 0 || p.red[i].ts_back >= prev_back || !valid_block(p.red[i].len)) {
      return kErrMediaMalformed;
    }
    prev_back = p.red[i].ts_back;
  }
  pos += p.red_count * kVoiceRedBlockHeader;
  for (size_t i = 0; i < p.red_count; ++i) {
    if (len - pos < p.red[i].len) return kErrMediaMalformed;
    p.red[i].data = data + pos;
    pos += p.red[i].len;
  }
  if (!valid_block(len - pos)) return kErrMediaMalformed;
  p.primary.data = data + pos;
  p.primary.len = len - pos;
  *out = p;
  return kOk;
}

size_t write_voice_payload(uint8_t feedback, const VoiceBlock *red, size_t red_count,
                           const uint8_t *primary, size_t primary_len, uint8_t *out,
                           size_t cap) {
  if (red_count > kMaxRedundancy || !valid_block(primary_len)) return 0;
  size_t need = kVoicePayloadFixed + red_count * kVoiceRedBlockHeader + primary_len;
  uint32_t prev_back = 0x10000;
  for (size_t i = 0; i < red_count; ++i) {
    if (red[i].ts_back == 0 || red[i].ts_back >= prev_back || !valid_block(red[i].len)) {
      return 0;
    }
    prev_back = red[i].ts_back;
    need += red[i].len;
  }
  if (need > cap) return 0;
  out[0] = feedback;
  out[1] = uint8_t(red_count);
  size_t pos = kVoicePayloadFixed;
  for (size_t i = 0; i < red_count; ++i) {
    out[pos++] = uint8_t(red[i].ts_back >> 8);
    out[pos++] = uint8_t(red[i].ts_back);
    out[pos++] = uint8_t(red[i].len >> 8);
    out[pos++] = uint8_t(red[i].len);
  }
  for (size_t i = 0; i < red_count; ++i) {
    std::memcpy(out + pos, red[i].data, red[i].len);
    pos += red[i].len;
  }
  std::memcpy(out + pos, primary, primary_len);
  return pos + primary_len;
}

}  // namespace parley::media

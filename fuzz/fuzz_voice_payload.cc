// libFuzzer target: voice payloads (media/voice_payload.h) as they come out of an opened
// media frame, i.e. bytes the peer chose, through parse_voice_payload.
//
// What a parse promises: it fails only with kErrMediaMalformed; whatever it accepts,
// write_voice_payload writes back byte for byte (the format has one encoding per payload, so
// the parser accepted nothing the writer would refuse), and not into one byte less. Every
// block it returns lies inside the input and goes through the Opus packet inspectors the
// receiver runs on untrusted blocks (has_fec, packet_samples), which must not crash.
//
// corpus/voice_payload/ holds payloads written by VoiceSender (48 kHz mono, a 200 Hz tone
// with harmonics under a 3 Hz envelope), kept verbatim:
//   red0-profile1   profile 1 (no redundancy): feedback 0x0c, a 20 ms SWB hybrid primary
//   red1-profile3   profile 3: one earlier 40 ms frame (ts_back 1920) and the primary
//   red2-profile4   profile 4: two earlier 60 ms frames (ts_back 5760, 2880) and the primary
//   fec-profile2    profile 2 with the peer reporting 20 % loss: a SILK primary carrying LBRR
//                   (has_fec true)
//   dtx-marker      digital silence once Opus is in DTX: a 1-byte primary, the TOC alone
//   cbr-padded-profile2  profile 2 at a constant bitrate (the default since the seeds above,
//                   which are VBR): a 50-byte SILK primary in code 3 with Opus padding
//                   (made with libopus 1.3 at the sender's settings from the gliding voice
//                   of tests/unit/media, not the tone above: its fourth frame)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "media/opus_codec.h"
#include "media/voice_payload.h"

namespace {

using namespace parley;
using namespace parley::media;

const int kRates[] = {8000, 48000};

void inspect(const VoiceBlock &b, const uint8_t *data, size_t size) {
  if (b.len == 0 || b.len > kMaxOpusPacket || b.data < data || b.data + b.len > data + size) {
    std::abort();
  }
  (void)VoiceDecoder::has_fec(b.data, b.len);
  for (int rate : kRates) {
    const int n = VoiceDecoder::packet_samples(b.data, b.len, rate);
    // A valid packet holds at most 120 ms (RFC 6716 3.2.5).
    if (n != kErrCodec && (n < 0 || n > rate / 1000 * 120)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  VoicePayload p;
  const uint8_t dummy = 0;
  const int r = parse_voice_payload(data != nullptr ? data : &dummy, size, &p);
  if (r == kErrMediaMalformed) return 0;
  if (r != kOk || size > kMaxVoicePayload || p.red_count > kMaxRedundancy) std::abort();

  for (size_t i = 0; i < p.red_count; ++i) inspect(p.red[i], data, size);
  inspect(p.primary, data, size);

  std::vector<uint8_t> again(size);
  const size_t n = write_voice_payload(p.feedback, p.red, p.red_count, p.primary.data,
                                       p.primary.len, again.data(), again.size());
  if (n != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  if (write_voice_payload(p.feedback, p.red, p.red_count, p.primary.data, p.primary.len,
                          again.data(), size - 1) != 0) {
    std::abort();
  }
  return 0;
}

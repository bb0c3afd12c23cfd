// libFuzzer target: one VoiceReceiver driven by a script of inserts and pulls, as the call
// layer's audio thread drives it, with whatever payloads, timestamps and chunk sizes.
//
// Input: one config byte, then records until the input ends (a short last record is
// dropped). All integers big-endian.
//   config u8     bits 0-1: output rate 48000, 16000, 8000, 24000; bit 2: stereo;
//                 bit 3: min_delay_ms 60 instead of 20; bit 4: max_delay_ms 120 instead of
//                 500; bit 5: window_ms 500 instead of 4000
//   record: kind u8, then
//     kind even (insert): ts u32 | advance u16 | len u16 | len bytes of voice payload
//                 the clock advances `advance` microseconds, then the payload is inserted
//                 with media timestamp `ts` (len is cut to what is left of the input)
//     kind odd (pull): samples u16
//                 pulls that many samples per channel at the current time, then the clock
//                 advances by their duration (a host's audio callback)
// The clock starts at 0 and only moves forward.
//
// Checked: nothing crashes or reads out of bounds (sanitizers); pull writes exactly the
// samples asked for (a canary past them survives) and never fails; insert returns kOk or
// kErrMediaMalformed, the latter exactly when `malformed` counted it; samples_out adds up.
//
// corpus/voice_receiver/ seeds (real Opus frames of a synthetic voice, 48 kHz, made with
// VoiceEncoder + write_voice_payload; inserts come with advance 0 right before the pull that
// follows their arrival):
//   seed-clean        config 0; 60 frames of 20 ms in order at a fixed path delay, pulls of
//                     480 samples every 10 ms, the stream ending in DTX packets
//   seed-impaired     config 0; timestamps from 0xfff00000; 20 ms frames with FEC (loss
//                     hint 20) and two redundant blocks each, jittered, reordered,
//                     duplicated, with losses, a +60 ms delay step and pulls of 441
//   seed-mixed        config 0x05 (16 kHz stereo); 10/20/40/60 ms frames whose timestamps
//                     wrap, a jump of 10 s (a sender restart) and pulls of 1, 160 and 2048
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "media/voice_receiver.h"
#include "fuzz_support.h"

namespace {

using parley::fuzz::be;

using namespace parley;
using namespace parley::media;

constexpr int16_t kCanary = 0x5a5a;
constexpr size_t kCanaryLen = 64;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  if (size < 1) return 0;
  static const int kRates[] = {48000, 16000, 8000, 24000};
  JitterConfig c;
  c.sample_rate = kRates[data[0] & 3];
  c.channels = data[0] & 4 ? 2 : 1;
  c.min_delay_ms = data[0] & 8 ? 60 : 20;
  c.max_delay_ms = data[0] & 16 ? 120 : 500;
  c.window_ms = data[0] & 32 ? 500 : 4000;
  std::unique_ptr<VoiceReceiver> rx;
  if (VoiceReceiver::create(c, &rx) != kOk) std::abort();

  std::vector<int16_t> out((65535 + kCanaryLen) * size_t(c.channels));
  int64_t now_us = 0;
  uint64_t samples = 0;
  size_t pos = 1;
  while (pos < size) {
    const uint8_t kind = data[pos++];
    if ((kind & 1) == 0) {
      if (size - pos < 8) break;
      const uint32_t ts = be(data + pos, 4);
      now_us += be(data + pos + 4, 2);
      size_t len = be(data + pos + 6, 2);
      pos += 8;
      if (len > size - pos) len = size - pos;
      const uint64_t malformed = rx->stats().malformed;
      // A copy of exactly `len` bytes, so the sanitizers see any read past the payload.
      std::vector<uint8_t> payload(data + pos, data + pos + len);
      const int r = rx->insert(ts, payload.data(), len, now_us);
      pos += len;
      const bool counted = rx->stats().malformed == malformed + 1;
      if (!(r == kOk && !counted) && !(r == kErrMediaMalformed && counted)) std::abort();
    } else {
      if (size - pos < 2) break;
      const size_t n = be(data + pos, 2);
      pos += 2;
      const size_t used = n * size_t(c.channels);
      std::fill(out.begin() + ptrdiff_t(used), out.begin() + ptrdiff_t(used + kCanaryLen * c.channels),
                kCanary);
      rx->pull(out.data(), n, now_us);
      for (size_t i = used; i < used + kCanaryLen * size_t(c.channels); ++i) {
        if (out[i] != kCanary) std::abort();
      }
      samples += n;
      if (rx->stats().samples_out != samples) std::abort();
      now_us += int64_t(n) * 1000000 / c.sample_rate;
    }
  }
  return 0;
}

// Voice quality profiles: each is a complete encoder setting. The profile id travels in every
// media frame header (media/frame_header.h), but a receiver never needs it to decode: the
// Opus packet's own TOC byte says its mode, bandwidth and duration, so a frame sent right
// after a profile change decodes correctly. The id tells the receiver (and the relay, which
// judges quality) what the sender is using. The quality layer chooses among these; the table
// is append-only (ids are on the wire).
#ifndef PARLEY_MEDIA_VOICE_PROFILE_H
#define PARLEY_MEDIA_VOICE_PROFILE_H

#include <cstddef>
#include <cstdint>

namespace parley::media {

enum class Bandwidth : uint8_t {
  kNarrow = 0,     // 4 kHz audio bandwidth
  kMedium = 1,     // 6 kHz
  kWide = 2,       // 8 kHz
  kSuperWide = 3,  // 12 kHz
  kFull = 4,       // 20 kHz
};

struct VoiceProfile {
  uint8_t id;
  const char *name;
  uint32_t bitrate_bps;  // the Opus target bitrate (the payload; frame overhead excluded)
  Bandwidth max_bandwidth;
  uint16_t frame_ms;     // 10, 20, 40 or 60
  bool fec;              // Opus in-band FEC (only effective with a non-zero loss hint)
  uint8_t redundancy;    // earlier encoded frames repeated in each datagram (0..kMaxRedundancy)
};

// The most earlier frames one datagram carries (media/voice_payload.h).
constexpr size_t kMaxRedundancy = 3;

// The profile calls start with.
constexpr uint8_t kDefaultProfile = 1;

// The profile with this id, or NULL if the id is unknown.
const VoiceProfile *voice_profile(uint8_t id);
// How many profiles there are; ids are 0 .. voice_profile_count() - 1, best first.
size_t voice_profile_count();

}  // namespace parley::media

#endif

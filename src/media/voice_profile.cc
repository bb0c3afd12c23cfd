#include "media/voice_profile.h"

namespace parley::media {

namespace {
// Best first. The steps roughly halve the bitrate; the lower rungs trade latency (longer
// frames: fewer headers per second) and add redundancy for heavy loss. docs/quality.md gives
// the reasoning; issue 8's controller walks this ladder.
constexpr VoiceProfile kProfiles[] = {
    {0, "fullband-48k", 48000, Bandwidth::kFull, 20, true, 0},
    {1, "fullband-32k", 32000, Bandwidth::kFull, 20, true, 0},
    {2, "wideband-20k", 20000, Bandwidth::kWide, 20, true, 0},
    {3, "wideband-12k", 12000, Bandwidth::kWide, 40, true, 1},
    {4, "narrowband-6k", 6000, Bandwidth::kNarrow, 60, true, 2},
};
}  // namespace

const VoiceProfile *voice_profile(uint8_t id) {
  return id < sizeof kProfiles / sizeof kProfiles[0] ? &kProfiles[id] : nullptr;
}

size_t voice_profile_count() { return sizeof kProfiles / sizeof kProfiles[0]; }

}  // namespace parley::media

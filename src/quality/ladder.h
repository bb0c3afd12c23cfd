// The quality ladder: for every voice profile (media/voice_profile.h, best first), the
// conditions under which a call keeps it and the stricter ones under which it may climb into
// it. docs/quality.md gives the numbers' reasoning (PESQ under loss, bitrates on the wire).
//
// A link is one participant's view of the media it receives plus the path's transport
// stats. Every limit is a maximum; a report within all of a profile's limits "allows" it.
#ifndef PARLEY_QUALITY_LADDER_H
#define PARLEY_QUALITY_LADDER_H

#include <cstddef>
#include <cstdint>

namespace parley::quality {

// What one link looks like now. Zero means "no problem seen" (or unknown) for every field.
struct LinkReport {
  uint16_t loss_permille = 0;  // media frames lost on the way (before FEC/redundancy), ~1 s
  uint32_t jitter_ms = 0;      // arrival jitter, the jitter buffer's high percentile
  uint32_t rtt_ms = 0;         // smoothed RTT of the path (informational; not a limit)
  uint32_t queue_ms = 0;       // smoothed RTT minus the path's minimum RTT: a standing queue
};

// Why a profile is not allowed (or why it changed). Append-only numbering (the C API's
// quality-change event carries it).
enum class Reason : uint8_t {
  kNone = 0,
  kLoss = 1,         // loss above the profile's limit
  kCongestion = 2,   // a standing queue on the path (RTT above its minimum)
  kJitter = 3,       // arrival jitter above the limit
  kRecovered = 4,    // an upgrade: conditions were good for the hold time
  kDirective = 5,    // the judge (peer or relay) said so
};
const char *reason_name(Reason r);

struct Limits {
  uint16_t loss_permille;
  uint32_t queue_ms;
  uint32_t jitter_ms;
};

struct Rung {
  uint8_t profile;
  Limits keep;   // stay on this profile while every link is within
  Limits enter;  // climb into it only while every link is within (stricter: hysteresis)
};

// The rung of `profile`; profiles past the ladder's end get the last (the floor), whose
// limits are unbounded.
const Rung &rung(uint8_t profile);
// The number of profiles on the ladder (ids 0 .. count-1, best first).
size_t ladder_size();
// Within `l`? If not, *why (may be NULL) says which limit was crossed first (loss, then
// congestion, then jitter).
bool within(const LinkReport &r, const Limits &l, Reason *why);
// The best profile the report allows to keep (never better than `best`); *why: what keeps
// it from anything better (kNone if nothing).
uint8_t best_to_keep(const LinkReport &r, Reason *why);
// The best profile the report allows to enter.
uint8_t best_to_enter(const LinkReport &r);

// The jitter to judge a call by while the receiver's jitter window is young (`window_ms` <
// kJitterSettleMs): at most `profile`'s keep limit, so it never forces a downgrade, yet it
// still blocks an upgrade when high (every better profile's enter limit is lower). A host
// whose capture starts with a burst (a stall, then the backlog pushed at once: 6 frames of
// 20 ms from a Python host) makes the first frames look up to 100 ms late, which in a window
// of a few frames is the 95th percentile: a clean path went 1 -> 3 within 0.5 s. After
// 3 s such a burst is under 5 % of the window. The jitter buffer adapts at once either way.
constexpr uint32_t kJitterSettleMs = 3000;
uint32_t settled_jitter_ms(uint32_t jitter_ms, uint32_t window_ms, uint8_t profile);

}  // namespace parley::quality

#endif

// One consensual upgrade round as the judge runs it (docs/design.md "Quality": propose ->
// every participant acks -> confirm with a switch timestamp; any reject or timeout cancels).
// Sans-I/O: the owner sends the messages; this only keeps the books.
//
// Wire (docs/protocol.md): the judge sends upgrade-propose {sequence, profile, media
// timestamp} to each participant; each answers upgrade-ack {sequence, profile = the best
// profile it allows now}; the answer accepts when that profile is at least as good as the
// proposed one (id <=). When every awaited participant has accepted, the judge sends
// upgrade-confirm {sequence, profile, media timestamp}; on a refusal or at the deadline it
// sends quality-directive {sequence, profile = the one in force}, which cancels the round.
// A participant switches only on confirm, so a cancelled round changes nothing anywhere.
#ifndef PARLEY_QUALITY_ROUND_H
#define PARLEY_QUALITY_ROUND_H

#include <cstddef>
#include <cstdint>

#include "quality/controller.h"

namespace parley::quality {

enum class RoundState : uint8_t {
  kIdle = 0,
  kPending = 1,    // waiting for acks
  kConfirmed = 2,  // everyone accepted: send the confirms
  kCancelled = 3,  // someone refused, or the deadline passed: send the cancel
};

class UpgradeRound {
 public:
  // Starts round `sequence` for `profile`, awaiting an ack from each of `links` (n <=
  // kMaxLinks, ids < kMaxLinks) by `deadline_ms`. Replaces any previous round.
  void start(uint64_t sequence, uint8_t profile, const int *links, size_t n,
             int64_t deadline_ms);
  // An ack. Ignored unless it is for the pending round from an awaited link.
  void on_ack(uint64_t sequence, int link, uint8_t allowed);
  // A participant left: it is no longer awaited (a round of nobody is confirmed).
  void remove(int link);
  // kPending until every ack is in (kConfirmed), one refuses or `now_ms` passes the deadline
  // (kCancelled). The outcome is reported once; then the round is kIdle again.
  RoundState poll(int64_t now_ms);

  RoundState state() const { return state_; }
  uint64_t sequence() const { return sequence_; }
  uint8_t profile() const { return profile_; }
  // Who refused (the first), or -1.
  int refused_by() const { return refused_by_; }

 private:
  RoundState state_ = RoundState::kIdle;
  uint64_t sequence_ = 0;
  uint8_t profile_ = 0;
  int64_t deadline_ms_ = 0;
  bool awaited_[kMaxLinks] = {};
  size_t waiting_ = 0;
  int refused_by_ = -1;
};

}  // namespace parley::quality

#endif

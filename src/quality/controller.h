// The adaptive quality controller (docs/design.md "Quality"): one piece of code for every
// judge — a peer on a direct call, the relay on relayed calls and rooms. Sans-I/O: the owner
// feeds it link reports with the time and asks what to do; it never reads a clock, sends
// anything or allocates after construction. Not thread-safe (one thread makes every call).
//
// Links are small integers chosen by the owner (0 .. kMaxLinks-1): on a direct call "what I
// receive" and "what the peer receives", at the relay one per participant.
//
// Rules:
//  - Downgrade at once: when the weakest fresh link does not allow the current profile
//    (ladder.h "keep" limits), poll() answers kDowngrade to the best profile that link
//    allows — possibly several rungs at once.
//  - Upgrade only after every link has allowed the next rung up ("enter" limits, stricter)
//    in every report for `hold` ms, with no change in between; one rung at a time, as a
//    proposal (kProposeUpgrade) the owner runs as a consensual round and reports back with
//    upgrade_result(). No upgrade while a link is stale or a round is in flight.
//  - Backoff: a refused or cancelled round, or an upgrade that did not hold, doubles `hold` up
//    to `max_hold_ms`; an upgrade that holds for `failed_within_ms` resets it. An upgrade did
//    not hold when a downgrade follows within `failed_within_ms` and lands at most one rung
//    below where the upgrade started (the new rung was too much for the path); a deeper fall
//    is a change of conditions, not the upgrade's fault, and costs no backoff. So on a path
//    whose capacity sits between two rungs the controller tries the upper one at most once
//    per hold period, and that period grows: about 2 changes per `hold`, then fewer.
#ifndef PARLEY_QUALITY_CONTROLLER_H
#define PARLEY_QUALITY_CONTROLLER_H

#include <cstddef>
#include <cstdint>

#include "quality/ladder.h"

namespace parley::quality {

constexpr int kMaxLinks = 64;

struct ControllerConfig {
  int64_t hold_ms = 2500;            // good conditions needed before one rung up
  int64_t max_hold_ms = 48000;       // the backoff's ceiling
  int64_t failed_within_ms = 3000;   // a downgrade this soon after an upgrade: it failed
  int64_t stale_ms = 3000;           // a link without a report this long blocks upgrades
                                     // and no longer counts for downgrades
  bool propose = true;               // false: never propose upgrades (this side only answers)
  uint8_t best_profile = 0;          // never propose better than this (the host's cap)
};

enum class Action : uint8_t { kNone = 0, kDowngrade = 1, kProposeUpgrade = 2 };

struct Decision {
  Action action = Action::kNone;
  uint8_t profile = 0;            // the new profile (kDowngrade) or the proposed one
  Reason reason = Reason::kNone;  // why (kDowngrade: the weakest link's; upgrade: kRecovered)
  int link = -1;                  // kDowngrade: the weakest link
};

struct ControllerStats {
  uint64_t downgrades = 0, upgrades = 0, proposals = 0, failed_upgrades = 0;
  int64_t hold_ms = 0;  // the current upgrade hold
};

class Controller {
 public:
  Controller(const ControllerConfig &config, uint8_t profile);

  // The latest report of `link` (0 <= link < kMaxLinks; others are ignored).
  void report(int link, const LinkReport &r, int64_t now_ms);
  // The link is gone (a participant left); it no longer counts for anything.
  void remove(int link);
  // What to do now. A kDowngrade is already applied when it is returned (the owner only
  // announces it); a kProposeUpgrade is not: the owner runs the round and calls
  // upgrade_result(). Call after every report and on a timer (stale links, hold expiry).
  Decision poll(int64_t now_ms);
  // The outcome of the round poll() proposed: switched (everyone agreed; the new profile is
  // in force from now) or not (refused, cancelled, timed out). A switch after a downgrade
  // overtook the round changes nothing: upgrades are one rung from the profile proposed at.
  void upgrade_result(bool switched, int64_t now_ms);
  // The profile was set from outside (a directive of the judge, or the peer's downgrade).
  // Counts as a failed upgrade when it is a downgrade soon after an upgrade.
  void apply(uint8_t profile, int64_t now_ms);

  uint8_t profile() const { return profile_; }
  bool upgrade_in_flight() const { return in_flight_; }
  // The best profile the link's latest fresh report allows to enter (an answer to a peer's
  // proposal); the ladder's floor for an unknown or stale link.
  uint8_t allows_entering(int link, int64_t now_ms) const;
  // The same over every fresh link (the weakest); the floor when there is none.
  uint8_t allows_entering_all(int64_t now_ms) const;
  ControllerStats stats() const;

 private:
  struct Link {
    bool used = false;
    LinkReport last;
    int64_t at_ms = 0;
    int64_t good_since_ms = -1;  // every report since allowed entering profile_-1
  };
  bool fresh(const Link &l, int64_t now_ms) const { return now_ms - l.at_ms <= cfg_.stale_ms; }
  void changed(uint8_t to, int64_t now_ms);
  void failed(int64_t now_ms);

  ControllerConfig cfg_;
  uint8_t profile_;
  Link links_[kMaxLinks];
  bool in_flight_ = false;
  uint8_t proposed_ = 0;
  int64_t last_change_ms_ = INT64_MIN / 2;
  int64_t last_upgrade_ms_ = INT64_MIN / 2;
  bool upgrade_checked_ = true;  // the last upgrade has been judged held or failed
  uint8_t upgraded_from_ = 0;    // the profile the last upgrade left
  // Judges the last upgrade when a downgrade to `to` comes.
  void downgrade_after_upgrade(uint8_t to, int64_t now_ms);
  int64_t hold_ms_;
  ControllerStats st_;
};

}  // namespace parley::quality

#endif

#include "quality/controller.h"

#include <algorithm>

namespace parley::quality {

Controller::Controller(const ControllerConfig &config, uint8_t profile)
    : cfg_(config),
      profile_(std::min<uint8_t>(profile, uint8_t(ladder_size() - 1))),
      hold_ms_(config.hold_ms) {}

void Controller::report(int link, const LinkReport &r, int64_t now_ms) {
  if (link < 0 || link >= kMaxLinks) return;
  Link &l = links_[link];
  const bool was_fresh = l.used && fresh(l, now_ms);
  l.used = true;
  l.last = r;
  l.at_ms = now_ms;
  const bool good = profile_ > 0 && best_to_enter(r) <= profile_ - 1;
  if (!good) {
    l.good_since_ms = -1;
  } else if (l.good_since_ms < 0 || !was_fresh) {
    // A gap in the reports breaks "every report for hold ms".
    l.good_since_ms = now_ms;
  }
}

void Controller::remove(int link) {
  if (link >= 0 && link < kMaxLinks) links_[link] = Link{};
}

void Controller::changed(uint8_t to, int64_t now_ms) {
  profile_ = to;
  last_change_ms_ = now_ms;
  // The next rung up is another one now: its good streak starts with the next report.
  for (Link &l : links_) l.good_since_ms = -1;
}

void Controller::failed(int64_t now_ms) {
  ++st_.failed_upgrades;
  hold_ms_ = std::min(hold_ms_ * 2, cfg_.max_hold_ms);
  last_change_ms_ = now_ms;
}

Decision Controller::poll(int64_t now_ms) {
  Decision d;
  // Has the last upgrade held?
  if (!upgrade_checked_ && now_ms - last_upgrade_ms_ >= cfg_.failed_within_ms) {
    upgrade_checked_ = true;
    hold_ms_ = cfg_.hold_ms;
  }
  // The weakest fresh link.
  uint8_t worst = 0;
  Reason why = Reason::kNone;
  int worst_link = -1;
  bool any = false, all_good = true;
  int64_t good_from = INT64_MIN;
  for (int i = 0; i < kMaxLinks; ++i) {
    const Link &l = links_[i];
    if (!l.used) continue;
    if (!fresh(l, now_ms)) {
      all_good = false;  // silence is no evidence of good conditions
      continue;
    }
    any = true;
    Reason w;
    const uint8_t keep = best_to_keep(l.last, &w);
    if (worst_link < 0 || keep > worst) {
      worst = keep;
      why = w;
      worst_link = i;
    }
    if (l.good_since_ms < 0) {
      all_good = false;
    } else {
      good_from = std::max(good_from, l.good_since_ms);
    }
  }
  if (any && worst > profile_) {
    downgrade_after_upgrade(worst, now_ms);
    changed(worst, now_ms);
    ++st_.downgrades;
    d.action = Action::kDowngrade;
    d.profile = worst;
    d.reason = why;
    d.link = worst_link;
    return d;
  }
  if (!cfg_.propose || !any || !all_good || in_flight_ || profile_ <= cfg_.best_profile) {
    return d;
  }
  const int64_t since = std::max(good_from, last_change_ms_);
  if (now_ms - since < hold_ms_) return d;
  in_flight_ = true;
  proposed_ = uint8_t(profile_ - 1);
  ++st_.proposals;
  d.action = Action::kProposeUpgrade;
  d.profile = proposed_;
  d.reason = Reason::kRecovered;
  return d;
}

void Controller::downgrade_after_upgrade(uint8_t to, int64_t now_ms) {
  if (upgrade_checked_ || now_ms - last_upgrade_ms_ >= cfg_.failed_within_ms) return;
  upgrade_checked_ = true;
  if (to <= upgraded_from_ + 1) failed(now_ms);
}

void Controller::upgrade_result(bool switched, int64_t now_ms) {
  if (!in_flight_) return;
  in_flight_ = false;
  if (!switched) {
    failed(now_ms);
    return;
  }
  // A downgrade (poll() or apply()) overtook the round: its answer was given for a profile
  // no longer in force, and taking it would skip rungs (owners cancel such rounds anyway).
  if (proposed_ + 1 != profile_) return;
  upgraded_from_ = profile_;
  changed(proposed_, now_ms);
  ++st_.upgrades;
  last_upgrade_ms_ = now_ms;
  upgrade_checked_ = false;
}

void Controller::apply(uint8_t profile, int64_t now_ms) {
  profile = std::min<uint8_t>(profile, uint8_t(ladder_size() - 1));
  if (profile == profile_) return;
  if (profile > profile_) {
    ++st_.downgrades;
    downgrade_after_upgrade(profile, now_ms);
  } else {
    ++st_.upgrades;
    upgraded_from_ = profile_;
    last_upgrade_ms_ = now_ms;
    upgrade_checked_ = false;
  }
  changed(profile, now_ms);
}

uint8_t Controller::allows_entering(int link, int64_t now_ms) const {
  const uint8_t floor = uint8_t(ladder_size() - 1);
  if (link < 0 || link >= kMaxLinks) return floor;
  const Link &l = links_[link];
  if (!l.used || !fresh(l, now_ms)) return floor;
  return best_to_enter(l.last);
}

uint8_t Controller::allows_entering_all(int64_t now_ms) const {
  uint8_t worst = 0;
  bool any = false;
  for (int i = 0; i < kMaxLinks; ++i) {
    if (!links_[i].used || !fresh(links_[i], now_ms)) continue;
    any = true;
    worst = std::max(worst, best_to_enter(links_[i].last));
  }
  return any ? worst : uint8_t(ladder_size() - 1);
}

ControllerStats Controller::stats() const {
  ControllerStats s = st_;
  s.hold_ms = hold_ms_;
  return s;
}

}  // namespace parley::quality

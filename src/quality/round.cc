#include "quality/round.h"

namespace parley::quality {

void UpgradeRound::start(uint64_t sequence, uint8_t profile, const int *links, size_t n,
                         int64_t deadline_ms) {
  state_ = RoundState::kPending;
  sequence_ = sequence;
  profile_ = profile;
  deadline_ms_ = deadline_ms;
  refused_by_ = -1;
  waiting_ = 0;
  for (bool &a : awaited_) a = false;
  for (size_t i = 0; i < n; ++i) {
    if (links[i] >= 0 && links[i] < kMaxLinks && !awaited_[links[i]]) {
      awaited_[links[i]] = true;
      ++waiting_;
    }
  }
}

void UpgradeRound::on_ack(uint64_t sequence, int link, uint8_t allowed) {
  if (state_ != RoundState::kPending || sequence != sequence_ || link < 0 ||
      link >= kMaxLinks || !awaited_[link]) {
    return;
  }
  awaited_[link] = false;
  --waiting_;
  if (allowed > profile_ && refused_by_ < 0) refused_by_ = link;
}

void UpgradeRound::remove(int link) {
  if (state_ != RoundState::kPending || link < 0 || link >= kMaxLinks || !awaited_[link]) {
    return;
  }
  awaited_[link] = false;
  --waiting_;
}

RoundState UpgradeRound::poll(int64_t now_ms) {
  if (state_ != RoundState::kPending) return RoundState::kIdle;
  RoundState out = RoundState::kPending;
  if (refused_by_ >= 0 || (waiting_ > 0 && now_ms >= deadline_ms_)) {
    out = RoundState::kCancelled;
  } else if (waiting_ == 0) {
    out = RoundState::kConfirmed;
  }
  if (out != RoundState::kPending) state_ = RoundState::kIdle;
  return out;
}

}  // namespace parley::quality

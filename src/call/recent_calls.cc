#include "call/recent_calls.h"

#include "base/error.h"

namespace parley::call {

RecentCalls::RecentCalls(uint64_t window_ms, size_t capacity)
    : window_ms_(window_ms), capacity_(capacity ? capacity : 1) {}

void RecentCalls::expire(uint64_t now_ms) {
  while (!by_time_.empty() && by_time_.begin()->first + window_ms_ < now_ms) {
    by_id_.erase(by_time_.begin()->second);
    by_time_.erase(by_time_.begin());
  }
}

int RecentCalls::admit(const signal::CallId &call, uint64_t issued_at_ms, uint64_t now_ms) {
  expire(now_ms);
  if (by_id_.count(call)) return fail(kErrMediaKey, "an invite for this call id was seen before");
  if (have_floor_ && issued_at_ms <= floor_ms_) {
    return fail(kErrMediaKey,
                "the invite was issued before invites already forgotten for room (a flood)");
  }
  if (by_id_.size() == capacity_) {
    const auto oldest = *by_time_.begin();
    if (issued_at_ms <= oldest.first) {
      // Older than everything remembered: admitting it would mean forgetting a newer one.
      return fail(kErrMediaKey,
                  "the invite was issued before every remembered one and memory is full");
    }
    by_id_.erase(oldest.second);
    by_time_.erase(by_time_.begin());
    floor_ms_ = oldest.first;
    have_floor_ = true;
  }
  by_id_.emplace(call, issued_at_ms);
  by_time_.emplace(issued_at_ms, call);
  return kOk;
}

}  // namespace parley::call

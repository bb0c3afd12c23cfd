// The callee's memory of the invites it admitted, so that a relay replaying a recorded invite
// (whose signed media key is still inside its freshness window, media/e2e_keys.h) cannot
// make the host ring again. Sans-I/O: the caller passes the wall clock.
//
// Ids are remembered until their invite's issue time is older than the freshness window
// (after which the key's age alone refuses a replay). The memory is bounded: when it is full,
// the entry issued earliest is forgotten and every invite issued no later than it is refused
// from then on, so forgetting never readmits a replay; it can only refuse a genuine invite
// that was issued before invites the callee has already admitted, which is what a flood of
// invites costs.
#ifndef PARLEY_CALL_RECENT_CALLS_H
#define PARLEY_CALL_RECENT_CALLS_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "signal/message.h"

namespace parley::call {

class RecentCalls {
 public:
  // `window_ms`: how long an issue time stays acceptable (kMaxMediaKeyAgeMs); `capacity`:
  // the most ids remembered at once (at least 1).
  RecentCalls(uint64_t window_ms, size_t capacity);

  // Admits the invite of `call` issued at `issued_at_ms` (a verified key's time) at wall
  // clock `now_ms`, and remembers it. Returns kOk, or kErrMediaKey: the id was admitted
  // before, or the invite was issued no later than an entry already forgotten for room.
  int admit(const signal::CallId &call, uint64_t issued_at_ms, uint64_t now_ms);

  size_t size() const { return by_id_.size(); }

 private:
  void expire(uint64_t now_ms);

  uint64_t window_ms_;
  size_t capacity_;
  uint64_t floor_ms_ = 0;  // invites issued at or before it are refused (0: none yet)
  bool have_floor_ = false;
  std::map<signal::CallId, uint64_t> by_id_;
  std::set<std::pair<uint64_t, signal::CallId>> by_time_;
};

}  // namespace parley::call

#endif

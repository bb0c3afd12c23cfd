// When to try the direct path again, sans-I/O. A call on the relay -- its first attempt
// failed, its direct path died, consent was lost -- tries again with a doubling delay
// (first_ms, 2x, 4x ... capped at max_ms), so a transient failure never sentences a call to
// the relay and a path that stays blocked costs one bounded attempt per max_ms. A network
// change or new candidates make the next attempt due at once and start the doubling over.
#ifndef PARLEY_PATH_RETRY_H
#define PARLEY_PATH_RETRY_H

#include <cstdint>

#include "base/clock.h"

namespace parley::path {

struct RetryConfig {
  uint32_t first_ms = 2000;
  uint32_t max_ms = 60000;
};

class DirectRetry {
 public:
  explicit DirectRetry(RetryConfig config = RetryConfig()) : config_(config) {}

  // The attempt in progress (or the direct path) failed at `now` for `reason` (an error
  // code): the next attempt is due one delay later, and the delay doubles.
  void on_failure(Timestamp now, int reason);
  // The direct path works: nothing is due, and the next failure waits first_ms again.
  void on_success();
  // The network changed, or new candidates came: an attempt is due at `now`, and the delay
  // starts over.
  void reset(Timestamp now);
  // An attempt started for another reason (the peer's restart): nothing is due until it
  // fails; the doubling goes on from where it was.
  void attempt_started() { due_ = 0; }
  // An attempt could not start yet (no usable address while a network comes up): due again
  // at `at`, the doubling untouched.
  void postpone(Timestamp at) {
    if (!stopped_) due_ = at;
  }
  // Nothing more is ever due (the call ends, or the direct path is disabled).
  void stop();

  // When the next attempt is due; 0: none.
  Timestamp due() const { return due_; }
  // True (and counted, and no longer due) when an attempt is due at `now`.
  bool take(Timestamp now);

  uint64_t attempts() const { return attempts_; }  // started by take()
  uint64_t failures() const { return failures_; }
  int last_reason() const { return last_reason_; }
  uint32_t next_delay_ms() const { return delay_ms_; }

 private:
  RetryConfig config_;
  uint32_t delay_ms_ = 0;  // 0: first_ms
  Timestamp due_ = 0;
  bool stopped_ = false;
  uint64_t attempts_ = 0, failures_ = 0;
  int last_reason_ = 0;
};

// How long one direct attempt may take: `configured_ms`, or longer on a long path. Set-up
// takes about 325 ms + 4.5 round trips between the peers (ICE checks, the QUIC handshake,
// the switch's confirmation; docs/performance.md), so a fixed 3 s budget gives up on paths
// slower than ~600 ms RTT that would have worked. The peers' RTT is taken as twice our
// relay leg's (their leg unknown, assumed alike): 1 s + 6 such round trips, at most
// kMaxDirectBudgetMs. `relay_rtt_ms` 0 (not measured yet): `configured_ms`.
constexpr uint32_t kMaxDirectBudgetMs = 20000;
uint32_t direct_attempt_budget_ms(uint32_t configured_ms, uint64_t relay_rtt_ms);

}  // namespace parley::path

#endif

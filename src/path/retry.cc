#include "path/retry.h"

#include <algorithm>

namespace parley::path {

void DirectRetry::on_failure(Timestamp now, int reason) {
  ++failures_;
  last_reason_ = reason;
  if (stopped_) return;
  if (delay_ms_ == 0) delay_ms_ = config_.first_ms;
  due_ = std::max<Timestamp>(now + Timestamp(delay_ms_) * kNanosPerMilli, 1);
  delay_ms_ = uint32_t(std::min<uint64_t>(uint64_t(delay_ms_) * 2, config_.max_ms));
}

void DirectRetry::on_success() {
  due_ = 0;
  delay_ms_ = 0;
}

void DirectRetry::reset(Timestamp now) {
  if (stopped_) return;
  delay_ms_ = 0;
  due_ = std::max<Timestamp>(now, 1);
}

void DirectRetry::stop() {
  stopped_ = true;
  due_ = 0;
}

bool DirectRetry::take(Timestamp now) {
  if (due_ == 0 || now < due_) return false;
  due_ = 0;
  ++attempts_;
  return true;
}

uint32_t direct_attempt_budget_ms(uint32_t configured_ms, uint64_t relay_rtt_ms) {
  constexpr uint64_t kFloorMs = 1000, kRoundTrips = 6;
  const uint64_t needed = kFloorMs + kRoundTrips * 2 * relay_rtt_ms;
  if (needed <= configured_ms) return configured_ms;
  return uint32_t(std::min<uint64_t>(needed, std::max(configured_ms, kMaxDirectBudgetMs)));
}

}  // namespace parley::path

#include "path/retry.h"

#include <gtest/gtest.h>

namespace parley::path {
namespace {

constexpr Timestamp kS = kNanosPerSecond;
constexpr Timestamp kT0 = 100 * kS;

TEST(DirectRetry, TheDelayDoublesUpToItsCap) {
  DirectRetry r(RetryConfig{2000, 60000});
  EXPECT_EQ(0u, r.due());
  Timestamp now = kT0;
  const Timestamp want[] = {2, 4, 8, 16, 32, 60, 60, 60};
  for (Timestamp w : want) {
    r.on_failure(now, -40);
    EXPECT_EQ(now + w * kS, r.due());
    EXPECT_FALSE(r.take(r.due() - 1));
    now = r.due();
    EXPECT_TRUE(r.take(now));
    EXPECT_FALSE(r.take(now));  // taken once
  }
  EXPECT_EQ(8u, r.attempts());
  EXPECT_EQ(8u, r.failures());
  EXPECT_EQ(-40, r.last_reason());
}

// Over an hour of failures, the attempts stay bounded by the cap: at most one a minute once
// the doubling reached it.
TEST(DirectRetry, AttemptsPerHourAreBounded) {
  DirectRetry r;
  Timestamp now = kT0;
  const Timestamp end = kT0 + 3600 * kS;
  while (now < end) {
    r.on_failure(now, -19);
    now = r.due();
    ASSERT_TRUE(r.take(now));
  }
  EXPECT_LE(r.attempts(), 5u + 60u + 1u);
}

TEST(DirectRetry, SuccessStartsTheDoublingOver) {
  DirectRetry r;
  r.on_failure(kT0, -40);
  r.on_failure(kT0, -40);
  EXPECT_EQ(kT0 + 4 * kS, r.due());
  r.on_success();
  EXPECT_EQ(0u, r.due());
  r.on_failure(kT0, -19);
  EXPECT_EQ(kT0 + 2 * kS, r.due());
}

TEST(DirectRetry, ANetworkChangeMakesAnAttemptDueAtOnce) {
  DirectRetry r;
  for (int i = 0; i < 6; ++i) r.on_failure(kT0, -40);
  EXPECT_EQ(60000u, r.next_delay_ms());
  r.reset(kT0 + kS);
  EXPECT_EQ(kT0 + kS, r.due());
  EXPECT_TRUE(r.take(kT0 + kS));
  r.on_failure(kT0 + 2 * kS, -40);
  EXPECT_EQ(kT0 + 4 * kS, r.due());  // the doubling starts over
}

TEST(DirectRetry, StoppedMeansNeverDue) {
  DirectRetry r;
  r.stop();
  r.on_failure(kT0, -40);
  r.reset(kT0);
  EXPECT_EQ(0u, r.due());
  EXPECT_FALSE(r.take(kT0 + 3600 * kS));
  EXPECT_EQ(1u, r.failures());
}

}  // namespace
}  // namespace parley::path

namespace parley::path {
namespace {

TEST(DirectAttemptBudget, FollowsTheRelayRttOnLongPathsOnly) {
  EXPECT_EQ(3000u, direct_attempt_budget_ms(3000, 0));    // not measured yet
  EXPECT_EQ(3000u, direct_attempt_budget_ms(3000, 75));   // 150 ms between peers: 1.9 s do
  EXPECT_EQ(3000u, direct_attempt_budget_ms(3000, 150));  // 300 ms: 2.8 s do
  // 600 ms between the peers (300 ms per relay leg) needs ~3.2 s: 1 s + 6 x 600 ms.
  EXPECT_EQ(4600u, direct_attempt_budget_ms(3000, 300));
  EXPECT_EQ(kMaxDirectBudgetMs, direct_attempt_budget_ms(3000, 5000));
  EXPECT_EQ(30000u, direct_attempt_budget_ms(30000, 300));  // a longer configured one stays
}

}  // namespace
}  // namespace parley::path

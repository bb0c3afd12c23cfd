#include "base/token_bucket.h"

#include <gtest/gtest.h>

namespace parley {
namespace {

constexpr Timestamp kMs = kNanosPerMilli;

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(100, 10);  // 100/s, burst 10
  Timestamp t = 1000 * kMs;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.take(t)) << i;
  EXPECT_FALSE(b.take(t));
  t += 10 * kMs;  // one token per 10 ms
  EXPECT_TRUE(b.take(t));
  EXPECT_FALSE(b.take(t));
  t += 5 * kMs;
  EXPECT_FALSE(b.take(t));
  t += 5 * kMs;
  EXPECT_TRUE(b.take(t));
}

TEST(TokenBucket, RefillIsCappedAtBurstAndLongIdleDoesNotOverflow) {
  TokenBucket b(1000000000, 5);
  Timestamp t = 1;
  EXPECT_TRUE(b.take(t, 5));
  t += kNanosPerSecond * 86400 * 365;  // a year idle at a huge rate
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.take(t));
  EXPECT_FALSE(b.take(t));
}

TEST(TokenBucket, TimeGoingBackwardsRefillsNothingAndZeroRateIsUnlimited) {
  TokenBucket b(10, 1);
  EXPECT_TRUE(b.take(100 * kMs));
  EXPECT_FALSE(b.take(50 * kMs));
  TokenBucket unlimited(0, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.take(0, 1000));
}

TEST(TokenBucket, ByteCountsLargerThanTheBurstAreRefused) {
  TokenBucket b(1000, 1500);
  EXPECT_FALSE(b.take(0, 1501));
  EXPECT_TRUE(b.take(0, 1500));
}

}  // namespace
}  // namespace parley

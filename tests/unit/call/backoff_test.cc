#include "call/backoff.h"

#include <gtest/gtest.h>

namespace parley::call {
namespace {

TEST(Backoff, DoublesWithinJitterBoundsUpToTheCap) {
  Backoff b(200, 10000);
  uint32_t expect = 200;
  for (int i = 0; i < 10; ++i) {
    const uint32_t lo = b.next(0);
    EXPECT_EQ(lo, expect - expect / 2) << i;
    b = Backoff(200, 10000);
    for (int j = 0; j < i; ++j) b.next(0);
    const uint32_t hi = b.next(0xffffffffu);
    EXPECT_GE(hi, expect - expect / 2);
    EXPECT_LE(hi, expect);
    b = Backoff(200, 10000);
    for (int j = 0; j <= i; ++j) b.next(12345);
    expect = expect * 2 > 10000 ? 10000 : expect * 2;
  }
}

TEST(Backoff, NeverOverflowsAfterManyAttemptsAndResets) {
  Backoff b(1, 0xffffffffu);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t d = b.next(0xffffffffu);
    EXPECT_GE(d, 1u);
  }
  EXPECT_EQ(b.attempts(), 64u);  // saturated, no wrap
  b.reset();
  EXPECT_EQ(b.next(0), 1u);
}

}  // namespace
}  // namespace parley::call

#include "quality/min_rtt.h"

#include <gtest/gtest.h>

namespace parley::quality {
namespace {

TEST(MinRttWindow, FollowsARouteChangeWithinTheWindow) {
  MinRttWindow w;
  EXPECT_EQ(0u, w.min(0));
  for (int64_t t = 0; t < 5000; t += 50) w.sample(t % 1000 == 0 ? 20 : 25, t);
  EXPECT_EQ(20u, w.min(5000));
  EXPECT_EQ(0u, queue_ms(20, w.min(5000)));
  // A queue builds: the smoothed RTT rises, the base does not.
  EXPECT_EQ(80u, queue_ms(100, w.min(5000)));
  // The route changes to one 60 ms longer: for up to 10 s that reads as a queue, then the
  // base follows the new path.
  for (int64_t t = 5000; t < 16000; t += 50) w.sample(80, t);
  EXPECT_EQ(80u, w.min(16000));
  EXPECT_EQ(2u, queue_ms(82, w.min(16000)));
  w.sample(0, 16000);  // no sample: ignored
  EXPECT_EQ(80u, w.min(16000));
}

}  // namespace
}  // namespace parley::quality

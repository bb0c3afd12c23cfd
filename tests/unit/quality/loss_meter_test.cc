#include "quality/loss_meter.h"

#include <gtest/gtest.h>

namespace parley::quality {
namespace {

TEST(LossMeter, SlidingSecondOfFrameIndices) {
  LossMeter m;
  EXPECT_EQ(0, m.permille(0));
  // 50 frames/s, every 10th lost, starting at an index near the 32-bit wrap of the wire
  // sequence (the meter sees 64-bit indices: nothing special happens).
  const uint64_t base = (1ull << 32) - 20;
  for (uint64_t i = 0; i < 100; ++i) {
    if (i % 10 != 9) m.on_frame(base + i, int64_t(i) * 20);
  }
  EXPECT_NEAR(100, m.permille(1990), 25);
  // Then clean: after a second the window holds only clean frames.
  for (uint64_t i = 100; i < 160; ++i) m.on_frame(base + i, int64_t(i) * 20);
  EXPECT_EQ(0, m.permille(3190));
  // Silence (DTX): nothing expected, nothing lost; the old window ages out.
  EXPECT_EQ(0, m.permille(10000));
  // Reordering within the window is not loss.
  m.on_frame(base + 301, 10000);
  m.on_frame(base + 300, 10010);
  m.on_frame(base + 302, 10020);
  EXPECT_EQ(0, m.permille(10030));
}

TEST(LossMeter, AStepToTenPercentShowsWithinTheFirstSecond) {
  LossMeter m;
  uint64_t idx = 0;
  int64_t t = 0;
  for (; t < 2000; t += 20) m.on_frame(idx++, t);
  EXPECT_EQ(0, m.permille(t));
  for (; t < 2500; t += 20) {  // half a second at one frame in 10 lost
    if (idx % 10 != 3) m.on_frame(idx, t);
    ++idx;
  }
  EXPECT_GE(m.permille(t), 40);
}

TEST(LossMeter, LowFrameRatesAreJudgedOnMoreFrames) {
  // 60 ms frames (16.7/s): one second holds 17 frames; the meter looks back up to two.
  LossMeter m;
  uint64_t idx = 0;
  for (int64_t t = 0; t < 4000; t += 60) {
    if (idx % 10 != 5) m.on_frame(idx, t);
    ++idx;
  }
  // 2 s hold ~33 frames of which 3-4 are lost: close to 10 %, not 1/17 or 2/17.
  EXPECT_NEAR(100, m.permille(3990), 25);
  // Two clean seconds later nothing is left of the loss.
  for (int64_t t = 4020; t < 7600; t += 60) m.on_frame(idx++, t);
  EXPECT_EQ(0, m.permille(7590));
}

}  // namespace
}  // namespace parley::quality

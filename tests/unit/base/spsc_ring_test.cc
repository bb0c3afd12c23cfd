#include "base/spsc_ring.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

namespace parley {
namespace {

TEST(SpscRing, CapacityRoundsUpToPowerOfTwo) {
  EXPECT_EQ(SpscRing<int16_t>(0).capacity(), 1u);
  EXPECT_EQ(SpscRing<int16_t>(960).capacity(), 1024u);
  EXPECT_EQ(SpscRing<int16_t>(1024).capacity(), 1024u);
}

TEST(SpscRing, WriteReadPartialAndFull) {
  SpscRing<int16_t> ring(8);
  int16_t in[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(ring.write(in, 10), 8u);  // only what fits
  EXPECT_EQ(ring.write_available(), 0u);
  EXPECT_EQ(ring.write(in, 1), 0u);
  int16_t out[10] = {};
  EXPECT_EQ(ring.read(out, 3), 3u);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[2], 3);
  EXPECT_EQ(ring.write(in + 8, 2), 2u);  // wraps inside the buffer
  EXPECT_EQ(ring.read_available(), 7u);
  EXPECT_EQ(ring.read(out, 10), 7u);
  const int16_t expect[7] = {4, 5, 6, 7, 8, 9, 10};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(out[i], expect[i]) << i;
  EXPECT_EQ(ring.read(out, 1), 0u);
  EXPECT_EQ(ring.read(nullptr, 0), 0u);
}

// Positions are free-running counters: start just below SIZE_MAX so they wrap mid-test.
TEST(SpscRing, PositionCounterWrapAround) {
  const size_t start = std::numeric_limits<size_t>::max() - 5;
  SpscRing<uint32_t> ring(4, start);
  uint32_t next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    uint32_t in[3] = {next_in, next_in + 1, next_in + 2};
    ASSERT_EQ(ring.write(in, 3), 3u);
    next_in += 3;
    ASSERT_EQ(ring.read_available(), 3u);
    ASSERT_EQ(ring.write_available(), 1u);
    uint32_t out[3];
    ASSERT_EQ(ring.read(out, 3), 3u);
    for (uint32_t v : out) ASSERT_EQ(v, next_out++);
  }
}

// One producer thread, one consumer thread, odd chunk sizes, millions of samples: every
// sample arrives exactly once, in order. Run under ASan/TSan by the sanitizer builds.
TEST(SpscRing, TwoThreadStress) {
  constexpr uint32_t kTotal = 3000000;
  SpscRing<uint32_t> ring(1000);
  std::thread producer([&] {
    uint32_t next = 0;
    uint32_t chunk[97];
    size_t size = 1;
    while (next < kTotal) {
      size_t n = std::min<size_t>(size, kTotal - next);
      for (size_t i = 0; i < n; ++i) chunk[i] = next + uint32_t(i);
      size_t w = ring.write(chunk, n);
      next += uint32_t(w);
      size = size % 97 + 1;
      if (w == 0) std::this_thread::yield();
    }
  });
  uint32_t expected = 0;
  bool in_order = true;
  uint32_t buf[61];
  size_t size = 1;
  while (expected < kTotal) {
    size_t r = ring.read(buf, size);
    for (size_t i = 0; i < r; ++i) {
      if (buf[i] != expected) in_order = false;
      ++expected;
    }
    size = size % 61 + 1;
    if (r == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(expected, kTotal);
  EXPECT_EQ(ring.read_available(), 0u);
}

}  // namespace
}  // namespace parley

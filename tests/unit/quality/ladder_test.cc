#include "quality/ladder.h"

#include <gtest/gtest.h>

#include "media/voice_profile.h"

namespace parley::quality {
namespace {

TEST(Ladder, OneRungPerProfileWithStricterEntryThanKeep) {
  ASSERT_EQ(media::voice_profile_count(), ladder_size());
  for (uint8_t p = 0; p < ladder_size(); ++p) {
    const Rung &r = rung(p);
    EXPECT_EQ(p, r.profile);
    EXPECT_LE(r.enter.loss_permille, r.keep.loss_permille);
    EXPECT_LE(r.enter.queue_ms, r.keep.queue_ms);
    EXPECT_LE(r.enter.jitter_ms, r.keep.jitter_ms);
    if (p > 0) {  // lower rungs tolerate at least as much
      EXPECT_GE(r.keep.loss_permille, rung(uint8_t(p - 1)).keep.loss_permille);
      EXPECT_GE(r.keep.queue_ms, rung(uint8_t(p - 1)).keep.queue_ms);
      // Hysteresis across rungs: entering p-1 needs better than keeping p-1 needs, so a
      // report right at p's entry limit never also forces p-1 down.
      EXPECT_LT(rung(uint8_t(p - 1)).enter.loss_permille, rung(uint8_t(p - 1)).keep.loss_permille);
    }
  }
  EXPECT_EQ(rung(uint8_t(ladder_size() - 1)).profile, rung(200).profile);  // the floor
}

TEST(Ladder, TheWeakestLimitDecidesAndSaysWhy) {
  Reason why;
  EXPECT_EQ(0, best_to_keep(LinkReport{}, &why));
  EXPECT_EQ(Reason::kNone, why);
  // 10 % loss: past FEC's reach (profiles 0-2), within redundancy's (3).
  EXPECT_EQ(3, best_to_keep(LinkReport{100, 0, 0, 0}, &why));
  EXPECT_EQ(Reason::kLoss, why);
  EXPECT_EQ(2, best_to_keep(LinkReport{0, 0, 0, 70}, &why));
  EXPECT_EQ(Reason::kCongestion, why);
  EXPECT_EQ(1, best_to_keep(LinkReport{0, 50, 0, 0}, &why));
  EXPECT_EQ(Reason::kJitter, why);
  EXPECT_EQ(3, best_to_keep(LinkReport{200, 0, 0, 0}, &why));  // redundancy still best at 20 %
  EXPECT_EQ(4, best_to_keep(LinkReport{400, 0, 0, 0}, &why));
  EXPECT_EQ(4, best_to_keep(LinkReport{1000, UINT32_MAX, 0, UINT32_MAX}, &why));
  // Entering is stricter: 1 % loss keeps profile 0 but does not let a call climb into it.
  EXPECT_EQ(0, best_to_keep(LinkReport{10, 0, 0, 0}, nullptr));
  EXPECT_EQ(1, best_to_enter(LinkReport{10, 0, 0, 0}));
  EXPECT_STREQ("congestion", reason_name(Reason::kCongestion));
  EXPECT_STREQ("unknown", reason_name(Reason(99)));
}

// A young jitter window's reading never forces a downgrade but still blocks an upgrade.
TEST(Ladder, SettlingJitterIsCappedAtTheKeepLimit) {
  for (size_t i = 0; i + 1 < ladder_size(); ++i) {
    const uint8_t p = uint8_t(i);
    const uint32_t keep = rung(p).keep.jitter_ms;
    EXPECT_EQ(keep, settled_jitter_ms(1000, 100, p)) << int(p);
    EXPECT_EQ(7u, settled_jitter_ms(7, 100, p));
    EXPECT_EQ(1000u, settled_jitter_ms(1000, kJitterSettleMs, p));  // settled: as measured
    LinkReport r;
    r.jitter_ms = settled_jitter_ms(1000, 100, p);
    EXPECT_LE(best_to_keep(r, nullptr), p);  // kept
    if (p > 0) {
      EXPECT_GE(best_to_enter(r), p);  // no climb above it
    }
  }
}

}  // namespace
}  // namespace parley::quality

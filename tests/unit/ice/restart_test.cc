#include "ice/restart.h"

#include <gtest/gtest.h>

namespace parley::ice {
namespace {

using Incoming = RestartSequencer::Incoming;

TEST(RestartSequencer, ARestartIsAnsweredUnderItsGeneration) {
  RestartSequencer a, b;
  const uint64_t g = a.begin_local();
  EXPECT_EQ(1u, g);
  EXPECT_TRUE(a.awaiting_answer());
  EXPECT_EQ(Incoming::kAdopt, b.on_remote(g));  // b starts generation 1 and answers
  EXPECT_EQ(1u, b.generation());
  EXPECT_FALSE(b.awaiting_answer());
  EXPECT_EQ(Incoming::kAnswer, a.on_remote(g));
  EXPECT_FALSE(a.awaiting_answer());
}

TEST(RestartSequencer, StaleAndRepeatedGenerationsAreIgnored) {
  RestartSequencer a;
  a.begin_local();
  EXPECT_EQ(Incoming::kAnswer, a.on_remote(1));
  EXPECT_EQ(Incoming::kStale, a.on_remote(1));  // a duplicate of the answer
  EXPECT_EQ(Incoming::kStale, a.on_remote(0));  // the offers' generation
  EXPECT_EQ(Incoming::kAdopt, a.on_remote(5));  // the peer may skip generations
  EXPECT_EQ(Incoming::kStale, a.on_remote(4));
  EXPECT_EQ(5u, a.generation());
}

// Both sides restart at once (both saw the network change): each announcement is the other's
// answer, and neither answers again.
TEST(RestartSequencer, CrossingRestartsAnswerEachOther) {
  RestartSequencer a, b;
  const uint64_t ga = a.begin_local(), gb = b.begin_local();
  ASSERT_EQ(ga, gb);
  EXPECT_EQ(Incoming::kAnswer, a.on_remote(gb));
  EXPECT_EQ(Incoming::kAnswer, b.on_remote(ga));
  EXPECT_EQ(a.generation(), b.generation());
}

// A side restarts again before its first restart was answered: the answer to the first is
// stale, the peer adopts both in turn, and the second answer completes it.
TEST(RestartSequencer, ARestartDuringARestartWinsOverTheOlderAnswer) {
  RestartSequencer a, b;
  const uint64_t g1 = a.begin_local();
  const uint64_t g2 = a.begin_local();
  EXPECT_EQ(g1 + 1, g2);
  EXPECT_EQ(Incoming::kAdopt, b.on_remote(g1));
  EXPECT_EQ(Incoming::kStale, a.on_remote(g1));  // b's answer to g1
  EXPECT_TRUE(a.awaiting_answer());
  EXPECT_EQ(Incoming::kAdopt, b.on_remote(g2));
  EXPECT_EQ(Incoming::kAnswer, a.on_remote(g2));
  EXPECT_EQ(g2, b.generation());
}

// Restarts that cross at different generations: the older one is stale at the newer side,
// which the older side then adopts.
TEST(RestartSequencer, CrossingAtDifferentGenerationsSettlesOnTheNewer) {
  RestartSequencer a, b;
  a.begin_local();
  b.on_remote(1);
  a.on_remote(1);  // both at generation 1, complete
  a.begin_local();
  const uint64_t ga = a.begin_local();  // a is at 3
  const uint64_t gb = b.begin_local();  // b announces 2
  EXPECT_EQ(Incoming::kStale, a.on_remote(gb));
  EXPECT_EQ(Incoming::kAdopt, b.on_remote(ga));
  EXPECT_FALSE(b.awaiting_answer());  // b's own restart is abandoned for a's
  EXPECT_EQ(Incoming::kAnswer, a.on_remote(ga));
}

}  // namespace
}  // namespace parley::ice

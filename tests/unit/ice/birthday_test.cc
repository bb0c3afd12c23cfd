#include "ice/birthday.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "base/error.h"
#include "test_address.h"

namespace parley::ice {
namespace {

constexpr Timestamp kMs = kNanosPerMilli;

SocketAddress A(const char *s) { return testing::addr(s); }

NatBehavior nat(NatMapping m, PortAllocation a) {
  NatBehavior b;
  b.mapping = m;
  b.allocation = a;
  return b;
}

TEST(Birthday, OnlyARandomDependentNatFacingAnotherKindProbes) {
  const auto ad = NatMapping::kAddressDependent, ei = NatMapping::kEndpointIndependent,
             unknown = NatMapping::kUnknown;
  const auto random = PortAllocation::kRandom, seq = PortAllocation::kSequential,
             kept = PortAllocation::kPreserved;
  EXPECT_EQ(BirthdayRole::kHard, birthday_role(nat(ad, random), ei, kept));
  EXPECT_EQ(BirthdayRole::kHard, birthday_role(nat(ad, random), unknown, PortAllocation::kUnknown));
  EXPECT_EQ(BirthdayRole::kEasy, birthday_role(nat(ei, kept), ad, random));
  EXPECT_EQ(BirthdayRole::kEasy, birthday_role(nat(unknown, PortAllocation::kUnknown), ad, random));
  // Two hard NATs cannot meet this way; a sequential one is predicted instead.
  EXPECT_EQ(BirthdayRole::kNone, birthday_role(nat(ad, random), ad, random));
  EXPECT_EQ(BirthdayRole::kNone, birthday_role(nat(ad, random), ad, seq));
  EXPECT_EQ(BirthdayRole::kNone, birthday_role(nat(ad, seq), ei, kept));
  EXPECT_EQ(BirthdayRole::kNone, birthday_role(nat(ei, kept), ad, seq));
  EXPECT_EQ(BirthdayRole::kNone, birthday_role(nat(ei, kept), ei, kept));
  EXPECT_STREQ("hard", birthday_role_name(BirthdayRole::kHard));
}

TEST(Birthday, TheEasySideProbesDistinctRandomPortsOfOneAddressAtItsPace) {
  const Timestamp t0 = 1000 * kMs;
  BirthdaySchedule s(BirthdayRole::kEasy, A("203.0.113.20:9120"), kBirthdayProbes,
                     kBirthdayProbeIntervalUs, t0, 42);
  SocketAddress to;
  uint32_t k = 0;
  EXPECT_FALSE(s.poll(t0 - 1, &to, &k));
  EXPECT_EQ(t0, s.next_deadline());
  std::set<uint16_t> ports;
  Timestamp now = t0;
  uint32_t most_in_a_second = 0, in_this_second = 0;
  Timestamp second_start = t0;
  while (s.next_deadline() != 0) {
    now = s.next_deadline();
    if (now - second_start >= kNanosPerSecond) {
      second_start = now;
      in_this_second = 0;
    }
    while (s.poll(now, &to, &k)) {
      EXPECT_EQ("203.0.113.20", to.ip_string());
      EXPECT_GE(to.port(), kBirthdayFirstPort);
      EXPECT_TRUE(ports.insert(to.port()).second) << "port " << to.port() << " twice";
      most_in_a_second = std::max(most_in_a_second, ++in_this_second);
    }
  }
  EXPECT_EQ(kBirthdayProbes, ports.size());
  EXPECT_EQ(kBirthdayProbes, s.sent());
  EXPECT_LE(most_in_a_second, 1000000 / kBirthdayProbeIntervalUs);
  EXPECT_EQ(t0 + Timestamp(kBirthdayProbes - 1) * kBirthdayProbeIntervalUs * 1000, now);
  EXPECT_FALSE(s.poll(now + kNanosPerSecond, &to, &k));  // the budget is spent
}

// A loop that stalls (CI load, a sanitizer) must not pay the overdue probes back in a burst:
// that would put more than the pace's worth into the second around the stall.
TEST(Birthday, ALateCallerGetsOneProbeNotABurstAndThePaceHoldsInEverySecond) {
  BirthdaySchedule s(BirthdayRole::kEasy, A("203.0.113.20:1"), 10, 5000, 0, 7);
  SocketAddress to;
  uint32_t k = 0, n = 0;
  while (s.poll(22 * kMs, &to, &k)) ++n;
  EXPECT_EQ(1u, n);
  EXPECT_EQ(27 * kMs, s.next_deadline());
  EXPECT_FALSE(s.poll(26 * kMs, &to, &k));
  while (s.poll(kNanosPerSecond, &to, &k)) ++n;
  EXPECT_EQ(2u, n);  // still one per wake-up
  while (s.next_deadline() != 0) ASSERT_TRUE(s.poll(s.next_deadline(), &to, &k));
  EXPECT_EQ(10u, s.sent());  // the budget is the count, however late

  // Any window of 1 s holds at most 1 s / interval + 1 probes, wake-ups late or not.
  BirthdaySchedule p(BirthdayRole::kEasy, A("203.0.113.20:1"), kBirthdayProbes,
                     kBirthdayProbeIntervalUs, 1000 * kMs, 9);
  std::vector<Timestamp> sent;
  Timestamp now = 0;
  uint64_t jitter = 1;
  while (p.next_deadline() != 0) {
    jitter = jitter * 6364136223846793005ull + 1442695040888963407ull;
    // Every seventh wake-up stalls up to 40 ms; the others are up to 2 ms late.
    const Timestamp late = (jitter >> 33) % 7 == 0 ? (jitter >> 40) % (40 * kMs)
                                                   : (jitter >> 40) % (2 * kMs);
    now = std::max(now, p.next_deadline()) + late;
    while (p.poll(now, &to, &k)) sent.push_back(now);
  }
  size_t most = 0;
  for (size_t i = 0, j = 0; i < sent.size(); ++i) {
    while (j < sent.size() && sent[j] - sent[i] < kNanosPerSecond) ++j;
    most = std::max(most, j - i);
  }
  EXPECT_LE(most, size_t(1000000 / kBirthdayProbeIntervalUs + 1));
  EXPECT_EQ(size_t(kBirthdayProbes), sent.size());
}

TEST(Birthday, TheHardSideSendsOneProbePerSocketToThePeer) {
  const SocketAddress peer = A("203.0.113.30:40000");
  BirthdaySchedule s(BirthdayRole::kHard, peer, 4, kBirthdayOpenIntervalUs, 0, 0);
  SocketAddress to;
  uint32_t k = 0;
  for (uint32_t want = 0; want < 4; ++want) {
    ASSERT_TRUE(s.poll(s.next_deadline(), &to, &k));
    EXPECT_EQ(peer, to);
    EXPECT_EQ(want, k);
  }
  EXPECT_EQ(0u, s.next_deadline());
}

TEST(Birthday, StopEndsTheScheduleAndKeepsTheCount) {
  BirthdaySchedule s(BirthdayRole::kEasy, A("203.0.113.20:1"), 100, 5000, 0, 1);
  SocketAddress to;
  uint32_t k = 0;
  for (Timestamp t = 0; t <= 10 * kMs; t += 5 * kMs) ASSERT_TRUE(s.poll(t, &to, &k));
  s.stop();
  EXPECT_EQ(3u, s.sent());
  EXPECT_EQ(0u, s.next_deadline());
  EXPECT_FALSE(s.poll(kNanosPerSecond, &to, &k));
}

TEST(Birthday, NoRoleOrNoAddressMeansNoProbes) {
  SocketAddress to;
  uint32_t k = 0;
  BirthdaySchedule none(BirthdayRole::kNone, A("203.0.113.20:1"), 100, 5000, 0, 1);
  EXPECT_FALSE(none.poll(kNanosPerSecond, &to, &k));
  BirthdaySchedule unset(BirthdayRole::kEasy, SocketAddress(), 100, 5000, 0, 1);
  EXPECT_FALSE(unset.poll(kNanosPerSecond, &to, &k));
  EXPECT_EQ(0u, unset.next_deadline());
}

}  // namespace
}  // namespace parley::ice

#include "ice/nat_behavior.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "test_address.h"

namespace parley::ice {
namespace {

SocketAddress A(const char *s) { return testing::addr(s); }

MappingSample S(const char *server, const char *mapped) { return {A(server), A(mapped)}; }

TEST(NatBehavior, OneServerTellsOnlyWhetherThePortIsKept) {
  NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:40000")}, 40000);
  EXPECT_EQ(NatMapping::kUnknown, b.mapping);
  EXPECT_EQ(PortAllocation::kPreserved, b.allocation);
  b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:51234")}, 40000);
  EXPECT_EQ(PortAllocation::kUnknown, b.allocation);
  EXPECT_EQ(NatMapping::kUnknown, classify_nat({}, 40000).mapping);
}

TEST(NatBehavior, TheSameMappingForEveryServerIsEndpointIndependent) {
  const NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:40000"),
                                      S("198.51.100.2:3478", "203.0.113.5:40000")},
                                     40000);
  EXPECT_EQ(NatMapping::kEndpointIndependent, b.mapping);
  EXPECT_EQ(PortAllocation::kPreserved, b.allocation);
  EXPECT_TRUE(predicted_candidates(b, A("10.0.1.2:40000"), 1000).empty());
}

TEST(NatBehavior, SmallStepsOneWayAreSequential) {
  // Another host's flow took a port between the second and third mapping.
  const NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:20001"),
                                      S("198.51.100.2:3478", "203.0.113.5:20002"),
                                      S("198.51.100.3:3478", "203.0.113.5:20004")},
                                     40000);
  EXPECT_EQ(NatMapping::kAddressDependent, b.mapping);
  EXPECT_EQ(PortAllocation::kSequential, b.allocation);
  EXPECT_EQ(1, b.step);
  EXPECT_EQ(A("203.0.113.5:20004"), b.last);
  const auto p = predicted_candidates(b, A("10.0.1.2:40000"), 1000);
  ASSERT_EQ(size_t(kPredictedPorts), p.size());
  for (int k = 0; k < kPredictedPorts; ++k) {
    EXPECT_EQ(20005 + k, p[k].address.port());
    EXPECT_EQ("203.0.113.5", p[k].address.ip_string());
    EXPECT_EQ(CandidateType::kServerReflexive, p[k].type);
    EXPECT_EQ(A("10.0.1.2:40000"), p[k].related);
    EXPECT_LT(p[k].priority, k == 0 ? 1000u : p[k - 1].priority);
    if (k > 0) {
      EXPECT_NE(p[k].foundation, p[k - 1].foundation);  // checked in parallel
    }
  }
}

TEST(NatBehavior, DownwardStepsPredictDownwardAndStopAtPortOne) {
  const NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:9"),
                                      S("198.51.100.2:3478", "203.0.113.5:7")},
                                     40000);
  EXPECT_EQ(PortAllocation::kSequential, b.allocation);
  EXPECT_EQ(-2, b.step);
  const auto p = predicted_candidates(b, A("10.0.1.2:40000"), 1000);
  ASSERT_EQ(3u, p.size());  // 5, 3, 1
  EXPECT_EQ(1, p.back().address.port());
}

TEST(NatBehavior, FarOrBackAndForthStepsAreRandom) {
  EXPECT_EQ(PortAllocation::kRandom,
            classify_nat({S("198.51.100.1:3478", "203.0.113.5:20001"),
                          S("198.51.100.2:3478", "203.0.113.5:48213")},
                         40000)
                .allocation);
  const NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:20001"),
                                      S("198.51.100.2:3478", "203.0.113.5:20003"),
                                      S("198.51.100.3:3478", "203.0.113.5:20002")},
                                     40000);
  EXPECT_EQ(NatMapping::kAddressDependent, b.mapping);
  EXPECT_EQ(PortAllocation::kRandom, b.allocation);
  EXPECT_TRUE(predicted_candidates(b, A("10.0.1.2:40000"), 1000).empty());
}

TEST(NatBehavior, RepeatedServersUnansweredSamplesAndOtherFamiliesAreSkipped) {
  const NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:20001"),
                                      S("198.51.100.1:3478", "203.0.113.5:30000"),
                                      {A("198.51.100.9:3478"), SocketAddress()},
                                      S("[2001:db8::1]:3478", "[2001:db8::5]:40000"),
                                      S("198.51.100.2:3478", "203.0.113.5:20001")},
                                     40000);
  EXPECT_EQ(NatMapping::kEndpointIndependent, b.mapping);
  EXPECT_EQ(A("203.0.113.5:20001"), b.last);
}

// Two public addresses (a NAT with a pool, "address pooling: arbitrary") cannot be predicted.
TEST(NatBehavior, APoolOfPublicAddressesIsNotSequential) {
  const NatBehavior b = classify_nat({S("198.51.100.1:3478", "203.0.113.5:20001"),
                                      S("198.51.100.2:3478", "203.0.113.6:20002")},
                                     40000);
  EXPECT_EQ(NatMapping::kAddressDependent, b.mapping);
  EXPECT_EQ(PortAllocation::kRandom, b.allocation);
}

}  // namespace
}  // namespace parley::ice

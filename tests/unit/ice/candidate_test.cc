#include "ice/candidate.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "test_address.h"

namespace parley::ice {
namespace {

using parley::testing::addr;

TEST(Candidate, PriorityFormula) {
  EXPECT_EQ(candidate_priority(CandidateType::kHost, 65535, 1), 2130706431u);
  EXPECT_EQ(candidate_priority(CandidateType::kServerReflexive, 65535, 1), 1694498815u);
  EXPECT_EQ(candidate_priority(CandidateType::kRelay, 0, 1), 255u);
}

TEST(Candidate, FoundationRules) {
  const SocketAddress b1 = addr("10.0.0.2:1"), b2 = addr("10.0.0.3:1");
  const SocketAddress s1 = addr("203.0.113.1:3478"), s2 = addr("203.0.113.2:3478");
  EXPECT_EQ(candidate_foundation(CandidateType::kServerReflexive, b1, s1),
            candidate_foundation(CandidateType::kServerReflexive, addr("10.0.0.2:9"),
                                 addr("203.0.113.1:1")));  // ports do not matter
  EXPECT_NE(candidate_foundation(CandidateType::kServerReflexive, b1, s1),
            candidate_foundation(CandidateType::kServerReflexive, b1, s2));
  EXPECT_NE(candidate_foundation(CandidateType::kServerReflexive, b1, s1),
            candidate_foundation(CandidateType::kServerReflexive, b2, s1));
  EXPECT_NE(candidate_foundation(CandidateType::kHost, b1, SocketAddress()),
            candidate_foundation(CandidateType::kServerReflexive, b1, SocketAddress()));
}

TEST(Candidate, RoundTrip) {
  Candidate c;
  c.foundation = "a1b2c3d4";
  c.priority = 1694498815;
  c.address = addr("198.51.100.1:40000");
  c.type = CandidateType::kServerReflexive;
  c.related = addr("10.0.0.2:5000");
  const std::string s = c.to_string();
  EXPECT_EQ(s, "candidate:a1b2c3d4 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr "
               "10.0.0.2 rport 5000");
  Candidate back;
  ASSERT_EQ(Candidate::parse(s, &back), kOk);
  EXPECT_EQ(back, c);

  Candidate v6;
  ASSERT_EQ(Candidate::parse("candidate:x+/9 2 UDP 2130706430 2001:db8::1 5000 typ host", &v6),
            kOk);
  EXPECT_EQ(v6.component, 2u);
  EXPECT_EQ(v6.address, addr("[2001:db8::1]:5000"));
  EXPECT_FALSE(v6.related.is_set());
}

TEST(Candidate, StrictParsing) {
  const char *bad[] = {
      "",
      "candidate:",
      "a:1 1 udp 1 1.2.3.4 5 typ host",
      "candidate:1 1 udp 1 1.2.3.4 5 typ host ",
      "candidate:1  1 udp 1 1.2.3.4 5 typ host",
      "candidate:1 1 tcp 1 1.2.3.4 5 typ host",
      "candidate:1 0 udp 1 1.2.3.4 5 typ host",
      "candidate:1 1 udp 0 1.2.3.4 5 typ host",
      "candidate:1 1 udp 2147483648 1.2.3.4 5 typ host",
      "candidate:1 1 udp 1 1.2.3.4 65536 typ host",
      "candidate:1 1 udp 1 example.com 5 typ host",
      "candidate:1 1 udp 1 abcd.local 5 typ host",
      "candidate:1 1 udp 1 1.2.3.4 5 typ cloud",
      "candidate:1 1 udp 1 1.2.3.4 5 type host",
      "candidate:1 1 udp 1 1.2.3.4 5 typ srflx raddr 1.2.3.4",
      "candidate:1 1 udp 1 1.2.3.4 5 typ srflx raddr ::1 rport 5",
      "candidate:1 1 udp 1 1.2.3.4 5 typ host generation 0",
      "candidate:bad_char 1 udp 1 1.2.3.4 5 typ host",
      "candidate:123456789012345678901234567890123 1 udp 1 1.2.3.4 5 typ host",
      "candidate:1 1 udp 01 1.2.3.4 5 typ host",
      "candidate:1 1 udp 1 1.2.3.4 0 typ host",
      "candidate:1 1 udp 1 0.0.0.0 5 typ host",
      "candidate:1 1 udp 1 :: 5 typ host",
      "candidate:1 1 udp 1 224.0.0.1 5 typ host",
      "candidate:1 1 udp 1 255.255.255.255 5 typ host",
      "candidate:1 1 udp 1 ff02::1 5 typ host",
  };
  for (const char *s : bad) {
    Candidate c;
    EXPECT_EQ(Candidate::parse(s, &c), kErrCandidateInvalid) << s;
  }
}

}  // namespace
}  // namespace parley::ice

namespace parley::ice {
namespace {

TEST(HostOrder, IPv6GlobalRandomIdentifiersComeFirstAndEui64Last) {
  std::vector<SocketAddress> in;
  for (const char *ip : {"192.168.1.5", "fd00:1::21a:2bff:fe3c:4d5e", "2001:db8::21a:2bff:fe3c:4d5e",
                         "fd00:1::8c1f:3a2b:9e0d:7f11", "10.0.0.7", "2001:db8::8c1f:3a2b:9e0d:7f11",
                         "2001:db8::d3a9:41e2:5b77:c001"}) {
    SocketAddress a;
    ASSERT_EQ(kOk, SocketAddress::parse_ip(ip, 0, &a)) << ip;
    in.push_back(a);
  }
  order_host_addresses(&in);
  std::vector<std::string> got;
  for (const auto &a : in) got.push_back(a.ip_string());
  const std::vector<std::string> want = {
      "2001:db8::8c1f:3a2b:9e0d:7f11", "2001:db8::d3a9:41e2:5b77:c001",  // random, in order
      "2001:db8::21a:2bff:fe3c:4d5e",                                    // EUI-64
      "fd00:1::8c1f:3a2b:9e0d:7f11", "fd00:1::21a:2bff:fe3c:4d5e",       // unique-local
      "192.168.1.5", "10.0.0.7"};
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace parley::ice

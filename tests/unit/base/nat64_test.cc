#include "base/nat64.h"

#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"

namespace parley {
namespace {

SocketAddress addr(const char *ip, uint16_t port = 7350) {
  SocketAddress a;
  EXPECT_EQ(kOk, SocketAddress::parse_ip(ip, port, &a)) << ip;
  return a;
}

Nat64Prefix prefix_of(const char *ip, uint8_t length) {
  Nat64Prefix p;
  std::memcpy(p.bytes, addr(ip).ip_bytes(), length / 8);
  p.length = length;
  return p;
}

// RFC 6052 2.4, the table of 192.0.2.33 embedded at every prefix length.
struct Layout {
  const char *prefix;
  uint8_t length;
  const char *synthesized;
};
const Layout kRfc6052[] = {
    {"2001:db8::", 32, "2001:db8:c000:221::"},
    {"2001:db8:100::", 40, "2001:db8:1c0:2:21::"},
    {"2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"},
    {"2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"},
    {"2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"},
    {"2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33"},
};

TEST(Nat64, SynthesisMatchesEveryLayoutOfRfc6052) {
  for (const Layout &l : kRfc6052) {
    SocketAddress out;
    ASSERT_EQ(kOk, nat64_synthesize(prefix_of(l.prefix, l.length), addr("192.0.2.33"), &out));
    EXPECT_EQ(out, addr(l.synthesized)) << "/" << int(l.length) << ": " << out.to_string();
    SocketAddress back;
    ASSERT_EQ(kOk, nat64_extract(prefix_of(l.prefix, l.length), out, &back));
    EXPECT_EQ(back, addr("192.0.2.33"));
  }
}

TEST(Nat64, TheWellKnownPrefixEmbedsInTheLastFourOctets) {
  SocketAddress out;
  ASSERT_EQ(kOk, nat64_synthesize(prefix_of("64:ff9b::", 96), addr("203.0.113.5", 9), &out));
  EXPECT_EQ(out.to_string(), "[64:ff9b::cb00:7105]:9");
}

TEST(Nat64, TheDiscoveryAnswerGivesThePrefixAtEveryLength) {
  for (const Layout &l : kRfc6052) {
    const Nat64Prefix want = prefix_of(l.prefix, l.length);
    SocketAddress wka;
    ASSERT_EQ(kOk, nat64_synthesize(want, addr("192.0.0.171"), &wka));
    Nat64Prefix got;
    ASSERT_TRUE(nat64_prefix_from({addr("192.0.0.170"), wka}, &got)) << int(l.length);
    EXPECT_TRUE(got == want) << "/" << int(l.length) << " came back as /" << int(got.length);
  }
}

TEST(Nat64, NoSynthesizedAnswerMeansNoDns64) {
  Nat64Prefix got;
  EXPECT_FALSE(nat64_prefix_from({addr("192.0.0.170"), addr("192.0.0.171")}, &got));
  EXPECT_FALSE(nat64_prefix_from({addr("2001:db8::1")}, &got));
  EXPECT_FALSE(nat64_prefix_from({}, &got));
  EXPECT_FALSE(got.is_set());
}

TEST(Nat64, WrongInputIsRefused) {
  SocketAddress out;
  EXPECT_EQ(kErrInvalidArgument, nat64_synthesize(Nat64Prefix{}, addr("192.0.2.1"), &out));
  EXPECT_EQ(kErrInvalidArgument,
            nat64_synthesize(prefix_of("64:ff9b::", 96), addr("2001:db8::1"), &out));
  EXPECT_EQ(kErrInvalidArgument,
            nat64_extract(prefix_of("64:ff9b::", 96), addr("2001:db8::c000:221"), &out));
  EXPECT_EQ(kErrInvalidArgument,
            nat64_extract(prefix_of("64:ff9b::", 96), addr("192.0.2.33"), &out));
}

}  // namespace
}  // namespace parley

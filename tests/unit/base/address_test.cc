#include "base/address.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace parley {
namespace {

TEST(SocketAddress, ParsesAndPrintsBothFamilies) {
  SocketAddress a, b;
  ASSERT_EQ(SocketAddress::parse("192.0.2.1:3478", &a), kOk);
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.port(), 3478);
  EXPECT_EQ(a.to_string(), "192.0.2.1:3478");
  ASSERT_EQ(SocketAddress::parse("[2001:db8::1]:443", &b), kOk);
  EXPECT_TRUE(b.is_v6());
  EXPECT_EQ(b.to_string(), "[2001:db8::1]:443");
  EXPECT_NE(a, b);
  SocketAddress c = SocketAddress::from_sockaddr(a.sockaddr_ptr());
  EXPECT_EQ(a, c);
}

TEST(SocketAddress, RejectsMalformed) {
  const char *bad[] = {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3:80",
                       "::1:80", "[::1]80", "[1.2.3.4]:80", "[::1]:", "host:80", "1.2.3.4:8a",
                       "1.2.3.4:123456"};
  for (const char *s : bad) {
    SocketAddress a;
    EXPECT_EQ(SocketAddress::parse(s, &a), kErrAddressInvalid) << s;
    EXPECT_FALSE(a.is_set());
  }
}

TEST(SocketAddress, Classification) {
  SocketAddress a;
  ASSERT_EQ(SocketAddress::parse("127.0.0.5:1", &a), kOk);
  EXPECT_TRUE(a.is_loopback());
  ASSERT_EQ(SocketAddress::parse("169.254.3.4:1", &a), kOk);
  EXPECT_TRUE(a.is_link_local());
  ASSERT_EQ(SocketAddress::parse("[fe80::1]:1", &a), kOk);
  EXPECT_TRUE(a.is_link_local());
  ASSERT_EQ(SocketAddress::parse("[::1]:1", &a), kOk);
  EXPECT_TRUE(a.is_loopback());
  ASSERT_EQ(SocketAddress::parse("0.0.0.0:0", &a), kOk);
  EXPECT_TRUE(a.is_unspecified_ip());
  ASSERT_EQ(SocketAddress::parse("10.1.2.3:9", &a), kOk);
  EXPECT_FALSE(a.is_loopback() || a.is_link_local() || a.is_unspecified_ip());
}

}  // namespace
}  // namespace parley

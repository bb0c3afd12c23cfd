#include "base/resolver.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "base/error.h"

namespace parley {
namespace {

TEST(SplitHostPort, NamesAndLiteralsOfBothFamilies) {
  std::string host;
  uint16_t port = 0;
  ASSERT_EQ(kOk, split_host_port("relay.example.net:7350", &host, &port));
  EXPECT_EQ("relay.example.net", host);
  EXPECT_EQ(7350, port);
  ASSERT_EQ(kOk, split_host_port("localhost:1", &host, &port));
  EXPECT_EQ("localhost", host);
  ASSERT_EQ(kOk, split_host_port("192.0.2.7:65535", &host, &port));
  EXPECT_EQ("192.0.2.7", host);
  EXPECT_EQ(65535, port);
  ASSERT_EQ(kOk, split_host_port("[2001:db8::1]:3478", &host, &port));
  EXPECT_EQ("2001:db8::1", host);
  EXPECT_EQ(3478, port);
}

TEST(SplitHostPort, EveryMalformedShapeIsRefusedWithItsReason) {
  std::string host = "kept";
  uint16_t port = 9;
  for (const char *bad : {"", "relay", "relay:", ":7350", "relay:0", "relay:65536",
                          "relay:12a", "2001:db8::1:3478", "[2001:db8::1]", "[2001:db8::1]3478",
                          "[relay]:3478", "[192.0.2.1]:3478", "re lay:3478", "relay/x:1",
                          "relay:123456"}) {
    EXPECT_EQ(kErrAddressInvalid, split_host_port(bad, &host, &port)) << bad;
    EXPECT_NE(std::string(last_error_message()).find("'" + std::string(bad) + "'"),
              std::string::npos)
        << last_error_message();
  }
  EXPECT_EQ("kept", host);  // untouched on failure
  EXPECT_EQ(9, port);
  EXPECT_EQ(kErrAddressInvalid, split_host_port(std::string(254, 'a') + ":1", &host, &port));
}

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(kOk, loop_.start()); }
  void TearDown() override { loop_.stop(); }
  // Resolves on the loop; the answer (error, addresses, the detailed message).
  struct Answer {
    int error = 1;
    std::vector<SocketAddress> addresses;
    std::string message;
  };
  Answer resolve(const std::string &host, uint16_t port) {
    std::promise<Answer> p;
    auto f = p.get_future();
    loop_.post([&] {
      resolver_ = std::make_unique<Resolver>(loop_);
      const int r = resolver_->resolve(host, port, [&](int e, const std::vector<SocketAddress> &a) {
        p.set_value(Answer{e, a, e == kOk ? "" : last_error_message()});
      });
      if (r != kOk) p.set_value(Answer{r, {}, last_error_message()});
    });
    EXPECT_EQ(std::future_status::ready, f.wait_for(std::chrono::seconds(30)));
    Answer a = f.get();
    loop_.post([&] { resolver_.reset(); });
    return a;
  }
  Loop loop_;
  std::unique_ptr<Resolver> resolver_;
};

// localhost is in /etc/hosts on every Debian system: no DNS server is involved.
TEST_F(ResolverTest, LocalhostGivesLoopbackWithThePortIPv6First) {
  const Answer a = resolve("localhost", 7350);
  ASSERT_EQ(kOk, a.error) << a.message;
  ASSERT_FALSE(a.addresses.empty());
  bool seen_v4 = false;
  for (const auto &addr : a.addresses) {
    EXPECT_EQ(7350, addr.port());
    if (addr.is_v4()) {
      seen_v4 = true;
      EXPECT_EQ("127.0.0.1:7350", addr.to_string());
    } else {
      EXPECT_FALSE(seen_v4) << "IPv6 addresses come first";
    }
  }
  EXPECT_TRUE(seen_v4);
}

TEST_F(ResolverTest, LiteralsComeBackAsThemselves) {
  Answer a = resolve("192.0.2.9", 1);
  ASSERT_EQ(kOk, a.error) << a.message;
  ASSERT_EQ(1u, a.addresses.size());
  EXPECT_EQ("192.0.2.9:1", a.addresses[0].to_string());
  a = resolve("2001:db8::9", 2);
  ASSERT_EQ(kOk, a.error) << a.message;
  ASSERT_EQ(1u, a.addresses.size());
  EXPECT_TRUE(a.addresses[0].is_v6());
}

// A cancelled lookup's callback never fires, and the resolver can be reused at once.
TEST_F(ResolverTest, ACancelledLookupNeverAnswers) {
  std::promise<int> second;
  auto f = second.get_future();
  bool first_fired = false;
  loop_.post([&] {
    resolver_ = std::make_unique<Resolver>(loop_);
    resolver_->resolve("localhost", 1, [&](int, const std::vector<SocketAddress> &) {
      first_fired = true;
    });
    resolver_->resolve("localhost", 2, [&](int e, const std::vector<SocketAddress> &) {
      second.set_value(e);
    });
  });
  ASSERT_EQ(std::future_status::ready, f.wait_for(std::chrono::seconds(30)));
  EXPECT_EQ(kOk, f.get());
  std::promise<bool> fired;
  loop_.post([&] {
    resolver_.reset();
    fired.set_value(first_fired);
  });
  EXPECT_FALSE(fired.get_future().get());
}

}  // namespace
}  // namespace parley

// A relay on both families (--listen twice): a party on IPv4 and a party on IPv6 call each
// other through it. The NAT lab's IPv6 sites (tests/natlab/test_lab_ipv6.py) are where the
// direct IPv6 paths will be tested.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "call/context.h"
#include "call_party.h"
#include "relay_process.h"

using namespace std::chrono_literals;

namespace parley {
namespace {

using testing::Party;
using testing::Streamer;
using testing::active_call;

class DualStackRelayTest : public testing::RelayProcessTest {};

TEST_F(DualStackRelayTest, AnIPv4PartyAndAnIPv6PartyCallThroughOneRelay) {
  ASSERT_TRUE(start_relay("127.0.0.1:0", {"--listen", "[::1]:0"}));
  const testing::RelayProcess &relay = relay_;
  ASSERT_TRUE(relay.address.is_v4());
  ASSERT_TRUE(relay.address_other.is_v6()) << "no IPv6 port announced";
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay.address, relay.fingerprint, false));
  ASSERT_EQ(kOk, b.start(relay.address_other, relay.fingerprint, false,
                         [](call::ContextConfig &c) { SocketAddress::parse("[::1]:0", &c.bind); }));
  ASSERT_TRUE(b.ctx->local_address().is_v6());
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(b, a, &id));
  EXPECT_TRUE(b.ctx->observed_address().is_v6());
  EXPECT_TRUE(a.ctx->observed_address().is_v4());
  Streamer sa(a, id), sb(b, id);
  ASSERT_TRUE(a.wait([&] { return a.frames.size() >= 20; }, 10s));
  ASSERT_TRUE(b.wait([&] { return b.frames.size() >= 20; }, 10s));
  sa.stop();
  sb.stop();
  ASSERT_EQ(kOk, a.ctx->hangup(id));
  ASSERT_TRUE(b.wait([&] { return b.calls[Party::key(id)] == call::CallState::kEnded; }));
}

// With an IPv6 socket next to the IPv4 one (bind6), calls offer candidates of both families
// and ICE prefers IPv6 (RFC 8421): on loopback the direct path runs over ::1 while the relay
// connection stays on IPv4.
TEST_F(DualStackRelayTest, WithBind6TheDirectPathPrefersIPv6) {
  ASSERT_TRUE(start_relay());
  const testing::RelayProcess &relay = relay_;
  auto dual = [](call::ContextConfig &c) { SocketAddress::parse("[::1]:0", &c.bind6); };
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay.address, relay.fingerprint, true, dual));
  ASSERT_EQ(kOk, b.start(relay.address, relay.fingerprint, true, dual));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  Streamer sa(a, id), sb(b, id);
  ASSERT_TRUE(a.wait([&] { return a.on_direct(); }, 10s));
  ASSERT_TRUE(b.wait([&] { return b.on_direct(); }, 10s));
  call::CallStats st;
  ASSERT_EQ(kOk, a.ctx->call_stats(id, &st));
  EXPECT_NE(st.remote_candidate.find("[::1]"), std::string::npos) << st.remote_candidate;
  EXPECT_TRUE(a.ctx->observed_address().is_v4());
  sa.stop();
  sb.stop();
  ASSERT_EQ(kOk, a.ctx->hangup(id));

  // bind6 must be IPv6, next to an IPv4 bind.
  std::unique_ptr<identity::Identity> id6;
  ASSERT_EQ(kOk, identity::Identity::generate(&id6));
  call::ContextConfig cfg;
  cfg.relay.relay = relay.address;
  SocketAddress::parse("127.0.0.1:0", &cfg.bind6);
  std::unique_ptr<call::Context> ctx;
  EXPECT_EQ(kErrAddressFamily, call::Context::create(*id6, cfg, nullptr, &ctx));
}

// A pinned IPv4 bind with bind6 next to it reaches a relay given as an IPv6 literal: the
// connection leaves from the IPv6 socket.
TEST_F(DualStackRelayTest, APinnedIPv4BindWithBind6ReachesAnIPv6Relay) {
  ASSERT_TRUE(start_relay("127.0.0.1:0", {"--listen", "[::1]:0"}));
  const testing::RelayProcess &relay = relay_;
  Party a;
  ASSERT_EQ(kOk, a.start(relay.address_other, relay.fingerprint, false,
                         [](call::ContextConfig &c) {
                           SocketAddress::parse("127.0.0.1:0", &c.bind);
                           SocketAddress::parse("[::1]:0", &c.bind6);
                         }));
  ASSERT_TRUE(a.wait([&] { return a.registered; }, 10s));
  EXPECT_TRUE(a.ctx->relay_address().is_v6()) << a.ctx->relay_address().to_string();
  EXPECT_TRUE(a.ctx->observed_address().is_v6());
}

}  // namespace
}  // namespace parley

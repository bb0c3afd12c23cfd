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

TEST(DualStackRelayTest, AnIPv4PartyAndAnIPv6PartyCallThroughOneRelay) {
  ASSERT_GE(sodium_init(), 0);
  const std::string seed =
      ::testing::TempDir() + "dual-relay-" + std::to_string(getpid()) + ".seed";
  unlink(seed.c_str());
  testing::RelayProcess relay;
  ASSERT_TRUE(relay.start(PARLEY_RELAY_BIN, {"--listen", "127.0.0.1:0", "--listen", "[::1]:0",
                                             "--seed", seed, "--stun-alt", "none",
                                             "--log-level", "warn"}));
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
  relay.stop();
  unlink(seed.c_str());
}

}  // namespace
}  // namespace parley

// The relay given by name ("host:port"): resolved on the context's loop before every
// connect, never blocking a caller. The NAT lab resolves through a real DNS server
// (tests/natlab/test_relay_name.py); here /etc/hosts answers.
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
using testing::active_call;

class RelayNameTest : public testing::RelayProcessTest {
 protected:
  void SetUp() override {
    RelayProcessTest::SetUp();
    ASSERT_TRUE(start_relay());
  }
  // A party whose relay is `name` (no address).
  int start(Party &p, const std::string &name) {
    return p.start(SocketAddress(), relay_.fingerprint, false, [&](call::ContextConfig &c) {
      c.relay.relay = SocketAddress();
      c.relay.relay_name = name;
    });
  }
};

TEST_F(RelayNameTest, ACallThroughARelayGivenAsLocalhost) {
  const std::string name = "localhost:" + std::to_string(relay_.address.port());
  Party a, b;
  ASSERT_EQ(kOk, start(a, name));
  ASSERT_EQ(kOk, start(b, name));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  ASSERT_EQ(kOk, a.ctx->hangup(id));
  ASSERT_TRUE(b.wait([&] { return b.calls[Party::key(id)] == call::CallState::kEnded; }));
}

// A relay whose only address is IPv6 (here a literal through the same resolver path; the
// NAT lab has a DNS name with only an AAAA), for a context whose socket is IPv4: the relay
// state says why, and the context keeps trying (the name may change) without blocking anyone.
TEST_F(RelayNameTest, ANameOfTheOtherFamilyIsNoUsableAddress) {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::pair<call::RelayState, int>> states;
  std::unique_ptr<identity::Identity> id;
  ASSERT_EQ(kOk, identity::Identity::generate(&id));
  call::ContextConfig cfg;
  SocketAddress::parse("127.0.0.1:0", &cfg.bind);
  cfg.relay.relay_name = "[::1]:" + std::to_string(relay_.address.port());
  cfg.relay.relay_fingerprint = relay_.fingerprint;
  std::unique_ptr<call::Context> ctx;
  const auto before = std::chrono::steady_clock::now();
  ASSERT_EQ(kOk, call::Context::create(*id, cfg, [&](const call::Event &e) {
    if (e.type != call::EventType::kRelayState) return;
    std::lock_guard<std::mutex> lock(m);
    states.emplace_back(e.relay_state, e.error);
    cv.notify_all();
  }, &ctx));
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s) << "create waited for the resolver";
  std::unique_lock<std::mutex> lock(m);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] {
    for (const auto &s : states) {
      if (s.first == call::RelayState::kBackoff) return true;
    }
    return false;
  }));
  for (const auto &s : states) {
    EXPECT_NE(s.first, call::RelayState::kRegistered);
    if (s.first == call::RelayState::kBackoff) {
      EXPECT_EQ(s.second, kErrNoUsableAddress);
    }
  }
  lock.unlock();
  ctx.reset();
}

TEST_F(RelayNameTest, AMalformedNameIsRefusedAtCreate) {
  std::unique_ptr<identity::Identity> id;
  ASSERT_EQ(kOk, identity::Identity::generate(&id));
  for (const char *bad : {"localhost", "localhost:0", "bad name:1", "[::1]"}) {
    call::ContextConfig cfg;
    cfg.relay.relay_name = bad;
    std::unique_ptr<call::Context> ctx;
    EXPECT_EQ(kErrInvalidArgument, call::Context::create(*id, cfg, nullptr, &ctx)) << bad;
    EXPECT_EQ(ctx, nullptr);
  }
}

}  // namespace
}  // namespace parley

// A context given no relay fingerprint: what reaches the server that answers before the host
// decides to trust it. The "relay" is a bare QUIC endpoint that records every client
// certificate its verifier is shown.
#include <gtest/gtest.h>
#include <sodium.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "base/demux.h"
#include "call/context.h"
#include "quic_peer.h"

using namespace std::chrono_literals;

namespace parley {
namespace {

TEST(RelayTrustTest, NothingOfOursReachesAnUnpinnedRelayBeforeTheHostTrustsIt) {
  ASSERT_GE(sodium_init(), 0);
  Loop loop;
  ASSERT_EQ(kOk, loop.start());
  std::unique_ptr<identity::Identity> relay_id, me;
  ASSERT_EQ(kOk, identity::Identity::generate(&relay_id));
  ASSERT_EQ(kOk, identity::Identity::generate(&me));

  std::mutex m;
  std::condition_variable cv;
  std::vector<identity::Fingerprint> client_certs;  // what the server's verifier was shown
  std::vector<call::RelayState> states;
  identity::Fingerprint presented;

  auto sock = std::make_unique<UdpSocket>(loop);
  std::unique_ptr<quic::Endpoint> ep;
  std::unique_ptr<quic::EndpointDriver> drv;
  SocketAddress server_addr;
  ASSERT_EQ(kOk, testing::on_loop(loop, [&]() -> int {
              SocketAddress b;
              SocketAddress::parse("127.0.0.1:0", &b);
              int r = sock->bind(b, [&](const uint8_t *d, size_t n, const SocketAddress &from) {
                if (classify_datagram(d, n) == DatagramKind::kQuic) drv->on_datagram(d, n, from);
              });
              if (r != kOk) return r;
              server_addr = sock->local_address();
              r = quic::Endpoint::create(
                  *relay_id, {},
                  [&](const SocketAddress &to, const uint8_t *d, size_t n) {
                    sock->send(to, d, n);
                  },
                  &ep);
              if (r != kOk) return r;
              ep->set_local_address(server_addr);
              ep->set_accept([&](const SocketAddress &) {
                quic::Endpoint::Incoming in;
                in.verify = [&](const identity::Fingerprint &fp) {
                  std::lock_guard<std::mutex> lock(m);
                  client_certs.push_back(fp);
                  cv.notify_all();
                  return true;
                };
                in.handler = [](quic::Connection &, const quic::Event &) {};
                return in;
              });
              drv = std::make_unique<quic::EndpointDriver>(loop, *ep);
              return kOk;
            }));

  call::ContextConfig cfg;
  SocketAddress::parse("127.0.0.1:0", &cfg.bind);
  cfg.relay.relay = server_addr;  // and no relay_fingerprint
  cfg.direct.enabled = false;
  std::unique_ptr<call::Context> ctx;
  ASSERT_EQ(kOk, call::Context::create(
                     *me, cfg,
                     [&](const call::Event &e) {
                       if (e.type != call::EventType::kRelayState) return;
                       std::lock_guard<std::mutex> lock(m);
                       states.push_back(e.relay_state);
                       if (e.relay_state == call::RelayState::kUntrusted) presented = e.peer;
                       cv.notify_all();
                     },
                     &ctx));
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] {
      return !states.empty() && states.back() == call::RelayState::kUntrusted;
    }));
    EXPECT_EQ(presented, relay_id->fingerprint());
    EXPECT_TRUE(client_certs.empty()) << "our certificate reached a relay nobody trusted";
  }
  EXPECT_FALSE(ctx->relay_fingerprint().has_value());

  // The host trusts it: now the client presents its identity (this server never registers
  // anyone, so the state stays at connecting).
  ASSERT_EQ(kOk, ctx->trust_relay(presented));
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return !client_certs.empty(); }));
    EXPECT_EQ(client_certs[0], me->fingerprint());
  }
  EXPECT_EQ(ctx->relay_fingerprint(), relay_id->fingerprint());
  ctx.reset();
  testing::on_loop(loop, [&] {
    drv.reset();
    ep.reset();
    sock.reset();
  });
}

}  // namespace
}  // namespace parley

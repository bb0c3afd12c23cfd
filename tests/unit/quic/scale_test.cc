// One server endpoint holding 1,000 concurrent client connections on loopback, all routed by
// connection ID on one socket per side, each carrying a message.
#include <gtest/gtest.h>

#include "quic_peer.h"

namespace parley::quic {
namespace {

using parley::testing::on_loop;
using parley::testing::Peer;
using parley::testing::pin;
using parley::testing::Recorder;
using namespace std::chrono_literals;

TEST(QuicScale, ThousandConcurrentConnections) {
  constexpr int kConnections = 1000;
  constexpr int kInFlight = 50;  // handshakes at a time, as a relay sees clients arrive
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::unique_ptr<identity::Identity> server_id, client_id;
  ASSERT_EQ(identity::Identity::generate(&server_id), kOk);
  ASSERT_EQ(identity::Identity::generate(&client_id), kOk);
  std::unique_ptr<Peer> server, client;
  Recorder server_rec, client_rec;
  std::vector<Connection *> conns;
  int dialled = 0;
  on_loop(loop, [&] {
    server = std::make_unique<Peer>(loop, *server_id);
    client = std::make_unique<Peer>(loop, *client_id);
    server->endpoint->set_accept([&](const SocketAddress &) {
      return Endpoint::Incoming{[](const identity::Fingerprint &) { return true; },
                                server_rec.handler()};
    });
  });
  std::function<void()> dial = [&] {
    Connection *c = client->connect(server->address(), pin(server_id->fingerprint()),
                                    client_rec.handler());
    ASSERT_NE(c, nullptr);
    conns.push_back(c);
    ++dialled;
  };
  client_rec.also = [&](Connection &c, const Event &e) {
    if (e.type != EventType::kConnected) return;
    int64_t sid;
    if (c.open_stream(&sid) == kOk) {
      const uint8_t hello[] = {'h', 'i'};
      c.send_message(sid, hello, sizeof hello);
    }
    // Dial the next one from a task of its own, not from inside this event.
    loop.post([&] {
      if (dialled < kConnections) dial();
      client->driver->kick();
    });
  };
  on_loop(loop, [&] {
    for (int i = 0; i < kInFlight; ++i) dial();
  });
  const bool all = server_rec.wait(
      [&] { return server_rec.connected == kConnections && int(server_rec.messages.size()) == kConnections; },
      120s);
  const size_t held = on_loop(loop, [&] { return server->endpoint->connection_count(); });
  const EndpointStats st = on_loop(loop, [&] { return server->endpoint->stats(); });
  std::printf("[ scale ] %d connections: server holds %zu, %d handshakes completed, %zu "
              "messages, %lu Retry sent\n",
              kConnections, held, server_rec.connected, server_rec.messages.size(),
              (unsigned long)st.retries_sent);
  EXPECT_TRUE(all);
  EXPECT_EQ(held, size_t(kConnections));
  EXPECT_TRUE(server_rec.closes.empty());
  EXPECT_TRUE(client_rec.closes.empty());
  on_loop(loop, [&] {
    server.reset();
    client.reset();
  });
  loop.stop();
}

}  // namespace
}  // namespace parley::quic

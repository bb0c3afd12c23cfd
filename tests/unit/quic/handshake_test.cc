#include <gtest/gtest.h>

#include <deque>

#include <sys/socket.h>

#include "quic_peer.h"

namespace parley::quic {
namespace {

using parley::testing::on_loop;
using parley::testing::Peer;
using parley::testing::pin;
using parley::testing::Recorder;
using namespace std::chrono_literals;

class QuicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(loop_.start(), kOk);
    ASSERT_EQ(identity::Identity::generate(&alice_), kOk);
    ASSERT_EQ(identity::Identity::generate(&bob_), kOk);
    ASSERT_EQ(identity::Identity::generate(&mallory_), kOk);
  }
  void TearDown() override {
    on_loop(loop_, [&] { peers_.clear(); });
    loop_.stop();
  }
  Peer *make(const identity::Identity &id, EndpointConfig cfg = {}) {
    return on_loop(loop_, [&] {
      peers_.push_back(std::make_unique<Peer>(loop_, id, cfg));
      return peers_.back().get();
    });
  }
  // Server side accepts peers whose identity `verify` accepts, reporting into `rec`.
  void accept(Peer *p, PeerVerifier verify, Recorder &rec) {
    on_loop(loop_, [&] {
      p->endpoint->set_accept([verify, &rec](const SocketAddress &) {
        return Endpoint::Incoming{verify, rec.handler()};
      });
    });
  }

  // Recorders live in the fixture: a connection's late events (a close after the test body
  // returned) must still find theirs, until TearDown has destroyed the peers.
  Recorder &rec() { return recs_.emplace_back(); }

  Loop loop_;
  std::unique_ptr<identity::Identity> alice_, bob_, mallory_;
  std::deque<Recorder> recs_;
  std::vector<std::unique_ptr<Peer>> peers_;
};

TEST_F(QuicTest, BothRolesOnOneSocketPerSidePinned) {
  Peer *a = make(*alice_), *b = make(*bob_);
  ASSERT_TRUE(a->ok && b->ok);
  Recorder &a_server = rec(), &b_server = rec(), &a_client = rec(), &b_client = rec();
  accept(a, pin(bob_->fingerprint()), a_server);
  accept(b, pin(alice_->fingerprint()), b_server);
  Connection *ab = nullptr, *ba = nullptr;
  on_loop(loop_, [&] {
    ab = a->connect(b->address(), pin(bob_->fingerprint()), a_client.handler());
    ba = b->connect(a->address(), pin(alice_->fingerprint()), b_client.handler());
  });
  ASSERT_TRUE(ab && ba);
  for (Recorder *r : {&a_server, &b_server, &a_client, &b_client}) {
    EXPECT_TRUE(r->wait([&] { return r->connected == 1; })) << "handshake did not complete";
  }
  on_loop(loop_, [&] {
    EXPECT_EQ(ab->peer(), bob_->fingerprint());
    EXPECT_EQ(ba->peer(), alice_->fingerprint());
    EXPECT_EQ(a->endpoint->connection_count(), 2u);  // one dialled, one accepted
    EXPECT_EQ(b->endpoint->connection_count(), 2u);
  });
}

// Mallory answers where Alice expects Bob: both sides abort with the identity error.
TEST_F(QuicTest, PinMismatchFailsOnBothSides) {
  Peer *a = make(*alice_), *m = make(*mallory_);
  Recorder &client = rec(), &server = rec();
  accept(m, [](const identity::Fingerprint &) { return true; }, server);
  on_loop(loop_, [&] { ASSERT_NE(a->connect(m->address(), pin(bob_->fingerprint()), client.handler()), nullptr); });
  ASSERT_TRUE(client.wait([&] { return !client.closes.empty(); }));
  EXPECT_EQ(client.connected, 0);
  EXPECT_EQ(client.closes[0].error, kErrPeerIdentity);
  EXPECT_FALSE(client.closes[0].by_peer);
  EXPECT_NE(client.closes[0].reason.find(mallory_->fingerprint().hex()), std::string::npos)
      << client.closes[0].reason;
  ASSERT_TRUE(server.wait([&] { return !server.closes.empty(); }));
  EXPECT_EQ(server.connected, 0);
  EXPECT_EQ(server.closes[0].error, kErrPeerIdentity);
  EXPECT_TRUE(server.closes[0].by_peer);
}

// The server pins too: Mallory dialling Bob's endpoint, which only admits Alice, is refused
// and both sides see the identity error.
TEST_F(QuicTest, ServerSidePinRefusesUnknownClient) {
  Peer *b = make(*bob_), *m = make(*mallory_);
  Recorder &server = rec(), &client = rec();
  accept(b, pin(alice_->fingerprint()), server);
  on_loop(loop_, [&] { ASSERT_NE(m->connect(b->address(), pin(bob_->fingerprint()), client.handler()), nullptr); });
  ASSERT_TRUE(server.wait([&] { return !server.closes.empty(); }));
  EXPECT_EQ(server.closes[0].error, kErrPeerIdentity);
  EXPECT_FALSE(server.closes[0].by_peer);
  ASSERT_TRUE(client.wait([&] { return !client.closes.empty(); }));
  EXPECT_EQ(client.closes[0].error, kErrPeerIdentity);
  EXPECT_TRUE(client.closes[0].by_peer);
}

TEST_F(QuicTest, TrustOnFirstUseSeesFingerprintAndCanRefuse) {
  Peer *a = make(*alice_), *b = make(*bob_);
  Recorder &server = rec(), &accepted = rec(), &refused = rec();
  accept(b, [](const identity::Fingerprint &) { return true; }, server);
  std::vector<identity::Fingerprint> asked;  // written on the loop thread only
  auto tofu = [&](bool answer) {
    return [&asked, answer](const identity::Fingerprint &fp) {
      asked.push_back(fp);
      return answer;
    };
  };
  on_loop(loop_, [&] { a->connect(b->address(), tofu(true), accepted.handler()); });
  ASSERT_TRUE(accepted.wait([&] { return accepted.connected == 1; }));
  on_loop(loop_, [&] { a->connect(b->address(), tofu(false), refused.handler()); });
  ASSERT_TRUE(refused.wait([&] { return !refused.closes.empty(); }));
  EXPECT_EQ(refused.connected, 0);
  EXPECT_EQ(refused.closes[0].error, kErrPeerIdentity);
  on_loop(loop_, [&] {
    ASSERT_EQ(asked.size(), 2u);
    EXPECT_EQ(asked[0], bob_->fingerprint());
    EXPECT_EQ(asked[1], bob_->fingerprint());
  });
}

TEST_F(QuicTest, MessagesDatagramsAndGracefulClose) {
  Peer *a = make(*alice_), *b = make(*bob_);
  Recorder &server = rec(), &client = rec();
  server.also = [](Connection &c, const Event &e) {  // echo everything back (set before
    if (e.type == EventType::kMessage) c.send_message(e.stream_id, e.data, e.len);  // connecting)
    if (e.type == EventType::kDatagram) c.send_datagram(e.data, e.len);
  };
  accept(b, pin(alice_->fingerprint()), server);
  Connection *c = nullptr;
  on_loop(loop_, [&] { c = a->connect(b->address(), pin(bob_->fingerprint()), client.handler()); });
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  const std::vector<uint8_t> hello = {'h', 'e', 'l', 'l', 'o'};
  on_loop(loop_, [&] {
    EXPECT_GE(c->max_datagram_payload(), 1100u);
    int64_t sid;
    ASSERT_EQ(c->open_stream(&sid), kOk);
    ASSERT_EQ(c->send_message(sid, hello.data(), hello.size()), kOk);
    ASSERT_EQ(c->send_message(sid, nullptr, 0), kOk);  // empty messages are messages too
    ASSERT_EQ(c->send_datagram(hello.data(), hello.size()), kOk);
    std::vector<uint8_t> huge(c->max_datagram_payload() + 1);
    EXPECT_EQ(c->send_datagram(huge.data(), huge.size()), kErrMessageTooLarge);
    a->driver->kick();
  });
  ASSERT_TRUE(client.wait([&] { return client.messages.size() == 2 && client.datagrams == 1; }));
  EXPECT_EQ(client.messages[0], hello);
  EXPECT_TRUE(client.messages[1].empty());
  on_loop(loop_, [&] {
    const PathStats s = c->stats();
    EXPECT_GT(s.smoothed_rtt, 0u);
    EXPECT_GT(s.cwnd, 0u);
    EXPECT_GE(s.packets_sent, 2u);
    c->close(42, "bye");
    a->driver->kick();
  });
  ASSERT_TRUE(server.wait([&] { return !server.closes.empty(); }));
  EXPECT_EQ(server.closes[0].error, kOk);
  EXPECT_TRUE(server.closes[0].by_peer);
  EXPECT_EQ(server.closes[0].app_code, 42u);
  EXPECT_EQ(server.closes[0].reason, "bye");
  ASSERT_TRUE(client.wait([&] { return !client.closes.empty(); }));
  EXPECT_FALSE(client.closes[0].by_peer);
}

TEST_F(QuicTest, OversizedMessageIsRefusedLocallyAndRemotely) {
  EndpointConfig small;
  small.connection.max_message_size = 1000;
  Peer *a = make(*alice_), *b = make(*bob_, small);
  Recorder &server = rec(), &client = rec();
  accept(b, pin(alice_->fingerprint()), server);
  Connection *c = nullptr;
  on_loop(loop_, [&] { c = a->connect(b->address(), pin(bob_->fingerprint()), client.handler()); });
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  on_loop(loop_, [&] {
    int64_t sid;
    ASSERT_EQ(c->open_stream(&sid), kOk);
    std::vector<uint8_t> too_big(64 * 1024 + 1, 7);  // over Alice's own limit: refused here
    EXPECT_EQ(c->send_message(sid, too_big.data(), too_big.size()), kErrMessageTooLarge);
    std::vector<uint8_t> big(5000, 7);  // Alice allows 64 KiB, Bob only 1000
    ASSERT_EQ(c->send_message(sid, big.data(), big.size()), kOk);
    a->driver->kick();
  });
  ASSERT_TRUE(client.wait([&] { return !client.closes.empty(); }));
  EXPECT_EQ(client.closes[0].error, kErrMessageTooLarge);
  EXPECT_TRUE(client.closes[0].by_peer);
  EXPECT_TRUE(server.messages.empty());
}

// Streams end (FIN both ways) and free their slot: far more than the 16 concurrent streams a
// peer allows can be used over a connection's life.
TEST_F(QuicTest, EndedStreamsFreeTheirSlots) {
  Peer *a = make(*alice_), *b = make(*bob_);
  Recorder &server = rec(), &client = rec();
  accept(b, pin(alice_->fingerprint()), server);
  Connection *c = nullptr;
  on_loop(loop_, [&] { c = a->connect(b->address(), pin(bob_->fingerprint()), client.handler()); });
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  for (int i = 0; i < 40; ++i) {
    int r = kErrQueueFull;
    // The peer raises the stream limit once earlier streams are fully closed; wait for it.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (r == kErrQueueFull && std::chrono::steady_clock::now() < deadline) {
      r = on_loop(loop_, [&] {
        int64_t sid;
        int rr = c->open_stream(&sid);
        if (rr == kOk) {
          const uint8_t m[3] = {uint8_t(i), 1, 2};
          EXPECT_EQ(c->send_message(sid, m, sizeof m), kOk);
          EXPECT_EQ(c->end_stream(sid), kOk);
          EXPECT_EQ(c->send_message(sid, m, sizeof m), kErrInvalidArgument);  // ended
          a->driver->kick();
        }
        return rr;
      });
      if (r == kErrQueueFull) server.wait([] { return false; }, 10ms);
    }
    ASSERT_EQ(r, kOk) << "stream " << i << " could not be opened";
  }
  ASSERT_TRUE(server.wait([&] { return server.messages.size() == 40; }));
  EXPECT_TRUE(client.closes.empty());
}

TEST_F(QuicTest, RetryValidatesAddressUnderLoad) {
  EndpointConfig always_retry;
  always_retry.retry_when_handshaking_over = 0;
  Peer *a = make(*alice_), *b = make(*bob_, always_retry);
  Recorder &server = rec(), &client = rec();
  accept(b, pin(alice_->fingerprint()), server);
  on_loop(loop_, [&] { a->connect(b->address(), pin(bob_->fingerprint()), client.handler()); });
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  ASSERT_TRUE(server.wait([&] { return server.connected == 1; }));
  on_loop(loop_, [&] { EXPECT_EQ(b->endpoint->stats().retries_sent, 1u); });
}

TEST_F(QuicTest, IdleTimeoutClosesWhenThePeerVanishes) {
  EndpointConfig quick;
  quick.connection.idle_timeout_ms = 1000;
  quick.connection.keepalive_ms = 250;  // generous margins: sanitizer builds stall the loop
  Peer *a = make(*alice_, quick), *b = make(*bob_, quick);
  Recorder &server = rec(), &client = rec();
  accept(b, pin(alice_->fingerprint()), server);
  on_loop(loop_, [&] { a->connect(b->address(), pin(bob_->fingerprint()), client.handler()); });
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  // Keep-alives hold the connection open well past the idle timeout...
  EXPECT_FALSE(client.wait([&] { return !client.closes.empty(); }, 2500ms));
  // ...until Bob's endpoint disappears (socket gone, nothing answers).
  on_loop(loop_, [&] { peers_.erase(peers_.begin() + 1); });
  ASSERT_TRUE(client.wait([&] { return !client.closes.empty(); }, 5s));
  EXPECT_EQ(client.closes[0].error, kErrTimeout);
}

// A restarted endpoint (same identity, same port) cannot know the old connection, but it can
// tell the client so at once with a stateless reset the client verifies.
TEST_F(QuicTest, StatelessResetAfterPeerRestart) {
  Peer *a = make(*alice_), *b = make(*bob_);
  Recorder &server = rec(), &client = rec();
  accept(b, pin(alice_->fingerprint()), server);
  Connection *c = nullptr;
  on_loop(loop_, [&] { c = a->connect(b->address(), pin(bob_->fingerprint()), client.handler()); });
  ASSERT_TRUE(client.wait([&] { return client.connected == 1; }));
  const std::string bind = on_loop(loop_, [&] { return b->address().to_string(); });
  on_loop(loop_, [&] { peers_.erase(peers_.begin() + 1); });
  Peer *b2 = on_loop(loop_, [&] {
    peers_.push_back(std::make_unique<Peer>(loop_, *bob_, EndpointConfig{}, bind.c_str()));
    return peers_.back().get();
  });
  ASSERT_TRUE(b2->ok);
  on_loop(loop_, [&] {
    // Any packet from Alice now earns a reset; her own ACKs may already have done it (and
    // then `c` may be gone: check the recorder before touching it).
    {
      std::lock_guard<std::mutex> lock(client.m);
      if (!client.closes.empty()) return;
    }
    int64_t sid;
    ASSERT_EQ(c->open_stream(&sid), kOk);
    const uint8_t ping[64] = {1};
    c->send_message(sid, ping, sizeof ping);
    a->driver->kick();
  });
  const bool closed = client.wait([&] { return !client.closes.empty(); }, 5s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(client.closes[0].error, kErrTransport);
  EXPECT_EQ(client.closes[0].reason, "stateless reset");
  on_loop(loop_, [&] { EXPECT_GE(b2->endpoint->stats().stateless_resets_sent, 1u); });
}

TEST_F(QuicTest, UnknownVersionGetsVersionNegotiation) {
  Peer *b = make(*bob_);
  Recorder &server = rec();
  accept(b, pin(alice_->fingerprint()), server);
  const SocketAddress to = on_loop(loop_, [&] { return b->address(); });
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<uint8_t> pkt(1200, 0);
  pkt[0] = 0xc0;
  pkt[1] = 0x1a; pkt[2] = 0x2a; pkt[3] = 0x3a; pkt[4] = 0x4a;  // an unknown version
  pkt[5] = 8;                                                   // DCID length
  pkt[14] = 8;                                                  // SCID length
  ASSERT_EQ(::sendto(fd, pkt.data(), pkt.size(), 0, to.sockaddr_ptr(), to.sockaddr_len()),
            ssize_t(pkt.size()));
  uint8_t buf[1500];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
  ASSERT_GT(n, 7);
  EXPECT_TRUE(buf[0] & 0x80);
  EXPECT_EQ(buf[1] | buf[2] | buf[3] | buf[4], 0) << "version 0 = Version Negotiation";
  EXPECT_LT(size_t(n), pkt.size());
}

}  // namespace
}  // namespace parley::quic

// A connected pair of Endpoints driven in memory (no sockets, a simulated clock), for what
// fuzz/fuzz_quic_session.cc found after the handshake.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "base/error.h"
#include "identity/identity.h"
#include "quic/endpoint.h"
#include "test_address.h"

namespace parley::quic {
namespace {

using parley::testing::addr;

class SessionTest : public ::testing::Test {
 protected:
  struct Side {
    std::unique_ptr<identity::Identity> id;
    std::unique_ptr<Endpoint> ep;
    SocketAddress address;
    std::deque<std::vector<uint8_t>> inbox;
    Connection *conn = nullptr;
    int connected = 0;
    std::vector<std::vector<uint8_t>> datagrams;
  };

  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      uint8_t seed[32];
      std::memset(seed, 0x51 + i, sizeof seed);
      ASSERT_EQ(identity::Identity::from_seed(seed, sizeof seed, &s_[i].id), kOk);
      s_[i].address = addr(i == 0 ? "10.0.0.1:1000" : "10.0.0.2:2000");
      Side *peer = &s_[1 - i];
      ASSERT_EQ(Endpoint::create(*s_[i].id, EndpointConfig{},
                                 [peer](const SocketAddress &, const uint8_t *d, size_t n) {
                                   peer->inbox.emplace_back(d, d + n);
                                 },
                                 &s_[i].ep),
                kOk);
      s_[i].ep->set_local_address(s_[i].address);
    }
    const identity::Fingerprint fp0 = s_[0].id->fingerprint(), fp1 = s_[1].id->fingerprint();
    s_[1].ep->set_accept([this, fp0](const SocketAddress &) {
      Endpoint::Incoming in;
      in.verify = [fp0](const identity::Fingerprint &f) { return f == fp0; };
      in.handler = handler(&s_[1]);
      return in;
    });
    Connection *c = nullptr;
    ASSERT_EQ(s_[0].ep->connect(s_[1].address,
                                [fp1](const identity::Fingerprint &f) { return f == fp1; },
                                handler(&s_[0]), now_, &c),
              kOk);
    run();
    ASSERT_EQ(s_[0].connected, 1);
    ASSERT_EQ(s_[1].connected, 1);
  }

  EventHandler handler(Side *s) {
    return [s](Connection &c, const Event &e) {
      if (e.type == EventType::kConnected) {
        ++s->connected;
        s->conn = &c;
      } else if (e.type == EventType::kDatagram) {
        s->datagrams.emplace_back(e.data, e.data + e.len);
      } else if (e.type == EventType::kClosed) {
        s->conn = nullptr;
      }
    };
  }

  // Delivers everything in flight, in order, until the network is quiet.
  void run() {
    for (int round = 0; round < 64; ++round) {
      for (Side &s : s_) s.ep->flush(now_);
      bool any = false;
      for (int i = 0; i < 2; ++i) {
        while (!s_[i].inbox.empty()) {
          std::vector<uint8_t> p = std::move(s_[i].inbox.front());
          s_[i].inbox.pop_front();
          s_[i].ep->handle_datagram(p.data(), p.size(), s_[1 - i].address, now_);
          any = true;
        }
      }
      if (!any) return;
      now_ += kNanosPerMilli;
    }
  }

  Side s_[2];
  Timestamp now_ = kNanosPerSecond;
};

// An empty DATAGRAM is valid QUIC. Sending one aborted the process: ngtcp2 1.11 asserts that
// no vector of a DATAGRAM frame is empty (and with NULL data, send_datagram copied from NULL).
TEST_F(SessionTest, EmptyDatagramWithNullDataIsDelivered) {
  ASSERT_NE(s_[0].conn, nullptr);
  ASSERT_EQ(s_[0].conn->send_datagram(nullptr, 0), kOk);
  const uint8_t one = 7;
  ASSERT_EQ(s_[0].conn->send_datagram(&one, 1), kOk);
  run();
  ASSERT_EQ(s_[1].datagrams.size(), 2u);
  EXPECT_TRUE(s_[1].datagrams[0].empty());
  EXPECT_EQ(s_[1].datagrams[1], std::vector<uint8_t>{7});
}

// A zero-length UDP datagram handed to the endpoint aborted the process (ngtcp2 1.11 asserts
// in ngtcp2_pkt_decode_version_cid). The socket demultiplexers filter them, but the endpoint
// is public API: it counts one as malformed, and the connection carries on.
TEST_F(SessionTest, EmptyUdpDatagramIsDroppedAsMalformed) {
  const uint64_t before = s_[1].ep->stats().dropped_malformed;
  const uint8_t none = 0;
  s_[1].ep->handle_datagram(&none, 0, s_[0].address, now_);
  s_[1].ep->handle_datagram(nullptr, 0, addr("192.0.2.9:9"), now_);
  EXPECT_EQ(s_[1].ep->stats().dropped_malformed, before + 2);
  const uint8_t one = 1;
  ASSERT_EQ(s_[0].conn->send_datagram(&one, 1), kOk);
  run();
  ASSERT_EQ(s_[1].datagrams.size(), 1u);
}

}  // namespace
}  // namespace parley::quic

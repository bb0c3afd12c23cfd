// The relay's router in-process: a Server on a Loop over loopback UDP, and raw clients
// speaking the signal codec, so every limit and refusal can be provoked directly.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "base/error.h"
#include "media/frame_header.h"
#include "quic_peer.h"
#include "relay/server.h"
#include "signal/message.h"

#if defined(__GNUC__) && !defined(__clang__)
// The replacement below pairs malloc with free on purpose; GCC cannot see that through inlining.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// Counts operator new calls made by threads that opted in (the relay's loop thread in the
// forwarding test); everything else allocates as usual.
namespace {
thread_local bool g_count_allocations = false;
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void *operator new(size_t n) {
  if (g_count_allocations) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void *p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }

namespace parley::relay {
namespace {

using namespace std::chrono_literals;
using signal::Message;
using signal::Type;

struct RawClient {
  RawClient(Loop &loop, const SocketAddress &relay, const identity::Fingerprint &relay_fp,
            const identity::Identity *shared_id = nullptr)
      : loop_(loop) {
    if (shared_id == nullptr) identity::Identity::generate(&own_);
    id = shared_id ? shared_id : own_.get();
    testing::on_loop(loop, [&] {
      peer = std::make_unique<testing::Peer>(loop, *id);
      conn = peer->connect(relay, testing::pin(relay_fp), rec.handler());
    });
    EXPECT_TRUE(rec.wait([&] { return rec.connected == 1; }));
  }
  ~RawClient() {
    testing::on_loop(loop_, [&] {
      if (rec.closes.empty() && conn) conn->close(0, "");
      peer.reset();
    });
  }
  void send_raw(const std::vector<uint8_t> &b) {
    testing::on_loop(loop_, [&] {
      if (!rec.closes.empty()) return;
      if (stream < 0) conn->open_stream(&stream);
      conn->send_message(stream, b.data(), b.size());
      peer->driver->kick();
    });
  }
  void send(const Message &m) {
    std::vector<uint8_t> b;
    ASSERT_EQ(kOk, signal::encode(m, &b));
    send_raw(b);
  }
  // The n-th message received (1-based), waiting for it.
  Message reply(size_t n) {
    Message m;
    if (!rec.wait([&] { return rec.messages.size() >= n; }, 5s)) {
      ADD_FAILURE() << "no reply #" << n;
      return m;
    }
    std::lock_guard<std::mutex> lock(rec.m);
    EXPECT_EQ(kOk, signal::decode(rec.messages[n - 1].data(), rec.messages[n - 1].size(), &m));
    return m;
  }
  size_t received() {
    std::lock_guard<std::mutex> lock(rec.m);
    return rec.messages.size();
  }
  void register_now() {
    Message m;
    m.type = Type::kRegister;
    const size_t before = received();  // before sending: the answer may beat the next line
    send(m);
    Message ack = reply(before + 1);
    ASSERT_EQ(ack.type, Type::kRegisterAck);
  }
  Message invite(const identity::Fingerprint &to) {
    Message m;
    m.type = Type::kCallInvite;
    m.call_id = signal::CallId::random();
    m.from = id->fingerprint();
    m.to = to;
    m.ice_ufrag = "abcd";
    m.ice_pwd = "abcdefghijklmnopqrstuv";
    m.media_key = signal::SignedKey{};
    m.identity_key.emplace();
    m.codecs = {1};
    return m;
  }

  Loop &loop_;
  std::unique_ptr<identity::Identity> own_;
  const identity::Identity *id;
  testing::Recorder rec;
  std::unique_ptr<testing::Peer> peer;
  quic::Connection *conn = nullptr;
  int64_t stream = -1;
};

// Registers both and sets up a call from a to b that b accepted; *stream = its media stream.
void accepted_call(RawClient &a, RawClient &b, uint32_t *stream) {
  a.register_now();
  b.register_now();
  Message inv = a.invite(b.id->fingerprint());
  a.send(inv);
  Message got = b.reply(2);
  ASSERT_EQ(got.type, Type::kCallInvite);
  Message acc = inv;
  acc.type = Type::kCallAccept;
  acc.from = b.id->fingerprint();
  acc.to = a.id->fingerprint();
  b.send(acc);
  ASSERT_EQ(a.reply(2).type, Type::kCallAccept);
  *stream = *got.stream_id;
}

class RouterTest : public ::testing::Test {
 protected:
  void start(RelayConfig config = {}) {
    ASSERT_EQ(kOk, identity::Identity::generate(&id_));
    ASSERT_EQ(kOk, loop_.start());
    SocketAddress::parse("127.0.0.1:0", &config.listen);
    config.stun_alt_enabled = false;
    int r = testing::on_loop(loop_, [&] { return Server::create(loop_, *id_, config, &server_); });
    ASSERT_EQ(kOk, r);
    addr_ = testing::on_loop(loop_, [&] { return server_->address(); });
  }
  void TearDown() override {
    if (server_) testing::on_loop(loop_, [&] { server_.reset(); });
    loop_.stop();
  }
  RouterStats stats() {
    return testing::on_loop(loop_, [&] { return server_->router().stats(); });
  }
  std::unique_ptr<RawClient> client(const identity::Identity *shared = nullptr) {
    return std::make_unique<RawClient>(loop_, addr_, id_->fingerprint(), shared);
  }

  Loop loop_;
  std::unique_ptr<identity::Identity> id_;
  std::unique_ptr<Server> server_;
  SocketAddress addr_;
};

TEST_F(RouterTest, MessagesBeforeRegisterAndBadMessagesGetDistinctErrors) {
  start();
  auto c = client();
  Message join;
  join.type = Type::kRoomJoin;
  join.room_id = signal::RoomId::random();
  c->send(join);
  EXPECT_EQ(c->reply(1).error_code.value_or(0), kErrNotRegistered);
  c->register_now();
  c->send_raw({1, 99, 0, 0, 0, 0, 0, 0});  // unknown type
  EXPECT_EQ(c->reply(3).error_code.value_or(0), kErrSignalUnknownType);
  c->send_raw({7, 1, 0, 0, 0, 0, 0, 0});  // unknown version
  EXPECT_EQ(c->reply(4).error_code.value_or(0), kErrSignalVersion);
  c->send_raw({1, 1, 0, 0, 0, 0, 0, 9});  // body length lies
  EXPECT_EQ(c->reply(5).error_code.value_or(0), kErrSignalMalformed);
  Message ack;
  ack.type = Type::kRegisterAck;
  SocketAddress::parse("1.2.3.4:5", &ack.observed_address);
  c->send(ack);  // only the relay sends these
  EXPECT_EQ(c->reply(6).error_code.value_or(0), kErrInvalidArgument);
  EXPECT_EQ(stats().signal_malformed, 3u);
  c->register_now();  // the connection survived all of it
}

TEST_F(RouterTest, ASecondConnectionOfTheSameIdentityReplacesTheFirstWithItsCalls) {
  start();
  auto bob = client();
  auto alice1 = client();
  bob->register_now();
  alice1->register_now();
  Message inv = bob->invite(alice1->id->fingerprint());
  bob->send(inv);
  Message got = alice1->reply(2);
  ASSERT_EQ(got.type, Type::kCallInvite);

  auto alice2 = client(alice1->id);  // same seed, another process or device
  alice2->register_now();
  ASSERT_TRUE(alice1->rec.wait([&] { return !alice1->rec.closes.empty(); }));
  EXPECT_TRUE(alice1->rec.closes[0].by_peer);
  EXPECT_EQ(alice1->rec.closes[0].app_code, 2u);
  EXPECT_EQ(stats().registrations_replaced, 1u);
  // The call moved with the registration: alice2 can answer it.
  Message acc = inv;
  acc.type = Type::kCallAccept;
  acc.from = alice1->id->fingerprint();
  acc.to = bob->id->fingerprint();
  alice2->send(acc);
  Message at_bob = bob->reply(2);
  EXPECT_EQ(at_bob.type, Type::kCallAccept);
  EXPECT_EQ(*at_bob.stream_id, *got.stream_id);
  auto g = testing::on_loop(loop_, [&] { return server_->router().gauges(); });
  EXPECT_EQ(g.registered, 2u);
  EXPECT_EQ(g.calls_active, 1u);
}

TEST_F(RouterTest, CallAndRoomLimitsAnswerLimitReached) {
  RelayConfig cfg;
  cfg.limits.max_calls_per_client = 1;
  cfg.limits.max_room_size = 2;
  start(cfg);
  auto a = client(), b = client(), c = client();
  a->register_now();
  b->register_now();
  c->register_now();
  a->send(a->invite(b->id->fingerprint()));
  ASSERT_EQ(b->reply(2).type, Type::kCallInvite);
  Message second = a->invite(c->id->fingerprint());
  a->send(second);
  Message err = a->reply(2);
  EXPECT_EQ(err.error_code.value_or(0), kErrLimitReached);
  EXPECT_EQ(*err.call_id, *second.call_id);
  EXPECT_EQ(stats().calls_refused_limit, 1u);

  Message join;
  join.type = Type::kRoomJoin;
  join.room_id = signal::RoomId::random();
  a->send(join);
  EXPECT_EQ(a->reply(3).type, Type::kRoomUpdate);
  b->send(join);
  EXPECT_EQ(b->reply(3).members.size(), 2u);
  c->send(join);
  EXPECT_EQ(c->reply(2).error_code.value_or(0), kErrLimitReached);
  EXPECT_EQ(stats().room_joins_refused, 1u);
}

// Finding 4: address validation (Retry) starts at a low share of max_connections, so a
// flood of spoofed Initials cannot hold slots; clients are not bothered before.
TEST_F(RouterTest, RetryIsRequiredAboveTheConfiguredShareOfConnections) {
  RelayConfig cfg;
  cfg.max_connections = 4;
  cfg.retry_percent = 50;
  start(cfg);
  auto a = client(), b = client();
  auto retries = [&] {
    return testing::on_loop(loop_, [&] { return server_->endpoint().stats().retries_sent; });
  };
  EXPECT_EQ(retries(), 0u);
  auto c = client();  // the third of four: over half
  EXPECT_EQ(retries(), 1u);
  c->register_now();  // validated, then served as usual
}

TEST_F(RouterTest, SignalingRateLimitDropsAndSaysSo) {
  RelayConfig cfg;
  cfg.limits.signal_rate = 1;
  cfg.limits.signal_burst = 5;
  start(cfg);
  auto a = client();
  a->register_now();  // 1 token
  Message join;
  join.type = Type::kRoomJoin;
  join.room_id = signal::RoomId::random();
  for (int i = 0; i < 20; ++i) a->send(join);  // 4 served, the rest dropped
  ASSERT_TRUE(a->rec.wait([&] {
    for (const auto &raw : a->rec.messages) {
      Message m;
      if (signal::decode(raw.data(), raw.size(), &m) == kOk && m.error_code == kErrRateLimited) {
        return true;
      }
    }
    return false;
  }));
  EXPECT_GE(stats().signal_rate_limited, 14u);
}

TEST_F(RouterTest, MediaOverTheRateLimitIsDroppedAndCounted) {
  RelayConfig cfg;
  cfg.limits.media_packet_rate = 1;
  cfg.limits.media_packet_burst = 10;
  start(cfg);
  auto a = client(), b = client();
  uint32_t stream = 0;
  ASSERT_NO_FATAL_FAILURE(accepted_call(*a, *b, &stream));
  uint8_t frame[media::kFrameHeaderSize + 20] = {};
  media::FrameHeader h;
  h.stream_id = stream;
  media::write_frame_header(h, frame);
  testing::on_loop(loop_, [&] {
    for (int i = 0; i < 30; ++i) a->conn->send_datagram(frame, sizeof frame);
    a->peer->driver->kick();
  });
  // A signaling round trip after the datagrams left: its answer means the relay has read
  // every packet sent before it (loopback keeps order).
  Message join;
  join.type = Type::kRoomJoin;
  join.room_id = signal::RoomId::random();
  a->send(join);
  ASSERT_EQ(a->reply(3).type, Type::kRoomUpdate);
  ASSERT_TRUE(b->rec.wait([&] { return b->rec.datagrams >= 10; }));
  EXPECT_EQ(stats().dropped_rate_limited, 20u);
  EXPECT_EQ(stats().relayed_packets, 10u);
}

TEST_F(RouterTest, StreamIdsWrapAroundSkippingZeroAndIdsInUse) {
  start();
  auto a = client(), b = client();
  a->register_now();
  b->register_now();
  Message join;
  join.type = Type::kRoomJoin;
  join.room_id = signal::RoomId::random();
  testing::on_loop(loop_, [&] { server_->router().set_next_stream_for_test(0xfffffffeu); });
  a->send(join);
  EXPECT_EQ(*a->reply(2).stream_id, 0xfffffffeu);
  b->send(join);
  EXPECT_EQ(*b->reply(2).stream_id, 0xffffffffu);
  testing::on_loop(loop_, [&] { server_->router().set_next_stream_for_test(0xfffffffeu); });
  Message join2 = join;
  join2.room_id = signal::RoomId::random();
  a->send(join2);  // 0xfffffffe and 0xffffffff are taken, 0 is never used: 1
  EXPECT_EQ(*a->reply(4).stream_id, 1u);
}


// The forwarding path of the relay (endpoint, router, destination's datagram ring, batched
// send) allocates nothing per packet once a call is running. The clients run on their own
// loop so that only the relay's thread is counted. (ngtcp2's own malloc calls are not
// operator new and not counted here; it pools its per-packet objects.)
TEST_F(RouterTest, ForwardingDoesNotAllocatePerPacket) {
  RelayConfig cfg;
  cfg.limits.media_packet_rate = 0;
  cfg.limits.media_byte_rate = 0;
  start(cfg);
  Loop clients;
  ASSERT_EQ(kOk, clients.start());
  {
    RawClient a(clients, addr_, id_->fingerprint()), b(clients, addr_, id_->fingerprint());
    uint32_t stream = 0;
    ASSERT_NO_FATAL_FAILURE(accepted_call(a, b, &stream));
    uint8_t frame[media::kFrameHeaderSize + 100] = {};
    media::FrameHeader h;
    h.stream_id = stream;
    auto burst = [&](uint64_t total) {
      const uint64_t base = [&] {
        std::lock_guard<std::mutex> lock(b.rec.m);
        return b.rec.datagrams;
      }();
      for (uint64_t sent = 0; sent < total;) {
        testing::on_loop(clients, [&] {
          for (int i = 0; i < 20; ++i, ++sent) {
            h.sequence = uint32_t(sent);
            media::write_frame_header(h, frame);
            a.conn->send_datagram(frame, sizeof frame);
          }
          a.peer->driver->kick();
        });
        ASSERT_TRUE(b.rec.wait([&] { return b.rec.datagrams >= base + sent; }));
      }
    };
    burst(400);  // warm-up: hash tables, rings, batches, ngtcp2's pools reach steady state
    testing::on_loop(loop_, [] { g_count_allocations = true; });
    const uint64_t before = g_allocations.load();
    burst(2000);
    const uint64_t after = g_allocations.load();
    testing::on_loop(loop_, [] { g_count_allocations = false; });
    const uint64_t forwarded = testing::on_loop(loop_, [&] {
      return server_->router().stats().relayed_packets;
    });
    EXPECT_EQ(forwarded, 2400u);
    std::printf("relay thread: %llu allocations while forwarding 2000 datagrams\n",
                (unsigned long long)(after - before));
    EXPECT_EQ(after - before, 0u);
  }
  clients.stop();
}

}  // namespace
}  // namespace parley::relay

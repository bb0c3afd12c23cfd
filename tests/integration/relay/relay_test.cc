// Process-level tests of parley-relay: the real executable, real QUIC over loopback UDP, and
// client contexts (src/call) as a host app would run them. Every wait has a deadline.
#include <gtest/gtest.h>
#include <sodium.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/error.h"
#include "call/context.h"
#include "identity/identity.h"
#include "media/frame_header.h"
#include "quic_peer.h"
#include "relay_process.h"
#include "signal/message.h"

#ifndef PARLEY_RELAY_BIN
#error "PARLEY_RELAY_BIN must name the parley-relay executable"
#endif

namespace parley {
namespace {

using namespace std::chrono_literals;
using call::CallState;
using call::EventType;

std::string temp_path(const char *tag) {
  char dir[] = "/tmp/parley-relay-test-XXXXXX";
  if (!mkdtemp(dir)) return "";
  return std::string(dir) + "/" + tag;
}

// A context plus everything its events told us, for the test thread to wait on.
struct Client {
  std::unique_ptr<identity::Identity> id;
  std::unique_ptr<call::Context> ctx;
  std::mutex m;
  std::condition_variable cv;
  call::RelayState relay = call::RelayState::kIdle;
  int registrations = 0;
  int last_relay_error = 0;
  std::vector<signal::CallId> incoming;
  std::map<std::vector<uint8_t>, std::pair<CallState, int>> calls;  // id -> state, error
  std::vector<std::pair<int, std::string>> errors;
  std::map<uint32_t, std::vector<std::vector<uint8_t>>> media;  // stream -> frames (hdr+payload)
  std::map<std::vector<uint8_t>, std::vector<signal::Member>> rooms;
  std::map<std::vector<uint8_t>, uint32_t> room_stream;
  bool keep_media = true;
  std::atomic<uint64_t> media_count{0};

  static std::vector<uint8_t> key(const signal::Id16 &id) {
    return std::vector<uint8_t>(id.bytes, id.bytes + 16);
  }

  int start(const SocketAddress &relay_address, const identity::Fingerprint *pin) {
    if (!id && identity::Identity::generate(&id) != kOk) return kErrInternal;
    call::ContextConfig cfg;
    SocketAddress::parse("127.0.0.1:0", &cfg.bind);
    cfg.relay.relay = relay_address;
    if (pin) cfg.relay.relay_fingerprint = *pin;
    return call::Context::create(*id, cfg, [this](const call::Event &e) { on_event(e); }, &ctx);
  }

  void on_event(const call::Event &e) {
    std::lock_guard<std::mutex> lock(m);
    switch (e.type) {
      case EventType::kRelayState:
        relay = e.relay_state;
        if (e.relay_state == call::RelayState::kRegistered) ++registrations;
        if (e.error) last_relay_error = e.error;
        break;
      case EventType::kIncomingCall:
        incoming.push_back(e.call);
        calls[key(e.call)] = {CallState::kIncoming, 0};
        break;
      case EventType::kCallState:
        calls[key(e.call)] = {e.call_state, e.error};
        break;
      case EventType::kMedia: {
        ++media_count;
        if (keep_media) {
          std::vector<uint8_t> f(media::kFrameHeaderSize + e.len);
          media::FrameHeader h;
          h.stream_id = e.stream_id;
          h.sequence = e.sequence;
          h.timestamp = e.timestamp;
          media::write_frame_header(h, f.data());
          std::copy(e.payload, e.payload + e.len, f.begin() + media::kFrameHeaderSize);
          media[e.stream_id].push_back(std::move(f));
        }
        break;
      }
      case EventType::kRoomUpdate:
        rooms[key(e.room)] = e.members;
        room_stream[key(e.room)] = e.stream_id;
        break;
      case EventType::kError:
        errors.emplace_back(e.error, e.text);
        break;
    }
    cv.notify_all();
  }

  bool wait(const std::function<bool()> &pred, std::chrono::milliseconds t = 10s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, t, pred);
  }
  bool wait_registered(int n = 1, std::chrono::milliseconds t = 10s) {
    return wait([&] { return relay == call::RelayState::kRegistered && registrations >= n; }, t);
  }
  bool wait_call(const signal::CallId &c, CallState s, std::chrono::milliseconds t = 10s) {
    return wait(
        [&] {
          auto it = calls.find(key(c));
          return it != calls.end() && it->second.first == s;
        },
        t);
  }
  int call_error(const signal::CallId &c) {
    std::lock_guard<std::mutex> lock(m);
    return calls[key(c)].second;
  }
};

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(0, sodium_init() < 0 ? -1 : 0);
    seed_ = temp_path("relay.seed");
    ASSERT_FALSE(seed_.empty());
  }
  void TearDown() override {
    std::remove(seed_.c_str());
    std::remove(seed_.substr(0, seed_.rfind('/')).c_str());
  }
  bool start_relay(std::vector<std::string> extra = {}, const char *listen = "127.0.0.1:0") {
    std::vector<std::string> args = {"--listen", listen, "--seed", seed_, "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    return relay_.start(PARLEY_RELAY_BIN, args);
  }
  std::string seed_;
  testing::RelayProcess relay_;
};

TEST_F(RelayTest, InviteRingAcceptHangupThroughTheRelayProcess) {
  ASSERT_TRUE(start_relay());
  Client a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, &relay_.fingerprint));
  ASSERT_EQ(kOk, b.start(relay_.address, &relay_.fingerprint));
  ASSERT_TRUE(a.wait_registered());
  ASSERT_TRUE(b.wait_registered());
  // The relay's register-ack carries the address it saw: our socket, on loopback.
  EXPECT_EQ(a.ctx->observed_address(), a.ctx->local_address());

  signal::CallId id;
  ASSERT_EQ(kOk, a.ctx->start_call(b.id->fingerprint(), &id));
  ASSERT_TRUE(b.wait([&] { return !b.incoming.empty(); }));
  EXPECT_EQ(b.incoming[0], id);
  ASSERT_TRUE(a.wait_call(id, CallState::kRinging));
  ASSERT_EQ(kOk, b.ctx->accept(id));
  ASSERT_TRUE(a.wait_call(id, CallState::kActive));
  ASSERT_EQ(kOk, a.ctx->hangup(id));
  ASSERT_TRUE(b.wait_call(id, CallState::kEnded));
  EXPECT_EQ(kOk, b.call_error(id));
  EXPECT_EQ(kErrCallNotFound, b.ctx->hangup(id));

  // Rejected and unanswered calls end cleanly too.
  signal::CallId id2;
  ASSERT_EQ(kOk, b.ctx->start_call(a.id->fingerprint(), &id2));
  ASSERT_TRUE(a.wait([&] { return a.incoming.size() == 1; }));
  ASSERT_EQ(kOk, a.ctx->reject(id2));
  ASSERT_TRUE(b.wait_call(id2, CallState::kEnded));
  EXPECT_EQ(kErrCallRejected, b.call_error(id2));
  EXPECT_EQ(0, relay_.stop(SIGTERM));
}

TEST_F(RelayTest, InviteToAnAbsentFingerprintGetsAClearError) {
  ASSERT_TRUE(start_relay());
  Client a;
  ASSERT_EQ(kOk, a.start(relay_.address, &relay_.fingerprint));
  ASSERT_TRUE(a.wait_registered());
  std::unique_ptr<identity::Identity> nobody;
  ASSERT_EQ(kOk, identity::Identity::generate(&nobody));
  signal::CallId id;
  ASSERT_EQ(kOk, a.ctx->start_call(nobody->fingerprint(), &id));
  ASSERT_TRUE(a.wait_call(id, CallState::kEnded));
  EXPECT_EQ(kErrPeerUnavailable, a.call_error(id));
}

TEST_F(RelayTest, UnansweredCallsTimeOutAndDisconnectEndsCalls) {
  ASSERT_TRUE(start_relay({"--ring-timeout-ms", "1000"}));
  Client a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, &relay_.fingerprint));
  ASSERT_EQ(kOk, b.start(relay_.address, &relay_.fingerprint));
  ASSERT_TRUE(a.wait_registered());
  ASSERT_TRUE(b.wait_registered());
  signal::CallId id;
  ASSERT_EQ(kOk, a.ctx->start_call(b.id->fingerprint(), &id));
  ASSERT_TRUE(b.wait([&] { return !b.incoming.empty(); }));
  ASSERT_TRUE(a.wait_call(id, CallState::kEnded, 5s));
  EXPECT_EQ(kErrTimeout, a.call_error(id));
  ASSERT_TRUE(b.wait_call(id, CallState::kEnded, 5s));
  EXPECT_EQ(kErrTimeout, b.call_error(id));

  // An active call ends for the other side when one side's context goes away.
  ASSERT_EQ(kOk, a.ctx->start_call(b.id->fingerprint(), &id));
  ASSERT_TRUE(b.wait([&] { return b.incoming.size() == 2; }));
  ASSERT_EQ(kOk, b.ctx->accept(id));
  ASSERT_TRUE(a.wait_call(id, CallState::kActive));
  b.ctx.reset();
  ASSERT_TRUE(a.wait_call(id, CallState::kEnded));
}

TEST_F(RelayTest, AnImpostorCannotActAsAnotherFingerprint) {
  ASSERT_TRUE(start_relay());
  Client alice, bob, mallory;
  ASSERT_EQ(kOk, alice.start(relay_.address, &relay_.fingerprint));
  ASSERT_EQ(kOk, bob.start(relay_.address, &relay_.fingerprint));
  ASSERT_EQ(kOk, mallory.start(relay_.address, &relay_.fingerprint));
  ASSERT_TRUE(alice.wait_registered());
  ASSERT_TRUE(bob.wait_registered());
  ASSERT_TRUE(mallory.wait_registered());

  // Calls addressed to Alice reach Alice, not Mallory, although both are registered.
  signal::CallId id;
  ASSERT_EQ(kOk, bob.ctx->start_call(alice.id->fingerprint(), &id));
  ASSERT_TRUE(alice.wait([&] { return alice.incoming.size() == 1; }));
  ASSERT_EQ(kOk, alice.ctx->accept(id));
  ASSERT_TRUE(bob.wait_call(id, CallState::kActive));
  {
    std::lock_guard<std::mutex> lock(mallory.m);
    EXPECT_TRUE(mallory.incoming.empty());
  }

  // Mallory with a hand-made client speaking the raw codec: her connection proved her key,
  // whatever her messages claim.
  std::unique_ptr<identity::Identity> mkey;
  ASSERT_EQ(kOk, identity::Identity::generate(&mkey));
  Loop loop;
  ASSERT_EQ(kOk, loop.start());
  testing::Recorder rec;
  std::unique_ptr<testing::Peer> raw;
  quic::Connection *conn = nullptr;
  testing::on_loop(loop, [&] {
    raw = std::make_unique<testing::Peer>(loop, *mkey);
    conn = raw->connect(relay_.address, testing::pin(relay_.fingerprint), rec.handler());
  });
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(rec.wait([&] { return rec.connected == 1; }));
  int64_t stream = -1;
  auto send = [&](const signal::Message &m) {
    std::vector<uint8_t> b;
    ASSERT_EQ(kOk, signal::encode(m, &b));
    testing::on_loop(loop, [&] {
      if (stream < 0) conn->open_stream(&stream);
      conn->send_message(stream, b.data(), b.size());
      raw->driver->kick();
    });
  };
  auto next_reply = [&](size_t n) {
    EXPECT_TRUE(rec.wait([&] { return rec.messages.size() >= n; }));
    signal::Message m;
    std::lock_guard<std::mutex> lock(rec.m);
    EXPECT_EQ(kOk, signal::decode(rec.messages[n - 1].data(), rec.messages[n - 1].size(), &m));
    return m;
  };
  signal::Message reg;
  reg.type = signal::Type::kRegister;
  send(reg);
  signal::Message ack = next_reply(1);
  ASSERT_EQ(ack.type, signal::Type::kRegisterAck);
  EXPECT_EQ(*ack.to, mkey->fingerprint());  // registered as herself, nothing else

  signal::Message forged;
  forged.type = signal::Type::kCallInvite;
  forged.call_id = signal::CallId::random();
  forged.from = alice.id->fingerprint();
  forged.to = bob.id->fingerprint();
  forged.ice_ufrag = "abcd";
  forged.ice_pwd = "abcdefghijklmnopqrstuv";
  forged.media_key = signal::SignedKey{};
  forged.codecs = {1};
  send(forged);
  signal::Message err = next_reply(2);
  EXPECT_EQ(err.type, signal::Type::kError);
  EXPECT_EQ(err.error_code.value_or(0), kErrPeerIdentity);

  // Hanging up Alice and Bob's call, as Alice or as herself, is refused; the call goes on.
  signal::Message hang;
  hang.type = signal::Type::kCallHangup;
  hang.call_id = id;
  hang.from = alice.id->fingerprint();
  hang.to = bob.id->fingerprint();
  send(hang);
  EXPECT_EQ(next_reply(3).error_code.value_or(0), kErrCallNotFound);
  hang.from = mkey->fingerprint();
  send(hang);
  EXPECT_EQ(next_reply(4).error_code.value_or(0), kErrCallNotFound);

  // Frames injected on every small stream id (ids are easy to guess) never reach Bob or Alice.
  for (uint32_t sid = 0; sid < 64; ++sid) {
    uint8_t frame[media::kFrameHeaderSize + 8] = {};
    media::FrameHeader h;
    h.stream_id = sid;
    media::write_frame_header(h, frame);
    testing::on_loop(loop, [&] {
      conn->send_datagram(frame, sizeof frame);
      raw->driver->kick();
    });
  }
  // Bob's own frame, sent after the injections, arrives; nothing injected came before it.
  const uint8_t hello[4] = {1, 2, 3, 4};
  ASSERT_EQ(kOk, bob.ctx->send_media(id, 1, 960, 0, hello, sizeof hello));
  ASSERT_TRUE(alice.wait([&] { return alice.media_count >= 1; }));
  EXPECT_EQ(alice.media_count.load(), 1u);
  EXPECT_EQ(bob.media_count.load(), 0u);
  ASSERT_TRUE(alice.wait_call(id, CallState::kActive, 0ms));
  testing::on_loop(loop, [&] {
    conn->close(0, "");
    raw->driver->kick();
  });
  rec.wait([&] { return !rec.closes.empty(); });
  testing::on_loop(loop, [&] { raw.reset(); });

  // A relay impostor: a second relay process with another key, at the address Alice's
  // context was told to use, is refused by the pin (the relay can't be impersonated either).
  testing::RelayProcess fake;
  const std::string fake_seed = temp_path("fake.seed");
  ASSERT_TRUE(fake.start(PARLEY_RELAY_BIN, {"--listen", "127.0.0.1:0", "--seed", fake_seed,
                                            "--stun-alt", "none", "--log-level", "error"}));
  Client victim;
  ASSERT_EQ(kOk, victim.start(fake.address, &relay_.fingerprint));
  ASSERT_TRUE(victim.wait([&] { return victim.last_relay_error == kErrPeerIdentity; }));
  EXPECT_EQ(0, victim.registrations);
  EXPECT_EQ(0, fake.stop());
  std::remove(fake_seed.c_str());
}

}  // namespace
}  // namespace parley

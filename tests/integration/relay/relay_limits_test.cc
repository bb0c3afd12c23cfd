// The relay process under abuse: its memory with members that stop reading while another
// member repeats joins at the full signaling rate, and its connection slots with one source
// opening as many connections as it can. Real parley-relay, real QUIC over loopback.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/demux.h"
#include "base/error.h"
#include "base/loop.h"
#include "identity/identity.h"
#include "quic_peer.h"
#include "relay_process.h"
#include "signal/message.h"

#ifndef PARLEY_RELAY_BIN
#error "PARLEY_RELAY_BIN must name the parley-relay executable"
#endif

namespace parley {
namespace {

using namespace std::chrono_literals;
using signal::Message;
using signal::Type;

// A raw parley/1 client whose incoming packets can be dropped from some point on: to the
// relay it is a member that stopped reading (nothing it is sent gets acknowledged).
struct RawClient {
  RawClient(Loop &loop, const SocketAddress &relay, const identity::Fingerprint &relay_fp,
            const char *bind = "127.0.0.1:0")
      : loop_(loop) {
    identity::Identity::generate(&id);
    testing::on_loop(loop, [&] {
      socket_ = std::make_unique<UdpSocket>(loop);
      SocketAddress a;
      SocketAddress::parse(bind, &a);
      ok = socket_->bind(a, [this](const uint8_t *d, size_t n, const SocketAddress &from) {
        if (deaf || classify_datagram(d, n) != DatagramKind::kQuic) return;
        driver->on_datagram(d, n, from);
      }) == kOk;
      if (!ok) return;
      quic::EndpointConfig cfg;
      ok = quic::Endpoint::create(*id, cfg,
                                  [this](const SocketAddress &to, const uint8_t *d, size_t n) {
                                    socket_->send(to, d, n);
                                  },
                                  &endpoint) == kOk;
      if (!ok) return;
      endpoint->set_local_address(socket_->local_address());
      driver = std::make_unique<quic::EndpointDriver>(loop, *endpoint);
      if (endpoint->connect(relay, testing::pin(relay_fp), rec.handler(), monotonic_now(),
                            &conn) != kOk) {
        conn = nullptr;
      }
      driver->kick();
    });
  }
  ~RawClient() {
    testing::on_loop(loop_, [&] {
      driver.reset();
      endpoint.reset();
      socket_.reset();
    });
  }
  // Waits for the handshake's outcome: true if connected, false if closed (or no answer).
  bool wait_connected() {
    rec.wait([&] { return rec.connected == 1 || !rec.closes.empty(); });
    std::lock_guard<std::mutex> lock(rec.m);
    return rec.connected == 1;
  }
  void send(const Message &m) {
    std::vector<uint8_t> b;
    ASSERT_EQ(kOk, signal::encode(m, &b));
    testing::on_loop(loop_, [&] { send_now(b); });
  }
  void send_now(const std::vector<uint8_t> &b) {  // on the loop
    if (stream < 0 && conn->open_stream(&stream) != kOk) return;
    conn->send_message(stream, b.data(), b.size());
    driver->kick();
  }
  // Waits until a message of type `t` arrived after the first `after` messages.
  bool wait_for(Type t, size_t after = 0) {
    return rec.wait([&] {
      for (size_t i = after; i < rec.messages.size(); ++i) {
        Message m;
        if (signal::decode(rec.messages[i].data(), rec.messages[i].size(), &m) == kOk &&
            m.type == t) {
          return true;
        }
      }
      return false;
    });
  }
  size_t received() {
    std::lock_guard<std::mutex> lock(rec.m);
    return rec.messages.size();
  }

  Loop &loop_;
  std::unique_ptr<UdpSocket> socket_;  // made and destroyed on the loop
  std::unique_ptr<identity::Identity> id;
  std::unique_ptr<quic::Endpoint> endpoint;
  std::unique_ptr<quic::EndpointDriver> driver;
  testing::Recorder rec;
  quic::Connection *conn = nullptr;
  int64_t stream = -1;
  std::atomic<bool> deaf{false};
  bool ok = false;
};

// Resident memory of a process in KiB (/proc/PID/status VmRSS), -1 if unreadable.
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

class RelayLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(0, sodium_init() < 0 ? -1 : 0);
    char dir[] = "/tmp/parley-relay-limits-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    ASSERT_EQ(kOk, loop_.start());
  }
  void TearDown() override {
    clients_.clear();
    loop_.stop();
    relay_.stop();
    std::remove((dir_ + "/relay.seed").c_str());
    std::remove(dir_.c_str());
  }
  bool start_relay(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--seed", dir_ + "/relay.seed",
                                     "--log-level", "error", "--stun-alt", "none"};
    args.insert(args.end(), extra.begin(), extra.end());
    return relay_.start(PARLEY_RELAY_BIN, args);
  }
  RawClient *client(const char *bind = "127.0.0.1:0") {
    clients_.push_back(
        std::make_unique<RawClient>(loop_, relay_.address, relay_.fingerprint, bind));
    return clients_.back().get();
  }
  static Message kind(Type t) {
    Message m;
    m.type = t;
    return m;
  }

  std::string dir_;
  Loop loop_;
  testing::RelayProcess relay_;
  std::vector<std::unique_ptr<RawClient>> clients_;
};

// Finding 3: before the fix every repeated room-join re-broadcast the member list to all
// members, and the relay queued it without bound for members that do not read: 16 such
// members and one client at the full signaling rate grew the relay by megabytes per second.
TEST_F(RelayLimitsTest, HeapStaysBoundedWithSilentMembersAndRepeatedJoins) {
  constexpr int kRate = 200;     // joins per second, the relay's whole signaling allowance
  constexpr int kJoins = 1200;   // six seconds of it
  constexpr long kCeilingKib = 3 * 1024;
  ASSERT_TRUE(start_relay({"--signal-rate", std::to_string(kRate), "--signal-burst",
                           std::to_string(kRate), "--max-room-size", "17"}));
  const signal::RoomId room = signal::RoomId::random();
  Message join = kind(Type::kRoomJoin);
  join.room_id = room;
  std::vector<RawClient *> silent;
  for (int i = 0; i < 16; ++i) {
    RawClient *c = client();
    ASSERT_TRUE(c->ok && c->wait_connected()) << "member " << i;
    c->send(kind(Type::kRegister));
    ASSERT_TRUE(c->wait_for(Type::kRegisterAck));
    const size_t before = c->received();
    c->send(join);
    ASSERT_TRUE(c->wait_for(Type::kRoomUpdate, before));
    silent.push_back(c);
  }
  for (RawClient *c : silent) c->deaf = true;  // from now on they read nothing

  RawClient *joiner = client();
  ASSERT_TRUE(joiner->ok && joiner->wait_connected());
  joiner->send(kind(Type::kRegister));
  ASSERT_TRUE(joiner->wait_for(Type::kRegisterAck));
  size_t before = joiner->received();
  joiner->send(join);
  ASSERT_TRUE(joiner->wait_for(Type::kRoomUpdate, before));
  const long rss_before = rss_kib(relay_.pid());
  ASSERT_GT(rss_before, 0);

  // Joins paced at the configured rate by a timer on the client's loop.
  std::vector<uint8_t> wire;
  ASSERT_EQ(kOk, signal::encode(join, &wire));
  std::atomic<int> sent{0};
  std::unique_ptr<Timer> pace;
  testing::on_loop(loop_, [&] {
    pace = std::make_unique<Timer>(loop_);
    pace->start(1000 / kRate, 1000 / kRate, [&] {
      if (sent.load() >= kJoins) return;
      joiner->send_now(wire);
      if (++sent == kJoins) joiner->rec.cv.notify_all();
    });
  });
  ASSERT_TRUE(joiner->rec.wait([&] { return sent.load() >= kJoins; }, 30s));
  testing::on_loop(loop_, [&] { pace.reset(); });
  // A leave answered with an error marks the end: the relay handled every join before it.
  before = joiner->received();
  Message leave = kind(Type::kRoomLeave);
  leave.room_id = signal::RoomId::random();
  joiner->send(leave);
  ASSERT_TRUE(joiner->wait_for(Type::kError, before));
  const long rss_after = rss_kib(relay_.pid());
  const long growth = rss_after - rss_before;
  std::printf("relay VmRSS %ld KiB -> %ld KiB (growth %ld KiB, ceiling %ld KiB)\n",
              rss_before, rss_after, growth, kCeilingKib);
  EXPECT_LT(growth, kCeilingKib);
  // The joiner got answers (its own joins are not lost, only no longer multiplied).
  EXPECT_GT(joiner->received(), before);
}

// Finding 3: the relay's queue for a member that stopped reading is capped; at the cap the
// member is closed (kCloseSlowConsumer) and leaves its rooms, and the others go on.
TEST_F(RelayLimitsTest, AMemberThatStopsReadingIsClosedAtItsQueueCap) {
  ASSERT_TRUE(start_relay({"--signal-rate", "1000", "--signal-burst", "1000",
                           "--signal-queue-bytes", "65540"}));
  const signal::RoomId room = signal::RoomId::random();
  Message join = kind(Type::kRoomJoin);
  join.room_id = room;
  Message leave = kind(Type::kRoomLeave);
  leave.room_id = room;
  RawClient *deaf = client(), *observer = client(), *churner = client();
  for (RawClient *c : {deaf, observer, churner}) {
    ASSERT_TRUE(c->ok && c->wait_connected());
    c->send(kind(Type::kRegister));
    ASSERT_TRUE(c->wait_for(Type::kRegisterAck));
  }
  for (RawClient *c : {deaf, observer}) {
    const size_t before = c->received();
    c->send(join);
    ASSERT_TRUE(c->wait_for(Type::kRoomUpdate, before));
  }
  deaf->deaf = true;
  // Legitimate churn: every join and leave is news for the members, the deaf one included.
  std::vector<uint8_t> j, l;
  ASSERT_EQ(kOk, signal::encode(join, &j));
  ASSERT_EQ(kOk, signal::encode(leave, &l));
  // Paced (a join and a leave every 5 ms), so a member that reads keeps its queue short.
  std::unique_ptr<Timer> pace;
  int cycles = 0;
  testing::on_loop(loop_, [&] {
    pace = std::make_unique<Timer>(loop_);
    pace->start(5, 5, [&] {
      if (cycles++ >= 400) return;
      churner->send_now(j);
      churner->send_now(l);
    });
  });
  // The observer learns that the deaf member is gone.
  const identity::Fingerprint gone = deaf->id->fingerprint();
  EXPECT_TRUE(observer->rec.wait(
      [&] {
        for (auto it = observer->rec.messages.rbegin(); it != observer->rec.messages.rend();
             ++it) {
          Message m;
          if (signal::decode(it->data(), it->size(), &m) != kOk || m.type != Type::kRoomUpdate) {
            continue;
          }
          for (const auto &mb : m.members) {
            if (mb.fingerprint == gone) return false;
          }
          return true;
        }
        return false;
      },
      20s));
  testing::on_loop(loop_, [&] { pace.reset(); });
  // The observer, which reads, was not touched.
  std::lock_guard<std::mutex> lock(observer->rec.m);
  EXPECT_TRUE(observer->rec.closes.empty());
}

// Finding 4: the connection cap was global, so one address could take every slot.
TEST_F(RelayLimitsTest, OneSourceCannotTakeEverySlot) {
  ASSERT_TRUE(start_relay({"--max-connections", "20", "--max-connections-per-address", "6",
                           "--max-connections-per-network", "10"}));
  // One address: six connections, then refusals that say why.
  int connected = 0;
  std::string reason;
  for (int i = 0; i < 8; ++i) {
    RawClient *c = client("127.0.0.1:0");
    ASSERT_TRUE(c->ok);
    if (c->wait_connected()) {
      ++connected;
    } else {
      std::lock_guard<std::mutex> lock(c->rec.m);
      ASSERT_FALSE(c->rec.closes.empty());
      reason = c->rec.closes[0].reason;
    }
  }
  EXPECT_EQ(connected, 6);
  EXPECT_EQ(reason, quic::kRefusedAddress);
  // Another address of the same /24: four more, then the network's share is used up.
  connected = 0;
  for (int i = 0; i < 6; ++i) {
    RawClient *c = client("127.0.0.2:0");
    ASSERT_TRUE(c->ok);
    if (c->wait_connected()) {
      ++connected;
    } else {
      std::lock_guard<std::mutex> lock(c->rec.m);
      reason = c->rec.closes.empty() ? "" : c->rec.closes[0].reason;
    }
  }
  EXPECT_EQ(connected, 4);
  EXPECT_EQ(reason, quic::kRefusedNetwork);
  // Someone elsewhere still gets in and registers.
  RawClient *legit = client("127.0.1.1:0");
  ASSERT_TRUE(legit->ok);
  ASSERT_TRUE(legit->wait_connected());
  legit->send(kind(Type::kRegister));
  EXPECT_TRUE(legit->wait_for(Type::kRegisterAck));
}

}  // namespace
}  // namespace parley

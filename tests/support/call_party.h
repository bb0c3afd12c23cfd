// What the call integration tests share: a party (a context plus everything its events
// said), a numbered-frame streamer, an active call between two parties, and the relay in the
// test's own process (so a test can tamper with what it forwards).
#ifndef PARLEY_TESTS_SUPPORT_CALL_PARTY_H
#define PARLEY_TESTS_SUPPORT_CALL_PARTY_H

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sodium.h>
#include <unistd.h>

#include "call/context.h"
#include "quic_peer.h"
#include "relay/server.h"
#include "relay_process.h"

namespace parley::testing {

using namespace std::chrono_literals;
using call::CallState;
using call::EventType;
using call::PathKind;

// One party: a context plus everything its events said, behind a lock.
struct Party {
  std::unique_ptr<identity::Identity> id;
  std::unique_ptr<call::Context> ctx;
  std::mutex m;
  std::condition_variable cv;
  bool registered = false;
  int registrations = 0;  // kRegistered events
  std::map<std::vector<uint8_t>, int> end_errors;  // an ended call's error
  std::vector<signal::CallId> incoming;
  std::map<std::vector<uint8_t>, CallState> calls;
  std::vector<std::pair<PathKind, std::string>> paths;  // kPathChanged: new path, reason
  std::set<uint64_t> frames;                              // frame numbers received
  uint64_t duplicates = 0, via_direct = 0, via_relay = 0;
  std::vector<call::Event> errors;  // kError events (text, peer, call)
  // Set: the next frame that arrives on the direct path makes this party hang up from inside
  // its event handler (while the direct connection is delivering).
  std::atomic<bool> hangup_on_direct_frame{false};

  static std::vector<uint8_t> key(const signal::Id16 &id) {
    return std::vector<uint8_t>(id.bytes, id.bytes + 16);
  }
  ~Party() { ctx.reset(); }

  // `tweak` (optional) changes the configuration before the context is created.
  int start(const SocketAddress &relay, const identity::Fingerprint &relay_fp, bool direct,
            const std::function<void(call::ContextConfig &)> &tweak = nullptr) {
    if (identity::Identity::generate(&id) != kOk) return kErrInternal;
    call::ContextConfig cfg;
    SocketAddress::parse("127.0.0.1:0", &cfg.bind);
    cfg.relay.relay = relay;
    cfg.relay.relay_fingerprint = relay_fp;
    cfg.direct.enabled = direct;
    if (tweak) tweak(cfg);
    return call::Context::create(*id, cfg, [this](const call::Event &e) { on_event(e); }, &ctx);
  }
  void on_event(const call::Event &e) {
    if (e.type == EventType::kMedia && e.path == PathKind::kDirect &&
        hangup_on_direct_frame.exchange(false)) {
      ctx->hangup(e.call);  // on the loop thread: runs inline, before this frame's handler ends
    }
    std::lock_guard<std::mutex> lock(m);
    switch (e.type) {
      case EventType::kRelayState:
        registered |= e.relay_state == call::RelayState::kRegistered;
        registrations += e.relay_state == call::RelayState::kRegistered;
        break;
      case EventType::kIncomingCall:
        incoming.push_back(e.call);
        break;
      case EventType::kCallState:
        calls[key(e.call)] = e.call_state;
        if (e.call_state == CallState::kEnded) end_errors[key(e.call)] = e.error;
        break;
      case EventType::kPathChanged:
        paths.emplace_back(e.path, e.text);
        break;
      case EventType::kError:
        errors.push_back(e);
        break;
      case EventType::kMedia: {
        uint64_t n = 0;
        for (size_t i = 0; i < 8 && i < e.len; ++i) n = n << 8 | e.payload[i];
        if (!frames.insert(n).second) ++duplicates;
        (e.path == PathKind::kDirect ? via_direct : via_relay)++;
        break;
      }
      default:
        break;
    }
    cv.notify_all();
  }
  bool wait(const std::function<bool()> &pred, std::chrono::milliseconds t = 10s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, t, pred);
  }
  // For conditions on the context's own state (call_stats and the like run on its loop
  // thread): checked without this party's lock, which the loop thread takes to deliver an
  // event (holding it here deadlocks the two), again on each event or after 10 ms.
  bool wait_on_context(const std::function<bool()> &pred, std::chrono::milliseconds t) {
    const auto deadline = std::chrono::steady_clock::now() + t;
    for (;;) {
      if (pred()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::unique_lock<std::mutex> lock(m);
      cv.wait_for(lock, 10ms);
    }
  }
  bool on_direct() {
    return !paths.empty() && paths.back().first == PathKind::kDirect;
  }
};

// Numbered frames at 50 per second (a voice stream's clock: pacing, not synchronisation), or
// faster with a shorter `interval`.
class Streamer {
 public:
  Streamer(Party &from, const signal::CallId &call,
           std::chrono::milliseconds interval = 20ms) : t_([this, &from, call, interval] {
    auto next = std::chrono::steady_clock::now();
    uint8_t payload[60] = {};
    for (uint64_t n = 1; !stop_; ++n) {
      for (int i = 0; i < 8; ++i) payload[i] = uint8_t(n >> (56 - 8 * i));
      const int r = from.ctx->send_media(call, uint32_t(n * 960), 0, payload, sizeof payload);
      if (r == kOk) {
        sent_ = n;
      } else {
        std::lock_guard<std::mutex> lock(failed_mu_);
        failed_.emplace_back(n, r);
      }
      next += interval;
      std::this_thread::sleep_until(next);
    }
  }) {}
  ~Streamer() { stop(); }
  void stop() {
    stop_ = true;
    if (t_.joinable()) t_.join();
  }
  uint64_t sent() const { return sent_; }
  // Frames the context refused (number, error): never sent, so never received.
  std::vector<std::pair<uint64_t, int>> failed() {
    std::lock_guard<std::mutex> lock(failed_mu_);
    return failed_;
  }

 private:
  std::mutex failed_mu_;
  std::vector<std::pair<uint64_t, int>> failed_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::thread t_;
};

inline void active_call(Party &a, Party &b, signal::CallId *id) {
  ASSERT_TRUE(a.wait([&] { return a.registered; }));
  ASSERT_TRUE(b.wait([&] { return b.registered; }));
  ASSERT_EQ(kOk, a.ctx->start_call(b.id->fingerprint(), id));
  ASSERT_TRUE(b.wait([&] {
    return std::find(b.incoming.begin(), b.incoming.end(), *id) != b.incoming.end();
  }));
  ASSERT_EQ(kOk, b.ctx->accept(*id));
  ASSERT_TRUE(a.wait([&] { return a.calls[Party::key(*id)] == CallState::kActive; }));
}

// The relay in this process, on the test's loop, so a test can tamper with what it forwards
// (Router::set_tamper_for_test).
inline int start_relay_in_process(Loop &loop, const identity::Identity &id,
                           std::unique_ptr<relay::Server> *out) {
  relay::RelayConfig rc;
  SocketAddress::parse("127.0.0.1:0", &rc.listen);
  rc.stun_alt_enabled = false;
  return testing::on_loop(loop, [&] { return relay::Server::create(loop, id, rc, out); });
}

// A test with the relay in its own process (start_relay_in_process), on the loop `loop_`.
class InProcessRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    ASSERT_EQ(kOk, loop_.start());
    ASSERT_EQ(kOk, identity::Identity::generate(&relay_id_));
    ASSERT_EQ(kOk, start_relay_in_process(loop_, *relay_id_, &server_));
    relay_addr_ = on_loop(loop_, [&] { return server_->address(); });
  }
  // Whatever else the test put on the loop must be gone by now.
  void TearDown() override {
    on_loop(loop_, [&] {
      server_.reset();
      return 0;
    });
    loop_.stop();
  }
  void tamper(std::function<void(signal::Message &)> f) {
    on_loop(loop_, [&] {
      server_->router().set_tamper_for_test(std::move(f));
      return 0;
    });
  }
  Loop loop_;
  std::unique_ptr<identity::Identity> relay_id_;
  std::unique_ptr<relay::Server> server_;
  SocketAddress relay_addr_;
};

// A test with a parley-relay process on loopback (PARLEY_RELAY_BIN), its identity seed in a
// temporary file removed afterwards; start_relay again restarts it with the same identity.
class RelayProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
  void TearDown() override {
    relay_.stop();
    if (!seed_.empty()) unlink(seed_.c_str());
  }
  bool start_relay(const std::string &listen = "127.0.0.1:0",
                   const std::vector<std::string> &extra = {}) {
    if (seed_.empty()) {
      seed_ = ::testing::TempDir() + "relay-" + std::to_string(getpid()) + ".seed";
      unlink(seed_.c_str());
    }
    std::vector<std::string> args = {"--listen", listen, "--seed", seed_, "--stun-alt", "none",
                                     "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    return relay_.start(PARLEY_RELAY_BIN, args);
  }
  RelayProcess relay_;
  std::string seed_;
};

}  // namespace parley::testing

#endif

// Adaptive quality on a direct call on loopback: two contexts, the relay process, real voice
// through the voice channels. The caller judges upgrades (the path is direct): proposals,
// acks and confirms cross the relay's signaling; both sides switch on agreed media
// timestamps. Impairment (loss steps, rate caps) runs in the NAT lab (tests/natlab).
#include <gtest/gtest.h>
#include <sodium.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.h"
#include "call/context.h"
#include "call_party.h"
#include "impairment_proxy.h"
#include "media/voice_profile.h"
#include "quic_peer.h"
#include "relay_process.h"

using namespace std::chrono_literals;

namespace parley {
namespace {

using call::CallState;
using call::EventType;
using call::PathKind;

struct QualityEvent {
  uint8_t from, to;
  quality::Reason reason;
  uint32_t ts;
};

struct Party {
  std::unique_ptr<identity::Identity> id;
  std::unique_ptr<call::Context> ctx;
  std::mutex m;
  std::condition_variable cv;
  bool registered = false, active = false, direct = false;
  std::vector<signal::CallId> incoming;
  std::vector<QualityEvent> quality;

  ~Party() { ctx.reset(); }
  int start(const testing::RelayProcess &relay, uint8_t profile, uint8_t best) {
    if (identity::Identity::generate(&id) != kOk) return kErrInternal;
    call::ContextConfig cfg;
    SocketAddress::parse("127.0.0.1:0", &cfg.bind);
    cfg.relay.relay = relay.address;
    cfg.relay.relay_fingerprint = relay.fingerprint;
    cfg.direct.include_loopback = true;
    cfg.audio.profile = profile;
    cfg.audio.best_profile = best;
    return call::Context::create(*id, cfg, [this](const call::Event &e) { on_event(e); }, &ctx);
  }
  void on_event(const call::Event &e) {
    std::lock_guard<std::mutex> lock(m);
    switch (e.type) {
      case EventType::kRelayState:
        registered |= e.relay_state == call::RelayState::kRegistered;
        break;
      case EventType::kIncomingCall:
        incoming.push_back(e.call);
        break;
      case EventType::kCallState:
        active = e.call_state == CallState::kActive;
        break;
      case EventType::kPathChanged:
        direct = e.path == PathKind::kDirect;
        break;
      case EventType::kQualityChanged:
        quality.push_back({e.profile_from, e.profile, e.reason, e.timestamp});
        break;
      default:
        break;
    }
    cv.notify_all();
  }
  bool wait(const std::function<bool()> &pred, std::chrono::milliseconds t = 10s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, t, pred);
  }
  // The call's voice channel; its stats are readable from any thread without the context
  // (so also inside a wait predicate, which holds `m`: a call into the context there would
  // wait for the loop thread, which may be waiting for `m` to deliver an event).
  std::shared_ptr<call::VoiceChannel> channel;
  call::VoiceStats voice() { return channel ? channel->stats() : call::VoiceStats{}; }
};

// Both sound cards: every 10 ms on an absolute clock, each side pushes a chunk of a voiced
// signal (a 140 Hz buzz with harmonics, never silent, so DTX stays off) and pulls a chunk.
class SoundCards {
 public:
  SoundCards(std::shared_ptr<call::VoiceChannel> a, std::shared_ptr<call::VoiceChannel> b)
      : t_([this, a, b] {
          std::vector<int16_t> mic(480), spk(480);
          auto next = std::chrono::steady_clock::now();
          for (uint64_t pos = 0; !stop_; pos += 480) {
            for (size_t i = 0; i < 480; ++i) {
              const double t = double(pos + i) / 48000.0;
              double x = 0;
              for (int h = 1; h <= 8; ++h) x += std::sin(2 * M_PI * 140.0 * h * t) / h;
              mic[i] = int16_t(3000 * x * (0.6 + 0.4 * std::sin(2 * M_PI * 3 * t)));
            }
            a->push(mic.data(), mic.size());
            b->push(mic.data(), mic.size());
            a->pull(spk.data(), spk.size());
            b->pull(spk.data(), spk.size());
            next += 10ms;  // the device clock (pacing, not synchronisation)
            std::this_thread::sleep_until(next);
          }
        }) {}
  ~SoundCards() {
    stop_ = true;
    t_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread t_;
};

class QualityTest : public testing::RelayProcessTest {
 protected:
  void SetUp() override {
    RelayProcessTest::SetUp();
    ASSERT_TRUE(start_relay());
  }
  // A call from a to b that is active on the direct path, with sound cards running.
  void direct_call(Party &a, Party &b, signal::CallId *id) {
    ASSERT_TRUE(a.wait([&] { return a.registered; }));
    ASSERT_TRUE(b.wait([&] { return b.registered; }));
    ASSERT_EQ(kOk, a.ctx->start_call(b.id->fingerprint(), id));
    ASSERT_TRUE(b.wait([&] { return !b.incoming.empty(); }));
    ASSERT_EQ(kOk, b.ctx->accept(*id));
    ASSERT_EQ(kOk, a.ctx->voice(*id, &a.channel));
    ASSERT_EQ(kOk, b.ctx->voice(*id, &b.channel));
    cards_ = std::make_unique<SoundCards>(a.channel, b.channel);
    ASSERT_TRUE(a.wait([&] { return a.active && a.direct; }));
    ASSERT_TRUE(b.wait([&] { return b.active && b.direct; }));
  }
  std::unique_ptr<SoundCards> cards_;
};

// The caller proposes 2 -> 1 after the hold; both switch on the agreed frame.
TEST_F(QualityTest, AnUpgradeSwitchesBothSidesOnTheAgreedFrame) {
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_, 2, 0));
  ASSERT_EQ(kOk, b.start(relay_, 2, 0));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(direct_call(a, b, &id));
  // The hold is 3 s of good reports; allow the round trip and the lead on top.
  ASSERT_TRUE(a.wait([&] { return !a.quality.empty(); }, 8s));
  ASSERT_TRUE(b.wait([&] { return !b.quality.empty(); }, 2s));
  QualityEvent qa, qb;
  {
    std::lock_guard<std::mutex> la(a.m), lb(b.m);
    qa = a.quality[0];
    qb = b.quality[0];
  }
  EXPECT_EQ(2, qa.from);
  EXPECT_EQ(1, qa.to);
  EXPECT_EQ(quality::Reason::kRecovered, qa.reason);
  EXPECT_EQ(2, qb.from);
  EXPECT_EQ(1, qb.to);
  // Each side sees the other's first frame of profile 1 carry exactly the agreed timestamp.
  ASSERT_TRUE(a.wait([&] { return a.voice().peer_profile <= 1; }, 3s));
  ASSERT_TRUE(b.wait([&] { return b.voice().peer_profile <= 1; }, 3s));
  const call::VoiceStats sa = a.voice(), sb = b.voice();
  if (sa.peer_profile == 1) {
    EXPECT_EQ(qb.ts, sa.peer_profile_since) << "callee's switch frame";
  }
  if (sb.peer_profile == 1) {
    EXPECT_EQ(qa.ts, sb.peer_profile_since) << "caller's switch frame";
  }
  // And those frames were encoded at about the same moment: each agreed timestamp is the
  // frame boundary nearest "now + lead" on its side's own grid (half a frame each way), and
  // the caller's estimate of the callee's clock carries the one-way delay and the scheduling
  // of two busy loop threads and a sound-card thread on two cores (seen up to ~20 ms under
  // ctest -j2). Bound: one frame plus that.
  const int64_t skew_us = sa.profile_switched_us - sb.profile_switched_us;
  std::printf("[ measured ] upgrade 2 -> 1: caller switched at ts %u, callee at ts %u; "
              "encoder switch skew %.1f ms\n",
              qa.ts, qb.ts, double(skew_us) / 1000.0);
  EXPECT_LE(std::llabs(skew_us), 20000 + 20000);
  call::QualityStats qs;
  ASSERT_EQ(kOk, a.ctx->call_quality(id, &qs));
  EXPECT_EQ(0u, qs.late_switches);
}

// The callee's host caps quality at profile 1: the caller's proposal of 0 is refused, and
// nobody switches.
TEST_F(QualityTest, ARefusedUpgradeChangesNothingOnEitherSide) {
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_, 1, 0));
  ASSERT_EQ(kOk, b.start(relay_, 1, 1));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(direct_call(a, b, &id));
  // The first proposal comes ~3 s after the path went direct. Refusals are not host events:
  // read the stats until one shows (a condition with a deadline).
  call::QualityStats qa, qb;
  const auto deadline = std::chrono::steady_clock::now() + 8s;
  for (;;) {
    ASSERT_EQ(kOk, a.ctx->call_quality(id, &qa));
    if (qa.refused > 0 || std::chrono::steady_clock::now() > deadline) break;
    a.wait([] { return false; }, 50ms);
  }
  ASSERT_EQ(kOk, b.ctx->call_quality(id, &qb));
  EXPECT_EQ(1u, qa.refused);
  EXPECT_EQ(1u, qb.refusals_sent);
  EXPECT_EQ(1, qa.profile);
  EXPECT_EQ(1, qb.profile);
  EXPECT_EQ(0u, qa.changes + qb.changes);
  EXPECT_EQ(1, a.voice().peer_profile);
  EXPECT_EQ(1, b.voice().peer_profile);
  std::lock_guard<std::mutex> la(a.m), lb(b.m);
  EXPECT_TRUE(a.quality.empty());
  EXPECT_TRUE(b.quality.empty());
}

}  // namespace
}  // namespace parley

namespace parley {
namespace {

// One room member: a context (its relay path through `relay`), its room events, and the
// profile the relay told it to send with.
struct Member {
  std::unique_ptr<identity::Identity> id;
  std::unique_ptr<call::Context> ctx;
  std::mutex m;
  std::condition_variable cv;
  bool registered = false;
  size_t members = 0;
  int profile = media::kDefaultProfile;
  std::vector<std::pair<std::chrono::steady_clock::time_point, QualityEvent>> changes;

  ~Member() { ctx.reset(); }
  int start(const SocketAddress &relay, const identity::Fingerprint &fp, uint8_t best) {
    if (identity::Identity::generate(&id) != kOk) return kErrInternal;
    call::ContextConfig cfg;
    SocketAddress::parse("127.0.0.1:0", &cfg.bind);
    cfg.relay.relay = relay;
    cfg.relay.relay_fingerprint = fp;
    cfg.direct.enabled = false;
    cfg.audio.best_profile = best;
    return call::Context::create(*id, cfg, [this](const call::Event &e) { on_event(e); }, &ctx);
  }
  void on_event(const call::Event &e) {
    std::lock_guard<std::mutex> lock(m);
    if (e.type == EventType::kRelayState) {
      registered |= e.relay_state == call::RelayState::kRegistered;
    } else if (e.type == EventType::kRoomUpdate) {
      members = e.members.size();
    } else if (e.type == EventType::kQualityChanged && e.is_room) {
      profile = e.profile;
      changes.emplace_back(std::chrono::steady_clock::now(),
                           QualityEvent{e.profile_from, e.profile, e.reason, e.timestamp});
    }
    cv.notify_all();
  }
  bool wait(const std::function<bool()> &pred, std::chrono::milliseconds t = 10s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, t, pred);
  }
};

// A room of four behind the relay; member 0 reaches the relay through an impairment proxy.
// 10 % loss on its link: the relay tells everyone to use what that link can carry within a
// second. Once the loss is gone the relay proposes upgrades; member 3's host caps quality at
// the current profile, so it refuses, and the round is cancelled for everyone.
TEST_F(QualityTest, ARoomFollowsItsWeakestLinkAndARefusedUpgradeIsCancelledForAll) {
  Loop loop;
  ASSERT_EQ(kOk, loop.start());
  std::unique_ptr<testing::ImpairmentProxy> proxy;
  testing::on_loop(loop, [&] {
    proxy = std::make_unique<testing::ImpairmentProxy>(loop, 20261204);
    SocketAddress any;
    SocketAddress::parse("127.0.0.1:0", &any);
    ASSERT_EQ(kOk, proxy->start(any, relay_.address));
  });
  Member mb[4];
  for (int i = 0; i < 4; ++i) {
    const SocketAddress via = i == 0 ? testing::on_loop(loop, [&] { return proxy->address(); })
                                     : relay_.address;
    ASSERT_EQ(kOk, mb[i].start(via, relay_.fingerprint, i == 3 ? 3 : 0));
  }
  signal::RoomId room = signal::RoomId::random();
  for (Member &x : mb) {
    ASSERT_TRUE(x.wait([&] { return x.registered; }));
    ASSERT_EQ(kOk, x.ctx->join_room(room));
  }
  for (Member &x : mb) ASSERT_TRUE(x.wait([&] { return x.members == 4; }));

  // Everyone sends 50 room frames a second (the host's own sealed bytes; the relay reads
  // only the header), with the profile the relay last told it.
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    uint8_t payload[80] = {};
    auto next = std::chrono::steady_clock::now();
    for (uint32_t n = 0; !stop; ++n) {
      for (Member &x : mb) {
        int p;
        {
          std::lock_guard<std::mutex> lock(x.m);
          p = x.profile;
        }
        x.ctx->send_room_media(room, n, 1000 + n * 960, uint8_t(p), payload, sizeof payload);
      }
      next += 20ms;
      std::this_thread::sleep_until(next);  // the media clock (pacing)
    }
  });
  // Two clean seconds: nothing changes.
  for (Member &x : mb) EXPECT_FALSE(x.wait([&] { return !x.changes.empty(); }, 500ms));

  testing::on_loop(loop, [&] {
    testing::Impairment lossy;
    lossy.loss = 0.10;
    proxy->set(lossy, lossy);
  });
  const auto t0 = std::chrono::steady_clock::now();
  for (Member &x : mb) {
    ASSERT_TRUE(x.wait([&] { return !x.changes.empty(); }, 3s)) << "no directive";
  }
  double worst_ms = 0;
  for (Member &x : mb) {
    std::lock_guard<std::mutex> lock(x.m);
    const auto &c = x.changes[0];
    const double ms = std::chrono::duration<double, std::milli>(c.first - t0).count();
    worst_ms = std::max(worst_ms, ms);
    EXPECT_EQ(media::kDefaultProfile, c.second.from);
    EXPECT_EQ(3, c.second.to) << "10 % loss: the first rung with redundancy";
    EXPECT_EQ(quality::Reason::kDirective, c.second.reason);
  }
  std::printf("[ measured ] room of 4, one link at 10 %% loss: everyone at profile 3 after "
              "%.0f ms (the last member)\n", worst_ms);
  EXPECT_LE(worst_ms, 1000.0);

  // The link clears. After the hold the relay proposes 2; member 3 (capped at 3) refuses.
  testing::on_loop(loop, [&] { proxy->set({}, {}); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  call::ContextStats s3, s0;
  for (;;) {
    s3 = mb[3].ctx->stats();
    s0 = mb[0].ctx->stats();
    if ((s3.room_refusals_sent > 0 && s0.room_rounds_cancelled > 0) ||
        std::chrono::steady_clock::now() > deadline) {
      break;
    }
    mb[0].wait([] { return false; }, 50ms);  // a stats condition with a deadline
  }
  stop = true;
  sender.join();
  EXPECT_GE(s3.room_refusals_sent, 1u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_GE(mb[i].ctx->stats().room_rounds_cancelled, 1u) << "member " << i;
  }
  for (Member &x : mb) {
    std::lock_guard<std::mutex> lock(x.m);
    EXPECT_EQ(1u, x.changes.size()) << "nobody upgraded";
    EXPECT_EQ(3, x.profile);
  }
  for (Member &x : mb) x.ctx.reset();
  testing::on_loop(loop, [&] { proxy.reset(); });
  loop.stop();
}

}  // namespace
}  // namespace parley

#include "path/manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <queue>
#include <vector>

#include "base/error.h"

// Counts heap allocations while `g_counting` is set (the no-allocation-per-frame test).
static std::atomic<bool> g_counting{false};
static std::atomic<uint64_t> g_allocations{0};

// Not inlined: GCC would otherwise see free() on a pointer from operator new and warn.
__attribute__((noinline)) void *operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void *p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void *p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void *p, size_t) noexcept { std::free(p); }

namespace parley::path {
namespace {

constexpr Timestamp kMs = kNanosPerMilli;
// An origin far from 0, so nothing in the manager can lean on "0 = unset".
constexpr Timestamp kT0 = 1000 * kNanosPerSecond;
Timestamp at_ms(uint64_t v) { return kT0 + v * kMs; }

PathMessage msg(MessageType t, Path p, uint64_t seq) {
  PathMessage m;
  m.type = t;
  m.path = p;
  m.sequence = seq;
  return m;
}
PathMessage propose(Path p, uint64_t seq) { return msg(MessageType::kPropose, p, seq); }
PathMessage ack(uint64_t seq) { return msg(MessageType::kAck, Path::kDirect, seq); }

bool same(const PathMessage &a, const PathMessage &b) {
  return a.type == b.type && a.path == b.path && a.sequence == b.sequence;
}

std::vector<PathMessage> messages(Manager &m) {
  std::vector<PathMessage> out;
  PathMessage x;
  while (m.poll_message(&x)) out.push_back(x);
  return out;
}

std::vector<PathEvent> events(Manager &m) {
  std::vector<PathEvent> out;
  PathEvent e;
  while (m.poll_event(&e)) out.push_back(e);
  return out;
}

// direct_up at `t`, the peer's ack 80 ms later, the window ends at t + 200 ms: kDirect.
void bring_to_direct(Manager &m, Timestamp t) {
  m.set_direct_rtt(20 * kMs);
  m.direct_up(t);
  m.on_peer_message(ack(m.attempt()), t + 80 * kMs);
  m.handle_timeout(t + 200 * kMs);
  ASSERT_EQ(m.state(), State::kDirect);
}

// --- one manager, driven by hand ---

TEST(PathManager, StartsOnTheRelay) {
  Manager m;
  EXPECT_EQ(m.state(), State::kRelay);
  EXPECT_EQ(m.active(), Path::kRelay);
  EXPECT_EQ(m.send_paths(kT0), kSendRelay);
  EXPECT_EQ(m.next_deadline(), 0u);
  EXPECT_TRUE(messages(m).empty());
  EXPECT_TRUE(events(m).empty());
  // Direct facts without a direct connection change nothing.
  m.on_direct_rx(kT0);
  m.on_direct_tx(kT0);
  m.handle_timeout(at_ms(100000));
  EXPECT_EQ(m.state(), State::kRelay);
  EXPECT_EQ(m.stats().frames_relay, 1u);
}

TEST(PathManager, NumberingIsTheWireAndAppendOnly) {
  EXPECT_EQ(int(Path::kRelay), 0);
  EXPECT_EQ(int(Path::kDirect), 1);
  EXPECT_EQ(int(MessageType::kPropose), 10);
  EXPECT_EQ(int(MessageType::kAck), 11);
  EXPECT_EQ(int(EventType::kActiveChanged), 1);
  EXPECT_EQ(int(Reason::kDirectVerified), 1);
  EXPECT_EQ(int(Reason::kDirectLost), 2);
  EXPECT_EQ(int(Reason::kDirectClosed), 3);
  EXPECT_EQ(int(Reason::kPeerFallback), 4);
  EXPECT_EQ(int(Reason::kDirectRecovered), 5);
  EXPECT_EQ(int(Reason::kConfirmTimeout), 6);
  EXPECT_STREQ(reason_name(Reason::kDirectVerified), "direct-verified");
  EXPECT_STREQ(reason_name(Reason::kPeerFallback), "peer-fallback");
  EXPECT_STREQ(reason_name(Reason(99)), "unknown");
  EXPECT_STREQ(state_name(State::kFallback), "fallback");
}

TEST(PathManager, DirectUpDualSendsAndProposes) {
  Manager m;
  m.direct_up(kT0);
  EXPECT_EQ(m.state(), State::kSwitching);
  EXPECT_EQ(m.active(), Path::kRelay);  // the host sees direct only once confirmed
  EXPECT_EQ(m.send_paths(kT0), kSendRelay | kSendDirect);
  const auto out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], propose(Path::kDirect, 1)));
  EXPECT_TRUE(events(m).empty());
  // Idempotent.
  m.direct_up(at_ms(5));
  EXPECT_EQ(m.attempt(), 1u);
  EXPECT_TRUE(messages(m).empty());
}

TEST(PathManager, EarlyAckIsRememberedUntilTheDualSendWindowEnds) {
  Manager m;
  m.set_direct_rtt(20 * kMs);
  m.direct_up(kT0);
  messages(m);
  EXPECT_EQ(m.on_peer_message(ack(1), at_ms(80)), kOk);
  EXPECT_EQ(m.state(), State::kSwitching);
  EXPECT_EQ(m.next_deadline(), at_ms(200));
  m.handle_timeout(at_ms(199));
  EXPECT_EQ(m.state(), State::kSwitching);
  EXPECT_EQ(m.send_paths(at_ms(200)), kSendDirect);  // send_paths runs the deadline itself
  EXPECT_EQ(m.state(), State::kDirect);
  EXPECT_EQ(m.active(), Path::kDirect);
  const auto ev = events(m);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, EventType::kActiveChanged);
  EXPECT_EQ(ev[0].old_path, Path::kRelay);
  EXPECT_EQ(ev[0].new_path, Path::kDirect);
  EXPECT_EQ(ev[0].reason, Reason::kDirectVerified);
  EXPECT_EQ(ev[0].attempt, 1u);
  EXPECT_EQ(ev[0].at, at_ms(200));
  EXPECT_EQ(m.stats().switches, 1u);
  EXPECT_EQ(m.stats().last_change, at_ms(200));
}

TEST(PathManager, LateAckSwitchesAtOnce) {
  Manager m;
  m.direct_up(kT0);
  m.handle_timeout(at_ms(500));
  EXPECT_EQ(m.state(), State::kSwitching);  // no ack, no switch, however long the window
  m.on_peer_message(ack(1), at_ms(600));
  EXPECT_EQ(m.state(), State::kDirect);
}

TEST(PathManager, StaleDuplicateAndUnsolicitedAcksAreIgnored) {
  Manager m;
  m.direct_up(kT0);
  EXPECT_EQ(m.on_peer_message(ack(2), at_ms(10)), kOk);  // never proposed
  m.handle_timeout(at_ms(300));
  EXPECT_EQ(m.state(), State::kSwitching);
  m.direct_down(at_ms(310));
  m.direct_up(at_ms(320));  // attempt 2
  EXPECT_EQ(m.attempt(), 2u);
  m.on_peer_message(ack(1), at_ms(330));  // the old attempt's
  m.handle_timeout(at_ms(600));
  EXPECT_EQ(m.state(), State::kSwitching);
  m.on_peer_message(ack(2), at_ms(610));
  EXPECT_EQ(m.state(), State::kDirect);
  m.on_peer_message(ack(2), at_ms(620));  // duplicate
  EXPECT_EQ(m.state(), State::kDirect);
  EXPECT_EQ(m.stats().messages_ignored, 3u);
  EXPECT_EQ(events(m).size(), 1u);
}

TEST(PathManager, InvalidMessagesAreRefused) {
  Manager m;
  m.direct_up(kT0);
  EXPECT_EQ(m.on_peer_message(ack(0), kT0), kErrInvalidArgument);
  EXPECT_EQ(m.on_peer_message(msg(MessageType(12), Path::kDirect, 1), kT0), kErrInvalidArgument);
  EXPECT_EQ(m.on_peer_message(msg(MessageType::kAck, Path(7), 1), kT0), kErrInvalidArgument);
  EXPECT_EQ(m.on_peer_message(propose(Path::kRelay, UINT64_MAX), kT0), kErrInvalidArgument);
  EXPECT_EQ(m.state(), State::kSwitching);
  // An ack about the relay means nothing in this protocol.
  EXPECT_EQ(m.on_peer_message(msg(MessageType::kAck, Path::kRelay, 1), kT0), kOk);
  m.handle_timeout(at_ms(300));
  EXPECT_EQ(m.state(), State::kSwitching);
}

TEST(PathManager, AcksThePeersProposalOnceItsDirectFramesArrive) {
  Manager m;
  m.set_direct_rtt(20 * kMs);  // dead_after 130 ms, also the ack's freshness limit
  m.direct_up(kT0);
  messages(m);
  m.on_peer_message(propose(Path::kDirect, 1), at_ms(40));
  EXPECT_TRUE(messages(m).empty());  // no direct frame from the peer yet
  m.on_direct_media(at_ms(50));
  auto out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], ack(1)));
  m.on_direct_media(at_ms(70));
  m.on_peer_message(propose(Path::kDirect, 1), at_ms(80));  // duplicate
  EXPECT_TRUE(messages(m).empty());
  // A newer proposal with fresh frames: acked at once.
  m.on_peer_message(propose(Path::kDirect, 2), at_ms(100));
  out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], ack(2)));
  // Frames older than dead_after do not prove the path works now.
  m.on_peer_message(propose(Path::kDirect, 3), at_ms(70 + 131));
  EXPECT_TRUE(messages(m).empty());
  m.on_direct_media(at_ms(250));
  out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], ack(3)));
}

TEST(PathManager, PeerProposalWithoutOurDirectIsRememberedNotActedOn) {
  Manager m;
  m.on_peer_message(propose(Path::kDirect, 1), kT0);
  EXPECT_EQ(m.state(), State::kRelay);
  EXPECT_EQ(m.send_paths(kT0), kSendRelay);
  EXPECT_TRUE(messages(m).empty());
  EXPECT_EQ(m.next_deadline(), 0u);
  // Its frames reach us before our side has reported the connection verified.
  m.on_direct_media(at_ms(30));
  auto out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], ack(1)));
  EXPECT_EQ(m.state(), State::kRelay);
  m.direct_up(at_ms(40));
  out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], propose(Path::kDirect, 1)));
}

TEST(PathManager, PeerFallbackAndStaleProposals) {
  Manager m;
  bring_to_direct(m, kT0);
  events(m);
  messages(m);
  m.on_peer_message(propose(Path::kDirect, 2), at_ms(300));
  m.on_peer_message(propose(Path::kRelay, 1), at_ms(310));  // overtaken by direct 2
  EXPECT_EQ(m.state(), State::kDirect);
  m.on_peer_message(propose(Path::kDirect, 2), at_ms(320));  // duplicate
  EXPECT_EQ(m.stats().messages_ignored, 2u);
  m.on_peer_message(propose(Path::kRelay, 2), at_ms(400));
  EXPECT_EQ(m.state(), State::kFallback);
  EXPECT_EQ(m.active(), Path::kRelay);
  EXPECT_EQ(m.send_paths(at_ms(400)), kSendRelay | kSendDirect);
  const auto ev = events(m);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].old_path, Path::kDirect);
  EXPECT_EQ(ev[0].new_path, Path::kRelay);
  EXPECT_EQ(ev[0].reason, Reason::kPeerFallback);
  EXPECT_TRUE(messages(m).empty());  // the peer knows: no echo
  // Its withdrawn proposal is not acked later.
  m.on_direct_media(at_ms(410));
  EXPECT_TRUE(messages(m).empty());
  m.on_peer_message(propose(Path::kRelay, 2), at_ms(420));
  EXPECT_EQ(m.stats().fallbacks, 1u);
}

TEST(PathManager, DeadAfterFollowsSrttWithinBounds) {
  Manager m;
  EXPECT_EQ(m.dead_after(), 1000 * kMs);  // no sample yet: the ceiling
  m.set_direct_rtt(1 * kMs);
  EXPECT_EQ(m.dead_after(), 100 * kMs);  // floor
  m.set_direct_rtt(20 * kMs);
  EXPECT_EQ(m.dead_after(), 130 * kMs);
  m.set_direct_rtt(150 * kMs);
  EXPECT_EQ(m.dead_after(), 650 * kMs);
  m.set_direct_rtt(400 * kMs);
  EXPECT_EQ(m.dead_after(), 1000 * kMs);  // ceiling
  m.set_direct_rtt(UINT64_MAX / 2);
  EXPECT_EQ(m.dead_after(), 1000 * kMs);
  Config c;
  c.dead_min_ms = 500;
  c.dead_max_ms = 200;  // corrected to the floor
  Manager n(c);
  n.set_direct_rtt(1 * kMs);
  EXPECT_EQ(n.dead_after(), 500 * kMs);
}

TEST(PathManager, SilenceWithoutSendingIsNotDeath) {
  Manager m;
  bring_to_direct(m, kT0);
  m.handle_timeout(at_ms(60000));
  EXPECT_EQ(m.state(), State::kDirect);
  EXPECT_EQ(m.next_deadline(), 0u);
  // Something sent and never answered: dead exactly dead_after later.
  m.on_direct_tx(at_ms(60000));
  m.on_direct_tx(at_ms(60020));  // the oldest unanswered send counts
  EXPECT_EQ(m.next_deadline(), at_ms(60130));
  m.handle_timeout(at_ms(60129));
  EXPECT_EQ(m.state(), State::kDirect);
  m.on_direct_rx(at_ms(60129));  // answered in time
  m.handle_timeout(at_ms(60200));
  EXPECT_EQ(m.state(), State::kDirect);
}

TEST(PathManager, DeadDirectFallsBackAndTellsThePeer) {
  Manager m;
  bring_to_direct(m, kT0);
  events(m);
  messages(m);
  m.on_direct_tx(at_ms(1000));
  EXPECT_EQ(m.send_paths(at_ms(1129)), kSendDirect);
  EXPECT_EQ(m.send_paths(at_ms(1130)), kSendRelay | kSendDirect);
  EXPECT_EQ(m.state(), State::kFallback);
  const auto ev = events(m);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].old_path, Path::kDirect);
  EXPECT_EQ(ev[0].new_path, Path::kRelay);
  EXPECT_EQ(ev[0].reason, Reason::kDirectLost);
  const auto out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], propose(Path::kRelay, 1)));
  // Dead: no recovery timer until something arrives.
  EXPECT_EQ(m.next_deadline(), 0u);
  m.handle_timeout(at_ms(10000));
  EXPECT_EQ(m.state(), State::kFallback);
}

TEST(PathManager, DeathDuringTheSwitchAbortsWithoutAnEvent) {
  Manager m;
  m.set_direct_rtt(20 * kMs);
  m.direct_up(kT0);
  messages(m);
  m.on_direct_tx(at_ms(10));
  m.handle_timeout(at_ms(140));
  EXPECT_EQ(m.state(), State::kFallback);
  EXPECT_TRUE(events(m).empty());  // the host never saw direct
  EXPECT_EQ(m.stats().aborted_attempts, 1u);
  EXPECT_EQ(m.stats().last_abort_reason, Reason::kDirectLost);
  const auto out = messages(m);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], propose(Path::kRelay, 1)));
  // An ack for the abandoned attempt does not switch.
  m.on_peer_message(ack(1), at_ms(150));
  m.handle_timeout(at_ms(400));
  EXPECT_EQ(m.state(), State::kFallback);
}

TEST(PathManager, DirectDownFromEachState) {
  {
    Manager m;
    bring_to_direct(m, kT0);
    events(m);
    messages(m);
    m.direct_down(at_ms(500));
    EXPECT_EQ(m.state(), State::kRelay);
    EXPECT_EQ(m.send_paths(at_ms(500)), kSendRelay);
    const auto ev = events(m);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].reason, Reason::kDirectClosed);
    EXPECT_EQ(ev[0].old_path, Path::kDirect);
    const auto out = messages(m);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(same(out[0], propose(Path::kRelay, 1)));
    EXPECT_EQ(m.next_deadline(), 0u);
    m.direct_down(at_ms(600));  // again: nothing
    EXPECT_TRUE(events(m).empty());
    // A later direct_up starts over.
    m.direct_up(at_ms(700));
    EXPECT_EQ(m.state(), State::kSwitching);
    EXPECT_TRUE(same(messages(m).at(0), propose(Path::kDirect, 2)));
    m.on_peer_message(ack(2), at_ms(750));
    m.handle_timeout(at_ms(900));
    const auto ev2 = events(m);
    ASSERT_EQ(ev2.size(), 1u);
    EXPECT_EQ(ev2[0].reason, Reason::kDirectVerified);
  }
  {
    Manager m;
    m.direct_up(kT0);
    messages(m);
    m.direct_down(at_ms(50));
    EXPECT_EQ(m.state(), State::kRelay);
    EXPECT_TRUE(events(m).empty());
    EXPECT_EQ(m.stats().aborted_attempts, 1u);
    EXPECT_EQ(m.stats().last_abort_reason, Reason::kDirectClosed);
    EXPECT_TRUE(same(messages(m).at(0), propose(Path::kRelay, 1)));
  }
  {
    Manager m;
    bring_to_direct(m, kT0);
    m.on_direct_tx(at_ms(300));
    m.handle_timeout(at_ms(2000));
    ASSERT_EQ(m.state(), State::kFallback);
    events(m);
    messages(m);
    m.direct_down(at_ms(2100));
    EXPECT_EQ(m.state(), State::kRelay);
    EXPECT_TRUE(events(m).empty());    // media already left direct
    EXPECT_TRUE(messages(m).empty());  // and the peer was told then
  }
}

TEST(PathManager, UnconfirmedAttemptTimesOutAndRetries) {
  Manager m;
  m.set_direct_rtt(20 * kMs);
  m.direct_up(kT0);
  messages(m);
  EXPECT_EQ(m.next_deadline(), at_ms(3000));
  m.handle_timeout(at_ms(3000));
  EXPECT_EQ(m.state(), State::kFallback);
  EXPECT_TRUE(events(m).empty());
  EXPECT_EQ(m.stats().last_abort_reason, Reason::kConfirmTimeout);
  EXPECT_TRUE(messages(m).empty());  // nothing to tell the peer: it never acked
  // The path still answers, so the retry comes after recover_after.
  EXPECT_EQ(m.next_deadline(), at_ms(4000));
  m.handle_timeout(at_ms(4000));
  EXPECT_EQ(m.state(), State::kSwitching);
  EXPECT_TRUE(same(messages(m).at(0), propose(Path::kDirect, 2)));
  m.on_peer_message(ack(2), at_ms(4100));
  m.handle_timeout(at_ms(4200));
  const auto ev = events(m);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].reason, Reason::kDirectRecovered);
}

TEST(PathManager, RecoveryWaitsForHealthyTimeWithBackoff) {
  Config c;
  c.recover_after_ms = 1000;
  c.recover_max_ms = 16000;
  c.stable_after_ms = 10000;
  Manager m(c);
  Timestamp t = kT0;
  bring_to_direct(m, t);
  t += 300 * kMs;
  const uint64_t expect_ms[] = {1000, 2000, 4000, 8000, 16000, 16000, 16000};
  for (uint64_t want : expect_ms) {
    // Direct dies shortly after each switch.
    m.on_direct_tx(t);
    t += 130 * kMs;
    m.handle_timeout(t);
    ASSERT_EQ(m.state(), State::kFallback);
    EXPECT_EQ(m.recover_after(), want * kMs);
    // Packets flow again; a new death before recover_after restarts the wait.
    t += 500 * kMs;
    m.on_direct_rx(t);
    m.handle_timeout(t + want * kMs - 1);
    ASSERT_EQ(m.state(), State::kFallback);
    t += want * kMs;
    m.handle_timeout(t);
    ASSERT_EQ(m.state(), State::kSwitching);
    m.on_peer_message(ack(m.attempt()), t);
    t += 200 * kMs;
    m.handle_timeout(t);
    ASSERT_EQ(m.state(), State::kDirect);
  }
  // Stable direct resets the backoff: the next fallback waits the base time again.
  t += 10000 * kMs;
  m.on_direct_tx(t);
  t += 130 * kMs;
  m.handle_timeout(t);
  ASSERT_EQ(m.state(), State::kFallback);
  EXPECT_EQ(m.recover_after(), 1000 * kMs);
  EXPECT_EQ(m.stats().fallbacks, 8u);
}

TEST(PathManager, MessageQueueIsBoundedAndKeepsTheNewestOfEachKind) {
  Manager m;
  m.set_direct_rtt(20 * kMs);
  Timestamp t = kT0;
  m.on_peer_message(propose(Path::kDirect, 1), t);
  m.on_direct_media(t);  // ack 1 queued
  for (int i = 0; i < 100; ++i) {
    m.direct_up(t);  // propose direct
    m.on_peer_message(propose(Path::kDirect, 2 + i), t);  // ack
    m.direct_down(t);  // propose relay
    m.on_direct_media(t);
    t += kMs;
  }
  const auto out = messages(m);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(same(out[0], propose(Path::kDirect, 100)));
  EXPECT_TRUE(same(out[1], ack(101)));
  EXPECT_TRUE(same(out[2], propose(Path::kRelay, 100)));
  EXPECT_GT(m.stats().messages_coalesced, 200u);
}

TEST(PathManager, EventQueueIsBoundedDroppingTheOldest) {
  Manager m;
  Timestamp t = kT0;
  for (int i = 0; i < 10; ++i) {  // 20 changes, never polled
    m.direct_up(t);
    m.on_peer_message(ack(m.attempt()), t);
    t += 200 * kMs;
    m.handle_timeout(t);
    m.direct_down(t);
    t += kMs;
  }
  const auto ev = events(m);
  ASSERT_EQ(ev.size(), Manager::kMaxEvents);
  EXPECT_EQ(m.stats().events_dropped, 20u - Manager::kMaxEvents);
  EXPECT_EQ(ev.back().reason, Reason::kDirectClosed);
  EXPECT_EQ(ev.back().attempt, 10u);
  for (size_t i = 1; i < ev.size(); ++i) {
    EXPECT_GE(ev[i].at, ev[i - 1].at);
    EXPECT_NE(ev[i].reason, ev[i - 1].reason);  // verified, closed, verified, ...
  }
}

TEST(PathManager, NoAllocationPerFrame) {
  Manager m;
  m.set_direct_rtt(20 * kMs);
  Timestamp t = kT0;
  g_allocations = 0;
  g_counting = true;
  m.direct_up(t);
  for (int i = 0; i < 20000; ++i) {  // 400 s of media through every state
    const unsigned p = m.send_paths(t);
    if (p & kSendDirect) m.on_direct_tx(t);
    if (i % 3000 < 2000) m.on_direct_rx(t + 5 * kMs);
    if (i % 3000 == 50) m.on_peer_message(ack(m.attempt()), t);
    PathMessage pm;
    PathEvent pe;
    while (m.poll_message(&pm)) {
    }
    while (m.poll_event(&pe)) {
    }
    m.handle_timeout(t);
    t += 20 * kMs;
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0u);
  EXPECT_GT(m.stats().switches, 1u);
  EXPECT_GT(m.stats().fallbacks, 1u);
}

// --- two managers against each other on a simulated pair of paths ---

struct Link {
  uint32_t relay_ms = 40;
  uint32_t direct_ms = 10;
  uint32_t direct_jitter_ms = 0;  // extra 0..n ms per direct packet (reorders)
  uint32_t ack_delay_ms = 25;     // the receiver's QUIC max_ack_delay, always used in full
  uint32_t signal_jitter_ms = 0;  // extra 0..n ms per signaling message (reorders)
  bool duplicate_signal = false;  // every signaling message delivered twice
};

class Sim {
 public:
  static constexpr uint32_t kFrameMs = 20;
  static constexpr size_t kMaxFrames = 1 << 16;

  struct Side {
    explicit Side(const Config &c) : m(c) {}
    Manager m;
    bool transport_up = false;  // the direct QUIC connection carries packets at this end
    uint32_t next_seq = 0;
    std::vector<uint8_t> sent_mask = std::vector<uint8_t>(kMaxFrames);
    std::vector<Timestamp> sent_at = std::vector<Timestamp>(kMaxFrames);
    // Receiver of the other side's frames: de-duplication by sequence, as the replay window.
    std::vector<uint8_t> got = std::vector<uint8_t>(kMaxFrames);
    std::vector<Timestamp> arrival = std::vector<Timestamp>(kMaxFrames);
    uint64_t unique = 0, duplicates = 0;
    std::vector<PathEvent> events;
    Timestamp timer_at = 0;
  };

  Sim(const Link &link, const Config &c = Config()) : link_(link), side_{Side(c), Side(c)} {}

  Side &side(int i) { return side_[i]; }
  Manager &m(int i) { return side_[i].m; }
  Timestamp now() const { return now_; }

  // The direct path's state per sending direction, as a function of time.
  std::function<bool(int from, Timestamp t)> direct_ok = [](int, Timestamp) { return true; };

  void at(Timestamp t, std::function<void()> fn) { q_.push(Item{t, order_++, std::move(fn)}); }

  void run_until(Timestamp end) {
    while (!q_.empty() && q_.top().at <= end) {
      Item it = q_.top();
      q_.pop();
      now_ = it.at;
      it.fn();
    }
    now_ = end;
  }

  // Both sides send a frame every 20 ms in [start, end), side 1 offset by 7 ms.
  void media(Timestamp start, Timestamp end) {
    for (int i = 0; i < 2; ++i) tick(i, start + Timestamp(i) * 7 * kMs, end);
  }

  // The direct connection becomes usable at both ends at `t`; each manager hears direct_up
  // at t + delay[i] (verification callbacks need not run at the same moment).
  void direct_up(Timestamp t, uint32_t delay0_ms = 0, uint32_t delay1_ms = 0) {
    at(t, [this] { side_[0].transport_up = side_[1].transport_up = true; });
    const uint32_t delay[2] = {delay0_ms, delay1_ms};
    for (int i = 0; i < 2; ++i) {
      at(t + delay[i] * kMs, [this, i] {
        m(i).set_direct_rtt(Timestamp(2 * link_.direct_ms) * kMs);
        m(i).direct_up(now_);
        after_input(i);
      });
    }
  }
  // Side `i` closes the connection at `t`; the other end learns one direct latency later.
  void direct_down(Timestamp t, int i) {
    for (int k = 0; k < 2; ++k) {
      const int s = k == 0 ? i : 1 - i;
      at(t + (k == 0 ? 0 : link_.direct_ms * kMs), [this, s] {
        side_[s].transport_up = false;
        m(s).direct_down(now_);
        after_input(s);
      });
    }
  }

  struct Report {
    uint64_t sent = 0, lost = 0, both = 0, dropped_copies = 0;
    uint64_t longest_missing_run = 0;  // frames
    Timestamp longest_silence = 0;     // between arrivals of new frames
    uint64_t missing_ms() const { return longest_missing_run * kFrameMs; }
  };
  // What receiver `j` got of the other side's frames sent in [from, to).
  Report report(int j, Timestamp from = 0, Timestamp to = UINT64_MAX) {
    const Side &tx = side_[1 - j], &rx = side_[j];
    Report r;
    uint64_t run = 0;
    std::vector<Timestamp> arrivals;
    for (uint32_t s = 0; s < tx.next_seq; ++s) {
      if (tx.sent_at[s] < from || tx.sent_at[s] >= to) continue;
      ++r.sent;
      if (tx.sent_mask[s] == (kSendRelay | kSendDirect)) ++r.both;
      if (rx.got[s]) {
        arrivals.push_back(rx.arrival[s]);
        run = 0;
      } else {
        ++r.lost;
        r.longest_missing_run = std::max(r.longest_missing_run, ++run);
      }
    }
    std::sort(arrivals.begin(), arrivals.end());
    for (size_t k = 1; k < arrivals.size(); ++k) {
      r.longest_silence = std::max(r.longest_silence, arrivals[k] - arrivals[k - 1]);
    }
    r.dropped_copies = rx.duplicates;
    return r;
  }

 private:
  struct Item {
    Timestamp at;
    uint64_t order;
    std::function<void()> fn;
    bool operator<(const Item &o) const {  // priority_queue: "largest" first
      return at != o.at ? at > o.at : order > o.order;
    }
  };

  uint32_t rand(uint32_t n) {  // deterministic
    rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
    return n ? uint32_t(rng_ >> 33) % (n + 1) : 0;
  }

  void tick(int i, Timestamp t, Timestamp end) {
    if (t >= end) return;
    at(t, [this, i, t, end] {
      Side &s = side_[i];
      const uint32_t seq = s.next_seq++;
      const unsigned mask = m(i).send_paths(now_);
      s.sent_mask[seq] = uint8_t(mask);
      s.sent_at[seq] = now_;
      if (mask & kSendRelay) {
        at(now_ + link_.relay_ms * kMs, [this, i, seq] { receive(1 - i, seq); });
      }
      if ((mask & kSendDirect) && s.transport_up) {
        m(i).on_direct_tx(now_);
        send_direct(i, [this, i, seq] {
          const int j = 1 - i;
          receive(j, seq);
          m(j).on_direct_media(now_);
          after_input(j);
          // The receiver's QUIC acks it (not ack-eliciting itself).
          at(now_ + link_.ack_delay_ms * kMs, [this, j] {
            send_direct(j, [this, j] {
              m(1 - j).on_direct_rx(now_);
              after_input(1 - j);
            });
          });
        });
      }
      after_input(i);
      tick(i, t + kFrameMs * kMs, end);
    });
  }

  // A packet from side i on the direct path: lost if the path is down when it leaves or
  // when it would arrive, or if either end has no connection.
  void send_direct(int i, std::function<void()> deliver) {
    if (!side_[i].transport_up || !direct_ok(i, now_)) return;
    const Timestamp arrive = now_ + (link_.direct_ms + rand(link_.direct_jitter_ms)) * kMs;
    at(arrive, [this, i, deliver] {
      if (!direct_ok(i, now_) || !side_[1 - i].transport_up) return;
      deliver();
    });
  }

  void receive(int j, uint32_t seq) {
    Side &s = side_[j];
    if (s.got[seq]) {
      ++s.duplicates;
      return;
    }
    s.got[seq] = 1;
    s.arrival[seq] = now_;
    ++s.unique;
  }

  // After any input to side i: collect events, ship messages over the relay, re-arm its timer.
  void after_input(int i) {
    Side &s = side_[i];
    PathEvent e;
    while (m(i).poll_event(&e)) s.events.push_back(e);
    PathMessage pm;
    while (m(i).poll_message(&pm)) {
      const int copies = link_.duplicate_signal ? 2 : 1;
      for (int c = 0; c < copies; ++c) {
        const Timestamp t = now_ + (link_.relay_ms + rand(link_.signal_jitter_ms)) * kMs;
        at(t, [this, i, pm] {
          EXPECT_EQ(m(1 - i).on_peer_message(pm, now_), kOk);
          after_input(1 - i);
        });
      }
    }
    const Timestamp d = m(i).next_deadline();
    if (d != 0 && d != s.timer_at) {
      s.timer_at = d;
      at(std::max(d, now_), [this, i, d] {
        if (side_[i].timer_at != d) return;  // superseded
        side_[i].timer_at = 0;
        m(i).handle_timeout(now_);
        after_input(i);
      });
    }
  }

  Link link_;
  Side side_[2];
  Timestamp now_ = 0;
  uint64_t order_ = 0;
  uint64_t rng_ = 42;
  std::priority_queue<Item> q_;
};

std::vector<Reason> reasons(const Sim::Side &s) {
  std::vector<Reason> out;
  for (const auto &e : s.events) out.push_back(e.reason);
  return out;
}

void print(const char *what, int j, const Sim::Report &r) {
  std::printf("[ %s ] receiver %d: sent %llu, lost %llu, sent on both %llu, second copies "
              "dropped %llu, longest gap %llu ms of missing frames, longest silence %llu ms\n",
              what, j, (unsigned long long)r.sent, (unsigned long long)r.lost,
              (unsigned long long)r.both, (unsigned long long)r.dropped_copies,
              (unsigned long long)r.missing_ms(),
              (unsigned long long)(r.longest_silence / kMs));
}

TEST(PathManagerSim, SwitchToDirectLosesAndDuplicatesNothing) {
  Link link;
  Sim sim(link);
  sim.media(kT0, at_ms(10000));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(12000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("switch", j, r);
    EXPECT_EQ(sim.m(j).state(), State::kDirect);
    EXPECT_EQ(r.sent, 500u);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(sim.side(j).unique, r.sent);  // each frame passed up exactly once
    EXPECT_EQ(r.dropped_copies, r.both);    // every second copy arrived and was dropped
    // The ack is back after ~2 relay latencies (80 ms), inside the 200 ms minimum window, so
    // the window alone bounds the dual sending: 200 / 20 = 10 frames (+1 for phase).
    EXPECT_GE(r.both, 10u);
    EXPECT_LE(r.both, 11u);
    const auto &ev = sim.side(j).events;
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].old_path, Path::kRelay);
    EXPECT_EQ(ev[0].new_path, Path::kDirect);
    EXPECT_EQ(ev[0].reason, Reason::kDirectVerified);
    EXPECT_EQ(ev[0].at, at_ms(1200));
    EXPECT_EQ(sim.m(j).stats().attempts, 1u);
  }
}

TEST(PathManagerSim, OneSideVerifiesLate) {
  Sim sim{Link()};
  sim.media(kT0, at_ms(6000));
  // Side 1's manager hears direct_up 300 ms after the connection carries packets; side 0's
  // proposal reaches it first and is acked from the frames alone.
  sim.direct_up(at_ms(1000), 0, 300);
  sim.run_until(at_ms(8000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("late verify", j, r);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(sim.m(j).state(), State::kDirect);
    ASSERT_EQ(sim.side(j).events.size(), 1u);
  }
  EXPECT_EQ(sim.side(0).events[0].at, at_ms(1200));
  EXPECT_EQ(sim.side(1).events[0].at, at_ms(1500));
}

// Every test that breaks the direct path kills it at 5 s, after both are on direct.
constexpr uint64_t kKillMs = 5000;

TEST(PathManagerSim, KilledDirectPathBothFallBackWithinTheBound) {
  Sim sim{Link()};
  sim.direct_ok = [](int, Timestamp t) { return t < at_ms(kKillMs); };
  sim.media(kT0, at_ms(9000));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(10000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("kill", j, r);
    EXPECT_EQ(sim.m(j).state(), State::kFallback);
    EXPECT_LE(r.missing_ms(), 300u);
    EXPECT_LE(r.longest_silence, 300 * kMs);
    EXPECT_EQ(r.lost, r.longest_missing_run);  // one hole, nothing else
    const auto rs = reasons(sim.side(j));
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0], Reason::kDirectVerified);
    EXPECT_TRUE(rs[1] == Reason::kDirectLost || rs[1] == Reason::kPeerFallback);
    EXPECT_EQ(sim.side(j).events[1].new_path, Path::kRelay);
    // Kept probing direct in kFallback, so recovery can be noticed.
    EXPECT_EQ(sim.m(j).send_paths(sim.now()), kSendRelay | kSendDirect);
  }
}

TEST(PathManagerSim, OneWayBreakMakesThePeerFallBackToo) {
  Sim sim{Link()};
  // Only side 0 -> side 1 breaks: side 0 keeps receiving and would never notice by itself.
  sim.direct_ok = [](int from, Timestamp t) { return from == 1 || t < at_ms(kKillMs); };
  sim.media(kT0, at_ms(9000));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(10000));
  const Sim::Report r = sim.report(1);
  print("one-way break", 1, r);
  EXPECT_LE(r.missing_ms(), 300u);
  EXPECT_LE(r.longest_silence, 300 * kMs);
  EXPECT_EQ(sim.report(0).lost, 0u);
  EXPECT_EQ(reasons(sim.side(1)),
            (std::vector<Reason>{Reason::kDirectVerified, Reason::kDirectLost}));
  EXPECT_EQ(reasons(sim.side(0)),
            (std::vector<Reason>{Reason::kDirectVerified, Reason::kPeerFallback}));
  EXPECT_EQ(sim.m(1).state(), State::kFallback);
  // Side 0 still hears side 1 on direct and tries again, but side 1 never sees its frames,
  // so every attempt ends unconfirmed and media stays on both paths.
  EXPECT_NE(sim.m(0).state(), State::kDirect);
  EXPECT_GE(sim.m(0).stats().aborted_attempts, 1u);
  EXPECT_EQ(sim.m(0).stats().last_abort_reason, Reason::kConfirmTimeout);
}

TEST(PathManagerSim, RestoredDirectPathReturnsBothToDirectWithoutLoss) {
  Sim sim{Link()};
  sim.direct_ok = [](int, Timestamp t) { return t < at_ms(kKillMs) || t >= at_ms(7000); };
  sim.media(kT0, at_ms(12000));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(13000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("restore", j, r);
    EXPECT_EQ(sim.m(j).state(), State::kDirect);
    EXPECT_LE(r.missing_ms(), 300u);
    EXPECT_EQ(r.lost, r.longest_missing_run);
    const Sim::Report after = sim.report(j, at_ms(kKillMs + 1000));
    EXPECT_EQ(after.lost, 0u);
    const auto rs = reasons(sim.side(j));
    ASSERT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[0], Reason::kDirectVerified);
    EXPECT_TRUE(rs[1] == Reason::kDirectLost || rs[1] == Reason::kPeerFallback);
    EXPECT_EQ(rs[2], Reason::kDirectRecovered);
    // Healthy for recover_after (1 s) from the first packet after 7 s, then the 200 ms window.
    EXPECT_GE(sim.side(j).events[2].at, at_ms(8200));
    EXPECT_LE(sim.side(j).events[2].at, at_ms(8300));
    EXPECT_EQ(sim.m(j).stats().switches, 2u);
    EXPECT_EQ(sim.m(j).stats().fallbacks, 1u);
  }
}

TEST(PathManagerSim, DirectDownGoesBackToTheRelay) {
  Sim sim{Link()};
  sim.media(kT0, at_ms(8000));
  sim.direct_up(at_ms(1000));
  sim.direct_down(at_ms(kKillMs), 0);
  sim.run_until(at_ms(9000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("direct down", j, r);
    EXPECT_EQ(sim.m(j).state(), State::kRelay);
    EXPECT_EQ(sim.m(j).send_paths(sim.now()), kSendRelay);
    // Only what was in flight on the closing connection.
    EXPECT_LE(r.lost, 1u);
    EXPECT_EQ(reasons(sim.side(j)),
              (std::vector<Reason>{Reason::kDirectVerified, Reason::kDirectClosed}));
  }
}

TEST(PathManagerSim, SlowDirectPathIsNotDeclaredDead) {
  Link link;
  link.direct_ms = 75;  // srtt 150 ms
  link.direct_jitter_ms = 30;
  link.relay_ms = 120;
  Sim sim(link);
  sim.media(kT0, at_ms(30000));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(32000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("slow path", j, r);
    EXPECT_EQ(sim.m(j).state(), State::kDirect);
    EXPECT_EQ(sim.m(j).stats().fallbacks, 0u);
    EXPECT_EQ(sim.m(j).stats().aborted_attempts, 0u);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(sim.m(j).dead_after(), 650 * kMs);
  }
}

TEST(PathManagerSim, DuplicatedAndReorderedSignalingIsHarmless) {
  Link link;
  link.duplicate_signal = true;
  link.signal_jitter_ms = 150;  // messages overtake each other
  Sim sim(link);
  sim.direct_ok = [](int, Timestamp t) { return t < at_ms(kKillMs) || t >= at_ms(7000); };
  sim.media(kT0, at_ms(12000));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(14000));
  for (int j = 0; j < 2; ++j) {
    const Sim::Report r = sim.report(j);
    print("dup+reorder signaling", j, r);
    EXPECT_EQ(sim.m(j).state(), State::kDirect);
    EXPECT_LE(r.missing_ms(), 300u);
    EXPECT_EQ(r.lost, r.longest_missing_run);
    EXPECT_EQ(sim.m(j).stats().switches, 2u);
    EXPECT_EQ(sim.m(j).stats().attempts, 2u);
    EXPECT_GT(sim.m(j).stats().messages_ignored, 0u);  // the duplicates
  }
}

// Counts switches to direct per side while `ok` flaps, and prints them.
struct FlapResult {
  uint64_t switches[2], fallbacks[2], lost[2];
};
FlapResult flap(const Config &c, std::function<bool(Timestamp)> ok, uint64_t end_ms,
                const char *what) {
  Sim sim(Link(), c);
  sim.direct_ok = [ok](int, Timestamp t) { return ok(t); };
  sim.media(kT0, at_ms(end_ms));
  sim.direct_up(at_ms(1000));
  sim.run_until(at_ms(end_ms + 1000));
  FlapResult f;
  for (int j = 0; j < 2; ++j) {
    f.switches[j] = sim.m(j).stats().switches;
    f.fallbacks[j] = sim.m(j).stats().fallbacks;
    f.lost[j] = sim.report(j).lost;
    std::printf("[ %s ] side %d: %llu switches to direct, %llu fallbacks, %llu frames lost, "
                "recover_after now %llu ms\n",
                what, j, (unsigned long long)f.switches[j], (unsigned long long)f.fallbacks[j],
                (unsigned long long)f.lost[j],
                (unsigned long long)(sim.m(j).recover_after() / kMs));
  }
  return f;
}

TEST(PathManagerSim, PathFlappingEvery500msDoesNotBounceMedia) {
  // Up and down in turns of 500 ms from 5 s to 35 s: never healthy for recover_after (1 s).
  auto ok = [](Timestamp t) {
    if (t < at_ms(kKillMs) || t >= at_ms(35000)) return true;
    return ((t - at_ms(kKillMs)) / (500 * kMs)) % 2 == 1;
  };
  const FlapResult f = flap(Config(), ok, 40000, "flap 500/500");
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(f.fallbacks[j], 1u);  // the first break
    EXPECT_EQ(f.switches[j], 2u);   // the first switch, and the one after flapping stops
  }
}

TEST(PathManagerSim, RepeatedFailuresBackOff) {
  // Up 1.5 s, down 0.3 s, for 60 s: each up period is longer than recover_after, so without
  // backoff every period brings one switch and one fallback (with its hole of lost frames).
  auto ok = [](Timestamp t) {
    if (t < at_ms(kKillMs)) return true;
    return (t - at_ms(kKillMs)) % (1800 * kMs) >= 300 * kMs;
  };
  Config no_backoff;
  no_backoff.recover_max_ms = no_backoff.recover_after_ms;
  const FlapResult without = flap(no_backoff, ok, 65000, "flap 1500/300, no backoff");
  const FlapResult with = flap(Config(), ok, 65000, "flap 1500/300, backoff");
  for (int j = 0; j < 2; ++j) {
    EXPECT_GE(without.switches[j], 20u);
    // With backoff the second failure already needs 2 s of health, which never comes.
    EXPECT_LE(with.switches[j], 3u);
    EXPECT_LE(with.fallbacks[j], 3u);
    EXPECT_LT(with.lost[j], without.lost[j]);
  }
}

}  // namespace
}  // namespace parley::path

// Direct calls on loopback: two contexts, a relay, ICE checks over the contexts' shared
// sockets, the pinned peer-to-peer QUIC connection and the path manager moving real sealed
// frames. The NAT matrix, path kills and rebinding run in the NAT lab (tests/natlab).
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/demux.h"
#include "call/context.h"
#include "call_party.h"
#include "context_test_access.h"
#include "media/frame_header.h"
#include "ice/agent.h"
#include "quic_peer.h"
#include "relay/server.h"
#include "relay_process.h"

using namespace std::chrono_literals;

namespace parley {
namespace {

using call::CallState;
using call::EventType;
using call::PathKind;
using testing::Party;
using testing::Streamer;
using testing::active_call;
using testing::start_relay_in_process;

class DirectTest : public testing::RelayProcessTest {};

TEST_F(DirectTest, ACallMovesFromTheRelayToDirectWithoutLosingOrRepeatingAFrame) {
  ASSERT_TRUE(start_relay());
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, true));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, true));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  Streamer sa(a, id), sb(b, id);
  // Media starts on the relay at once (its first copies may still arrive second: the direct
  // path, dialed on the first valid pair, can be up within a frame or two); the switch comes
  // when the pinned direct connection is up and both sides confirmed.
  call::CallStats st;
  ASSERT_TRUE(a.wait_on_context([&] {
    return a.ctx->call_stats(id, &st) == kOk && st.sent_relay > 0;
  }, 5s)) << "no frame on the relay";
  ASSERT_TRUE(a.wait([&] { return a.on_direct(); }, 5s));
  ASSERT_TRUE(b.wait([&] { return b.on_direct(); }, 5s));
  // Keep streaming a while on the direct path, then stop and let the tail arrive.
  const uint64_t mark_a = sa.sent() + 50, mark_b = sb.sent() + 50;
  ASSERT_TRUE(b.wait([&] { return b.frames.size() >= mark_a; }, 5s));
  ASSERT_TRUE(a.wait([&] { return a.frames.size() >= mark_b; }, 5s));
  sa.stop();
  sb.stop();
  ASSERT_TRUE(b.wait([&] { return !b.frames.empty() && *b.frames.rbegin() == sa.sent(); }, 3s));
  ASSERT_TRUE(a.wait([&] { return !a.frames.empty() && *a.frames.rbegin() == sb.sent(); }, 3s));

  call::CallStats st_a, st_b;
  ASSERT_EQ(kOk, a.ctx->call_stats(id, &st_a));
  ASSERT_EQ(kOk, b.ctx->call_stats(id, &st_b));
  for (Party *p : {&a, &b}) {
    std::lock_guard<std::mutex> lock(p->m);
    const uint64_t sent = p == &a ? sb.sent() : sa.sent();
    EXPECT_EQ(p->frames.size(), sent) << "every frame arrived exactly once";
    EXPECT_EQ(*p->frames.begin(), 1u);
    EXPECT_EQ(p->duplicates, 0u);
    EXPECT_GT(p->via_direct, 0u);
    ASSERT_EQ(p->paths.size(), 1u);
    EXPECT_EQ(p->paths[0].second, "direct-verified");
  }
  std::printf("time to direct: caller %lld ms, callee %lld ms; copies dropped as duplicates: "
              "%llu / %llu; selected pair %s -> %s\n",
              (long long)st_a.time_to_direct_ms, (long long)st_b.time_to_direct_ms,
              (unsigned long long)st_a.duplicates, (unsigned long long)st_b.duplicates,
              st_a.local_candidate.c_str(), st_a.remote_candidate.c_str());
  EXPECT_EQ(st_a.path, PathKind::kDirect);
  EXPECT_EQ(st_b.path, PathKind::kDirect);
  EXPECT_EQ(st_a.auth_failed + st_b.auth_failed, 0u);
  EXPECT_EQ(st_a.lost + st_b.lost, 0u);
  EXPECT_NE(st_a.remote_candidate.find(b.ctx->local_address().to_string()), std::string::npos);
  // Relay copies stop after the switch: far fewer than the frames sent.
  EXPECT_LT(st_a.sent_relay, st_a.frames_sent / 2);
}

// Contexts destroyed the moment their call is active, while the caller's direct handshake
// (dialed on the first valid pair) is still under way: the callee has accepted a connection
// its session does not know yet, whose close at teardown must not reach the freed session
// (ASan: heap-use-after-free in the accept handler in about one run in four, before).
TEST_F(DirectTest, DestroyingContextsDuringTheDirectHandshakeTouchesNoFreedSession) {
  ASSERT_TRUE(start_relay());
  for (int i = 0; i < 5; ++i) {
    Party a, b;
    auto dual_stack = [](call::ContextConfig &c) {
      c.bind = SocketAddress();  // the default sockets: more pairs, more handshakes
      c.direct.include_loopback = true;
    };
    ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, true, dual_stack));
    ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, true, dual_stack));
    signal::CallId id;
    ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  }
}

TEST_F(DirectTest, WithTheDirectPathDisabledTheCallStaysOnTheRelay) {
  ASSERT_TRUE(start_relay());
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, false));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, true));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  Streamer sa(a, id);
  ASSERT_TRUE(b.wait([&] { return b.frames.size() >= 20; }, 5s));
  call::CallStats st;
  ASSERT_EQ(kOk, a.ctx->call_stats(id, &st));
  EXPECT_EQ(st.path, PathKind::kRelay);
  EXPECT_EQ(st.direct_error, kErrIceFailed);
  std::lock_guard<std::mutex> lock(b.m);
  EXPECT_TRUE(b.paths.empty());
}

// A malicious relay (the in-process router with a tamper hook) swaps the callee's ICE
// credentials and candidates in the accept for those of Mallory, a third party that answers
// the caller's checks correctly and accepts its QUIC connection with Mallory's own identity.
// Pinning refuses the handshake: the call stays on the relay and Mallory gets no media.
class DirectMitmTest : public testing::InProcessRelayTest {};

TEST_F(DirectMitmTest, ARelayHandingOutAThirdPartysCandidateNeverGetsTheDirectPath) {
  Loop &loop = loop_;
  std::unique_ptr<identity::Identity> mallory_id;
  ASSERT_EQ(kOk, identity::Identity::generate(&mallory_id));

  // Mallory: a socket with an ICE agent (controlled) and a QUIC endpoint that accepts anyone.
  std::mutex mm;
  std::atomic<int> mallory_connected{0}, mallory_datagrams{0};
  auto msock_owner = std::make_unique<UdpSocket>(loop);
  UdpSocket &msock = *msock_owner;
  std::unique_ptr<quic::Endpoint> mep;
  std::unique_ptr<quic::EndpointDriver> mdrv;
  std::unique_ptr<ice::Agent> magent;
  auto mtimer_owner = std::make_unique<Timer>(loop);
  Timer &mtimer = *mtimer_owner;
  std::function<void()> mpump = [&] {
    const Timestamp now = monotonic_now();
    magent->handle_timeout(now);
    ice::Datagram d;
    while (magent->poll_transmit(now, &d)) msock.send(d.to, d.data, d.len);
    ice::AgentEvent e;
    while (magent->poll_event(&e)) {
    }
    const Timestamp next = magent->next_deadline();
    if (next) mtimer.start(next > now ? (next - now) / 1000000 + 1 : 0, 0, mpump);
  };
  SocketAddress mallory_addr;
  ASSERT_EQ(kOk, testing::on_loop(loop, [&]() -> int {
              SocketAddress b;
              SocketAddress::parse("127.0.0.1:0", &b);
              int r = msock.bind(b, [&](const uint8_t *d, size_t n, const SocketAddress &from) {
                if (classify_datagram(d, n) == DatagramKind::kQuic) {
                  mdrv->on_datagram(d, n, from);
                } else if (magent && magent->handle_datagram(d, n, from, monotonic_now())) {
                  mpump();
                }
              });
              if (r != kOk) return r;
              mallory_addr = msock.local_address();
              r = quic::Endpoint::create(
                  *mallory_id, {},
                  [&](const SocketAddress &to, const uint8_t *d, size_t n) { msock.send(to, d, n); },
                  &mep);
              if (r != kOk) return r;
              mep->set_local_address(mallory_addr);
              mep->set_accept([&](const SocketAddress &) {
                quic::Endpoint::Incoming in;
                in.verify = [](const identity::Fingerprint &) { return true; };
                in.handler = [&](quic::Connection &, const quic::Event &e) {
                  if (e.type == quic::EventType::kConnected) ++mallory_connected;
                  if (e.type == quic::EventType::kDatagram) ++mallory_datagrams;
                };
                return in;
              });
              mdrv = std::make_unique<quic::EndpointDriver>(loop, *mep);
              return kOk;
            }));

  // The tamper hook: remember the caller's credentials from the invite, and hand the caller
  // Mallory's credentials and candidate in the accept (and drop the callee's trickle).
  const std::string mufrag = "mallory1", mpwd = "mallorymallorymallory123";
  auto mallory_host = [&] {
    ice::Candidate host;
    host.type = ice::CandidateType::kHost;
    host.address = mallory_addr;
    host.priority = ice::candidate_priority(host.type, 65535);
    host.foundation = ice::candidate_foundation(host.type, mallory_addr, SocketAddress());
    return host;
  };
  tamper([&](signal::Message &m) {
    if (m.type == signal::Type::kCallInvite) {
      ice::AgentConfig ac;
      ac.controlling = false;
      ac.local_ufrag = mufrag;
      ac.local_pwd = mpwd;
      magent = std::make_unique<ice::Agent>(ac, monotonic_now());
      magent->set_remote_credentials(m.ice_ufrag, m.ice_pwd);
      for (const auto &c : m.candidates) magent->add_remote_candidate(c, monotonic_now());
      magent->add_local_candidate(mallory_host());
      mpump();
    } else if (m.type == signal::Type::kCallAccept) {
      m.ice_ufrag = mufrag;
      m.ice_pwd = mpwd;
      m.candidates = {mallory_host()};
    }
  });

  {
    Party a, b;
    ASSERT_EQ(kOk, a.start(relay_addr_, relay_id_->fingerprint(), true));
    ASSERT_EQ(kOk, b.start(relay_addr_, relay_id_->fingerprint(), true));
    signal::CallId id;
    ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
    Streamer sa(a, id), sb(b, id);
    // The caller's direct attempt fails on the pin (or runs out of its 3 s budget).
    call::CallStats st;
    ASSERT_TRUE(a.wait_on_context([&] {
      return a.ctx->call_stats(id, &st) == kOk && st.direct_error != 0;
    }, 6s)) << "the caller never gave up on the direct path";
    uint64_t before = 0;
    b.wait([&] {
      before = b.frames.size();  // read under the party's lock
      return true;
    });
    ASSERT_TRUE(b.wait([&] { return b.frames.size() >= before + 25; }, 3s))
        << "media keeps flowing on the relay";
    std::printf("caller's direct attempt ended with %d (%s); Mallory: %d verified connections, "
                "%d datagrams\n",
                st.direct_error, error_description(st.direct_error), mallory_connected.load(),
                mallory_datagrams.load());
    EXPECT_EQ(st.direct_error, kErrPeerIdentity) << "refused by the pin, not by a timeout";
    EXPECT_EQ(st.path, PathKind::kRelay);
    EXPECT_EQ(mallory_datagrams.load(), 0);
    std::lock_guard<std::mutex> lock(a.m);
    EXPECT_TRUE(a.paths.empty()) << "the caller never moved to a direct path";
  }
  testing::on_loop(loop, [&] {
    mtimer_owner.reset();
    magent.reset();
    mdrv.reset();
    mep.reset();
    msock_owner.reset();
    return 0;
  });
}

}  // namespace
}  // namespace parley

namespace parley {
namespace {

// A call's session outlives the call by a loop turn (it is retired, not destroyed, when the
// call ends) and its direct connection keeps delivering frames meanwhile. Hang up again and
// again while the peer streams fast on the direct path, from the test thread and from inside
// the handler of a direct frame: under ASan a frame reaching the erased call is a
// heap-use-after-free (it was, in about one hangup in 3-6).
TEST_F(DirectTest, HangingUpWhileThePeerStreamsOnTheDirectPathTouchesNoEndedCall) {
  ASSERT_TRUE(start_relay());
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, true));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, true));
  for (int round = 0; round < 8; ++round) {
    for (Party *p : {&a, &b}) {
      std::lock_guard<std::mutex> lock(p->m);
      p->paths.clear();
    }
    signal::CallId id;
    ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
    Streamer sa(a, id), sb(b, id);
    ASSERT_TRUE(a.wait([&] { return a.on_direct(); }, 5s)) << "round " << round;
    sb.stop();
    Streamer fast(b, id, 1ms);  // once direct: a frame every millisecond on the direct path
    if (round % 2) {
      a.hangup_on_direct_frame = true;
    } else {
      ASSERT_EQ(kOk, a.ctx->hangup(id));
    }
    ASSERT_TRUE(a.wait([&] { return a.calls[Party::key(id)] == CallState::kEnded; }, 5s))
        << "round " << round;
    ASSERT_TRUE(b.wait([&] { return b.calls[Party::key(id)] == CallState::kEnded; }, 5s))
        << "round " << round;
  }
  std::printf("direct frames dropped because their call had just ended: %llu\n",
              (unsigned long long)a.ctx->stats().media_after_end);
}

// A relay that sends call-ringing for a call that is already active, with another stream id,
// must not move the call's media route: before, the route installed under the old id outlived
// the call and the next frame on that id reached the freed call (ASan: heap-use-after-free in
// Context::on_datagram). Frames for a call that is over are counted as unknown.
TEST_F(DirectTest, ARelayChangingAnActiveCallsStreamIdCannotLeaveADanglingRoute) {
  ASSERT_TRUE(start_relay());
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, false));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, false));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  uint32_t stream = 0;
  ASSERT_EQ(kOk, a.ctx->media_stream(id, &stream));

  signal::Message ringing;
  ringing.type = signal::Type::kCallRinging;
  ringing.call_id = id;
  ringing.from = b.id->fingerprint();
  ringing.to = a.id->fingerprint();
  ringing.stream_id = stream + 77;
  call::ContextTestAccess::relay_message(*a.ctx, ringing);
  uint32_t after = 0;
  ASSERT_EQ(kOk, a.ctx->media_stream(id, &after));
  EXPECT_EQ(after, stream) << "an active call's stream id changed";

  ASSERT_EQ(kOk, a.ctx->hangup(id));
  media::FrameHeader h;
  h.stream_id = stream;
  h.sequence = 1;
  uint8_t frame[media::kFrameHeaderSize + 32] = {};
  media::write_frame_header(h, frame);
  const uint64_t unknown = a.ctx->stats().media_unknown_stream;
  call::ContextTestAccess::relay_datagram(*a.ctx, frame, sizeof frame);
  EXPECT_EQ(a.ctx->stats().media_unknown_stream, unknown + 1);
}

}  // namespace
}  // namespace parley

namespace parley {
namespace {

// A relay records a genuine invite and plays it to the callee again later, and presents the
// callee's genuine accept to the caller as an invite. Neither rings: the signed media key
// carries its role and issue time, and the callee remembers the call ids it admitted. The
// host hears of each refusal (whoever sent it learned that this identity is online).
class HostileRelayTest : public testing::InProcessRelayTest {};

TEST_F(HostileRelayTest, ReplayedInvitesAndAcceptsPresentedAsInvitesNeverRing) {
  std::mutex rm;
  std::vector<signal::Message> recorded;  // invites and accepts as the relay forwarded them
  tamper([&](signal::Message &m) {
    if (m.type == signal::Type::kCallInvite || m.type == signal::Type::kCallAccept) {
      std::lock_guard<std::mutex> lock(rm);
      recorded.push_back(m);
    }
  });
  {
    Party a, b;
    ASSERT_EQ(kOk, a.start(relay_addr_, relay_id_->fingerprint(), false));
    ASSERT_EQ(kOk, b.start(relay_addr_, relay_id_->fingerprint(), false));
    signal::CallId id;
    ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
    ASSERT_EQ(kOk, a.ctx->hangup(id));
    ASSERT_TRUE(b.wait([&] { return b.calls[Party::key(id)] == CallState::kEnded; }));
    signal::Message invite, accept;
    {
      std::lock_guard<std::mutex> lock(rm);
      ASSERT_EQ(recorded.size(), 2u);
      invite = recorded[0];
      accept = recorded[1];
    }
    ASSERT_EQ(invite.type, signal::Type::kCallInvite);

    // The recorded invite, again: within the key's freshness window, but a call id seen.
    call::ContextTestAccess::relay_message(*b.ctx, invite);
    // The callee's accept, turned into an invite to the caller (same call id, its own key).
    signal::Message forged = accept;
    forged.type = signal::Type::kCallInvite;
    call::ContextTestAccess::relay_message(*a.ctx, forged);

    ASSERT_TRUE(b.wait([&] { return !b.errors.empty(); }, 5s));
    ASSERT_TRUE(a.wait([&] { return !a.errors.empty(); }, 5s));
    std::lock_guard<std::mutex> lb(b.m), la(a.m);
    EXPECT_EQ(b.incoming.size(), 1u) << "the replayed invite rang";
    EXPECT_TRUE(a.incoming.empty()) << "an accept presented as an invite rang";
    for (Party *p : {&a, &b}) {
      const call::Event &e = p->errors[0];
      EXPECT_EQ(e.error, kErrMediaKey);
      EXPECT_EQ(e.call, id);
      EXPECT_EQ(e.origin, call::Origin::kLocal);
      EXPECT_EQ(e.peer, (p == &a ? b : a).id->fingerprint());
      EXPECT_NE(e.text.find("refused an invite"), std::string::npos) << e.text;
    }
    EXPECT_NE(b.errors[0].text.find("seen before"), std::string::npos) << b.errors[0].text;
    EXPECT_NE(a.errors[0].text.find("caller"), std::string::npos) << a.errors[0].text;
  }
}

}  // namespace
}  // namespace parley

namespace parley {
namespace {

// A relay that hands out a victim's address as the peer's candidates (32 ports of it, the most
// a context keeps) gets a bounded number of small STUN checks sent there, never a stream: at
// most seven transmissions per candidate per attempt, paced at one per 20 ms for the call.
class ProbeBudgetTest : public testing::InProcessRelayTest {};

TEST_F(ProbeBudgetTest, ARelayPointingTheCallerAtAVictimGetsABoundedNumberOfChecks) {
  Loop &loop = loop_;

  // The victim: 32 UDP ports on another loopback address, each counting what arrives.
  constexpr size_t kPorts = ice::kMaxRemoteCandidates;
  std::mutex vm;
  std::vector<Timestamp> arrivals;
  std::vector<std::unique_ptr<UdpSocket>> victim;
  std::vector<ice::Candidate> fake;
  ASSERT_EQ(kOk, testing::on_loop(loop, [&]() -> int {
              for (size_t i = 0; i < kPorts; ++i) {
                victim.push_back(std::make_unique<UdpSocket>(loop));
                SocketAddress b;
                SocketAddress::parse("127.0.0.2:0", &b);
                const int r = victim.back()->bind(
                    b, [&](const uint8_t *, size_t, const SocketAddress &) {
                      std::lock_guard<std::mutex> lock(vm);
                      arrivals.push_back(monotonic_now());
                    });
                if (r != kOk) return r;
                ice::Candidate c;
                c.type = ice::CandidateType::kHost;
                c.address = victim.back()->local_address();
                c.priority = ice::candidate_priority(c.type, uint16_t(65535 - i));
                c.foundation = ice::candidate_foundation(c.type, c.address, SocketAddress());
                fake.push_back(c);
              }
              return kOk;
            }));
  tamper([&](signal::Message &m) {
    if (m.type == signal::Type::kCallAccept || m.type == signal::Type::kCandidate ||
        m.type == signal::Type::kIceRestart) {
      if (!m.candidates.empty()) m.candidates = fake;
    }
  });

  {
    Party a, b;
    ASSERT_EQ(kOk, a.start(relay_addr_, relay_id_->fingerprint(), true));
    ASSERT_EQ(kOk, b.start(relay_addr_, relay_id_->fingerprint(), true));
    signal::CallId id;
    ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
    const Timestamp t0 = monotonic_now();
    // The first attempt (3 s) and the first retry, 2 s after it failed, fully.
    call::CallStats st;
    ASSERT_TRUE(a.wait_on_context([&] {
      return a.ctx->call_stats(id, &st) == kOk && st.direct_attempts >= 2 &&
             st.direct_error != 0 && monotonic_now() - t0 > 9 * kNanosPerSecond;
    }, 15s)) << "attempts " << st.direct_attempts;
    // Every datagram that arrived was counted as sent before it: take the arrivals first, then
    // the counters (the other order counts checks sent in between as arrivals only).
    std::vector<Timestamp> got;
    {
      std::lock_guard<std::mutex> lock(vm);
      got = arrivals;
    }
    ASSERT_EQ(kOk, a.ctx->call_stats(id, &st));
    // The relay rewrites both sides' candidates: the callee checks the victim too.
    call::CallStats sb;
    ASSERT_EQ(kOk, b.ctx->call_stats(id, &sb));
    size_t per_s = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      size_t j = i;
      while (j < got.size() && got[j] - got[i] < kNanosPerSecond) ++j;
      per_s = std::max(per_s, j - i);
    }
    std::printf("victim got %zu datagrams over %llu + %llu attempts (checks: caller %llu, "
                "callee %llu; most in one attempt %llu / %llu), at most %zu in any second\n",
                got.size(), (unsigned long long)st.direct_attempts,
                (unsigned long long)sb.direct_attempts, (unsigned long long)st.ice_checks_sent,
                (unsigned long long)sb.ice_checks_sent,
                (unsigned long long)st.ice_checks_max_attempt,
                (unsigned long long)sb.ice_checks_max_attempt, per_s);
    EXPECT_EQ(st.path, PathKind::kRelay);
    EXPECT_GT(got.size(), 0u);  // the checks did go there: this measures them
    EXPECT_LE(got.size(), st.ice_checks_sent + sb.ice_checks_sent);
    EXPECT_LE(st.ice_checks_max_attempt, 7 * kPorts);
    EXPECT_LE(sb.ice_checks_max_attempt, 7 * kPorts);
    EXPECT_LE(got.size(), 7 * kPorts * (st.direct_attempts + sb.direct_attempts));
    // One per Ta = 20 ms on each side, with the window's edge, and each agent's first burst.
    EXPECT_LE(per_s, 2 * (51u + ice::AgentConfig().burst - 1));
  }
  testing::on_loop(loop, [&] {
    victim.clear();
    return 0;
  });
}


// A relay that claims each party's peer sits behind a random symmetric NAT at a victim's
// address gets birthday probes sent there (ice/birthday.h): at most kBirthdayProbes per attempt, at most
// one per kBirthdayProbeIntervalUs, and none once the attempt is over.
TEST_F(ProbeBudgetTest, ARelayClaimingAHardNatAtAVictimGetsABoundedNumberOfProbes) {
  ice::Candidate victim;
  victim.type = ice::CandidateType::kServerReflexive;
  // An address no other test listens on: the easy side's probes go to random ports of it, and
  // on 127.0.0.2 they landed now and then on the victim sockets of the test above, run
  // alongside by ctest -j (2 stray arrivals: 21 counted against 19 checks sent).
  SocketAddress::parse("127.0.0.9:9", &victim.address);
  SocketAddress::parse("10.0.0.2:9", &victim.related);
  victim.priority = ice::candidate_priority(victim.type, 65535);
  victim.foundation = ice::candidate_foundation(victim.type, victim.related, SocketAddress());
  tamper([&](signal::Message &m) {
    if (m.type == signal::Type::kCallInvite || m.type == signal::Type::kCallAccept ||
        m.type == signal::Type::kCandidate || m.type == signal::Type::kIceRestart) {
      m.nat = signal::NatInfo{uint8_t(ice::NatMapping::kAddressDependent),
                              uint8_t(ice::PortAllocation::kRandom)};
      if (!m.candidates.empty()) m.candidates = {victim};
    }
  });
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_addr_, relay_id_->fingerprint(), true));
  ASSERT_EQ(kOk, b.start(relay_addr_, relay_id_->fingerprint(), true));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  // The caller's first attempt, start to end, its probe count sampled as it goes.
  // Each count was taken at some moment between `before` and `after`; a pair of samples is
  // surely less than a second apart only when the later one's `after` is.
  struct Sample {
    Timestamp before, after;
    uint64_t probes;
  };
  std::vector<Sample> samples;
  call::CallStats st;
  ASSERT_TRUE(a.wait_on_context([&] {
    const Timestamp before = monotonic_now();
    if (a.ctx->call_stats(id, &st) != kOk) return false;
    samples.push_back({before, monotonic_now(), st.birthday_probes});
    return st.direct_error != 0;
  }, 15s)) << "probes " << st.birthday_probes;
  uint64_t per_s = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    for (size_t j = i + 1;
         j < samples.size() && samples[j].after - samples[i].before < kNanosPerSecond; ++j) {
      per_s = std::max(per_s, samples[j].probes - samples[i].probes);
    }
  }
  std::printf("birthday probes toward the victim: %llu in the first attempt (role %s), at most "
              "%llu in any second\n",
              (unsigned long long)st.birthday_probes_max_attempt, st.birthday_role.c_str(),
              (unsigned long long)per_s);
  EXPECT_EQ("easy", st.birthday_role);
  EXPECT_EQ(st.path, PathKind::kRelay);
  EXPECT_GT(st.birthday_probes, 0u);  // they did go there: this measures them
  EXPECT_LE(st.birthday_probes_max_attempt, uint64_t(ice::kBirthdayProbes));
  EXPECT_LE(per_s, 1000000u / ice::kBirthdayProbeIntervalUs + 1);
  // Over: nothing more until the retry's own budget.
  const uint64_t at_end = st.birthday_probes;
  ASSERT_EQ(kOk, a.ctx->call_stats(id, &st));
  if (st.direct_attempts == 1) {
    EXPECT_EQ(at_end, st.birthday_probes);
  }
}

}  // namespace
}  // namespace parley

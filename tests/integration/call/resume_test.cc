// Calls outlive their relay (docs/protocol.md "What ends a call"): parley-relay killed or
// stopped and started again with the same seed and address while calls run on loopback, a
// relay that stays away past the host's no-path timeout, and a hostile relay announcing
// resumes. The NAT-lab versions (real NATs, rooms, a 60 s outage) are tests/natlab/test_resume.py.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "call/context.h"
#include "call_party.h"
#include "context_test_access.h"
#include "relay_process.h"

using namespace std::chrono_literals;

namespace parley {
namespace {

using call::CallState;
using call::PathKind;
using testing::Party;
using testing::Streamer;
using testing::active_call;

class ResumeTest : public testing::RelayProcessTest {
 protected:
  void SetUp() override {
    RelayProcessTest::SetUp();
    ASSERT_TRUE(start_relay());
    listen_ = relay_.address.to_string();
  }
  // Stops the relay with `sig` and starts it again with the same seed and address; returns
  // when the new one listens.
  std::chrono::steady_clock::time_point restart(int sig) {
    if (sig == SIGKILL) {
      relay_.kill_now();
    } else {
      EXPECT_EQ(0, relay_.stop(sig));
    }
    EXPECT_TRUE(start_relay(listen_));
    return std::chrono::steady_clock::now();
  }
  // Both ways: until each party has received a frame numbered above what it had.
  static double wait_flowing(Party &a, Party &b, std::chrono::steady_clock::time_point since) {
    uint64_t a0, b0;
    {
      std::lock_guard<std::mutex> la(a.m), lb(b.m);
      a0 = a.frames.empty() ? 0 : *a.frames.rbegin();
      b0 = b.frames.empty() ? 0 : *b.frames.rbegin();
    }
    EXPECT_TRUE(a.wait([&] { return !a.frames.empty() && *a.frames.rbegin() > a0; }, 10s));
    EXPECT_TRUE(b.wait([&] { return !b.frames.empty() && *b.frames.rbegin() > b0; }, 10s));
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
        .count();
  }
  // The relay knows the call again: a hangup through it reaches the peer as a normal end.
  static void hangup_reaches_peer(Party &a, Party &b, const signal::CallId &id) {
    ASSERT_EQ(kOk, a.ctx->hangup(id));
    ASSERT_TRUE(b.wait([&] { return b.calls[Party::key(id)] == CallState::kEnded; }, 10s));
    std::lock_guard<std::mutex> lock(b.m);
    EXPECT_EQ(kOk, b.end_errors[Party::key(id)]);
  }
  void relayed_call_resumes(int sig);

  std::string listen_;
};

void ResumeTest::relayed_call_resumes(int sig) {
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, false));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, false));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  Streamer sa(a, id), sb(b, id);
  wait_flowing(a, b, std::chrono::steady_clock::now());
  const auto back = restart(sig);
  const double gap = wait_flowing(a, b, back);
  std::printf("relayed call, %s: frames flow both ways %.0f ms after the relay is back\n",
              sig == SIGKILL ? "kill -9" : "SIGTERM", gap);
  EXPECT_LE(gap, 2000.0);
  {
    std::lock_guard<std::mutex> la(a.m), lb(b.m);
    EXPECT_EQ(a.calls[Party::key(id)], CallState::kActive);
    EXPECT_EQ(b.calls[Party::key(id)], CallState::kActive);
  }
  EXPECT_GE(a.ctx->stats().resumes_sent + b.ctx->stats().resumes_sent, 1u);
  sa.stop();
  sb.stop();
  hangup_reaches_peer(a, b, id);
}

TEST_F(ResumeTest, ARelayedCallResumesWhenTheRelayIsKilledAndRestarted) {
  relayed_call_resumes(SIGKILL);
}

TEST_F(ResumeTest, ARelayedCallResumesWhenTheRelayIsStoppedAndRestarted) {
  relayed_call_resumes(SIGTERM);
}

// The direct path does not need the relay: the call never leaves it and misses no frame
// while the relay dies and comes back.
TEST_F(ResumeTest, ADirectCallMissesNoFrameWhileTheRelayRestarts) {
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, true));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, true));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  Streamer sa(a, id), sb(b, id);
  ASSERT_TRUE(a.wait([&] { return a.on_direct(); }, 10s));
  ASSERT_TRUE(b.wait([&] { return b.on_direct(); }, 10s));
  wait_flowing(a, b, std::chrono::steady_clock::now());
  uint64_t a_from, b_from;
  size_t a_paths, b_paths;
  int a_regs, b_regs;
  {
    std::lock_guard<std::mutex> la(a.m), lb(b.m);
    a_from = *a.frames.rbegin();
    b_from = *b.frames.rbegin();
    a_paths = a.paths.size();
    b_paths = b.paths.size();
    a_regs = a.registrations;
    b_regs = b.registrations;
  }
  restart(SIGKILL);
  // Both notice (a keep-alive meets the new relay's stateless reset) and register again.
  ASSERT_TRUE(a.wait([&] { return a.registrations > a_regs; }, 15s));
  ASSERT_TRUE(b.wait([&] { return b.registrations > b_regs; }, 15s));
  wait_flowing(a, b, std::chrono::steady_clock::now());
  sa.stop();
  sb.stop();
  {
    std::lock_guard<std::mutex> la(a.m), lb(b.m);
    EXPECT_EQ(a.paths.size(), a_paths) << "the call left the direct path";
    EXPECT_EQ(b.paths.size(), b_paths) << "the call left the direct path";
    for (Party *p : {&a, &b}) {
      const uint64_t from = p == &a ? a_from : b_from;
      const uint64_t to = *p->frames.rbegin();
      uint64_t missing = 0;
      for (uint64_t n = from; n <= to; ++n) missing += p->frames.count(n) == 0;
      std::printf("direct call, kill -9: %llu frames received across the restart, %llu missing\n",
                  (unsigned long long)(to - from + 1), (unsigned long long)missing);
      EXPECT_EQ(missing, 0u);
    }
  }
  hangup_reaches_peer(b, a, id);
}

// A relay that stays away: the relayed call has no path and ends after the host's timeout
// with its own error; the direct call keeps going.
TEST_F(ResumeTest, OnlyACallWithNoPathEndsWhenTheRelayStaysAway) {
  auto timeout = [](call::ContextConfig &c) { c.no_path_timeout_ms = 1500; };
  Party a, b, c, d;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, false, timeout));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, false, timeout));
  ASSERT_EQ(kOk, c.start(relay_.address, relay_.fingerprint, true, timeout));
  ASSERT_EQ(kOk, d.start(relay_.address, relay_.fingerprint, true, timeout));
  signal::CallId relayed, direct;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &relayed));
  ASSERT_NO_FATAL_FAILURE(active_call(c, d, &direct));
  Streamer sa(a, relayed), sc(c, direct), sd(d, direct);
  ASSERT_TRUE(c.wait([&] { return c.on_direct(); }, 10s));
  ASSERT_TRUE(d.wait([&] { return d.on_direct(); }, 10s));
  relay_.kill_now();
  const auto killed = std::chrono::steady_clock::now();
  for (Party *p : {&a, &b}) {
    ASSERT_TRUE(p->wait([&] { return p->calls[Party::key(relayed)] == CallState::kEnded; }, 20s));
    std::lock_guard<std::mutex> lock(p->m);
    EXPECT_EQ(p->end_errors[Party::key(relayed)], kErrNoPath);
  }
  const double ended_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed).count();
  std::printf("relayed call ended with kErrNoPath %.0f ms after the relay died\n", ended_ms);
  // Well past the timeout for the direct call too: it still carries frames both ways.
  wait_flowing(c, d, std::chrono::steady_clock::now());
  std::lock_guard<std::mutex> lc(c.m), ld(d.m);
  EXPECT_EQ(c.calls[Party::key(direct)], CallState::kActive);
  EXPECT_EQ(d.calls[Party::key(direct)], CallState::kActive);
}

// A relay (or anyone on its path) announcing a resume, of a call that ended or of one the
// parties never made, gets nothing: no call, no event, no change to a live call.
TEST_F(ResumeTest, ResumesAnnouncedByTheRelayChangeNothing) {
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, false));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, false));
  signal::CallId ended, live;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &ended));
  ASSERT_EQ(kOk, a.ctx->hangup(ended));
  ASSERT_TRUE(b.wait([&] { return b.calls[Party::key(ended)] == CallState::kEnded; }));
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &live));
  size_t b_events;
  {
    std::lock_guard<std::mutex> lock(b.m);
    b_events = b.calls.size() + b.incoming.size() + b.errors.size();
  }
  signal::Message r;
  r.type = signal::Type::kCallResume;
  r.from = a.id->fingerprint();
  r.to = b.id->fingerprint();
  r.stream_id = 7;
  r.media_key = signal::SignedKey{};
  r.identity_key.emplace();
  std::memcpy(r.identity_key->data(), a.id->public_key(), identity::kPublicKeyLen);
  for (const signal::CallId &id : {ended, live, signal::CallId::random()}) {
    r.call_id = id;
    call::ContextTestAccess::relay_message(*b.ctx, r);
  }
  b.ctx->sync();
  EXPECT_EQ(b.ctx->stats().resumes_ignored, 3u);
  std::lock_guard<std::mutex> lock(b.m);
  EXPECT_EQ(b.calls.size() + b.incoming.size() + b.errors.size(), b_events);
  EXPECT_EQ(b.calls[Party::key(ended)], CallState::kEnded);
  EXPECT_EQ(b.calls[Party::key(live)], CallState::kActive);
}

// "No such call" from the relay about an active call brings a resume, never the call's end;
// other relay errors about it reach the host as errors, the call going on.
TEST_F(ResumeTest, RelayErrorsAboutAnActiveCallDoNotEndIt) {
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, false));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, false));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  const uint64_t resumes = a.ctx->stats().resumes_sent;
  signal::Message e;
  e.type = signal::Type::kError;
  e.call_id = id;
  e.error_code = kErrCallNotFound;
  e.text = "no such call";
  call::ContextTestAccess::relay_message(*a.ctx, e);
  call::ContextTestAccess::relay_message(*a.ctx, e);  // once per registration
  e.error_code = kErrPeerUnavailable;
  call::ContextTestAccess::relay_message(*a.ctx, e);
  a.ctx->sync();
  const call::ContextStats st = a.ctx->stats();
  EXPECT_EQ(st.resumes_sent, resumes + 1);
  EXPECT_EQ(st.relay_errors_kept, 3u);
  std::lock_guard<std::mutex> lock(a.m);
  EXPECT_EQ(a.calls[Party::key(id)], CallState::kActive);
  ASSERT_EQ(a.errors.size(), 1u);
  EXPECT_EQ(a.errors[0].error, kErrPeerUnavailable);
  EXPECT_EQ(a.errors[0].origin, call::Origin::kRelay);
  EXPECT_EQ(a.errors[0].call, id);
}

}  // namespace
}  // namespace parley

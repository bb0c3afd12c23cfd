// ICE restarts and direct-path retries on loopback: a network change mid-call restarts ICE
// on both sides and moves the call to the new generation's direct connection without losing
// a frame. Paths that die and come back (blocked flows, moved hosts) are in the NAT lab
// (tests/natlab/test_network_change.py).
#include <gtest/gtest.h>

#include <chrono>

#include "call/context.h"
#include "call_party.h"
#include "relay_process.h"

using namespace std::chrono_literals;

namespace parley {
namespace {

using testing::Party;
using testing::Streamer;
using testing::active_call;

class RestartTest : public testing::RelayProcessTest {};

TEST_F(RestartTest, ANetworkChangeRestartsIceAndTheCallStaysDirectLosingNothing) {
  ASSERT_TRUE(start_relay());
  Party a, b;
  ASSERT_EQ(kOk, a.start(relay_.address, relay_.fingerprint, true));
  ASSERT_EQ(kOk, b.start(relay_.address, relay_.fingerprint, true));
  signal::CallId id;
  ASSERT_NO_FATAL_FAILURE(active_call(a, b, &id));
  Streamer sa(a, id), sb(b, id);
  ASSERT_TRUE(a.wait([&] { return a.on_direct(); }, 5s));
  ASSERT_TRUE(b.wait([&] { return b.on_direct(); }, 5s));

  // The callee's network changes, and changes again while its restart is under way (a
  // restart during a restart), then the caller's, crossing or following it: the sides
  // settle on one generation, the callee's second or later. (Changes in one burst are one
  // restart: each waits for the mappings probe, which the next one replaces.)
  call::CallStats st_a, st_b;
  ASSERT_EQ(kOk, b.ctx->network_changed());
  ASSERT_TRUE(b.wait_on_context([&] {
    return b.ctx->call_stats(id, &st_b) == kOk && st_b.ice_generation >= 1;
  }, 5s));
  ASSERT_EQ(kOk, b.ctx->network_changed());
  ASSERT_EQ(kOk, a.ctx->network_changed());
  auto restarted = [&](Party &p, call::CallStats *st) {
    return p.ctx->call_stats(id, st) == kOk && st->ice_generation >= 2 &&
           st->direct_generation == st->ice_generation && st->ice_restarts >= 2 &&
           st->direct_error == 0 && st->path == call::PathKind::kDirect;
  };
  ASSERT_TRUE(a.wait_on_context([&] { return restarted(a, &st_a); }, 10s))
      << "restarts " << st_a.ice_restarts << ", attempts " << st_a.direct_attempts
      << ", error " << st_a.direct_error;
  ASSERT_TRUE(b.wait_on_context([&] { return restarted(b, &st_b); }, 10s))
      << "restarts " << st_b.ice_restarts << ", attempts " << st_b.direct_attempts
      << ", error " << st_b.direct_error;
  ASSERT_TRUE(a.wait_on_context([&] {
    return a.ctx->call_stats(id, &st_a) == kOk && b.ctx->call_stats(id, &st_b) == kOk &&
           st_a.ice_generation == st_b.ice_generation;
  }, 5s)) << st_a.ice_generation << " vs " << st_b.ice_generation;
  // Frames keep flowing on the new direct connection.
  const uint64_t mark_a = sa.sent() + 50, mark_b = sb.sent() + 50;
  ASSERT_TRUE(b.wait([&] { return b.frames.size() >= mark_a; }, 5s));
  ASSERT_TRUE(a.wait([&] { return a.frames.size() >= mark_b; }, 5s));
  sa.stop();
  sb.stop();
  ASSERT_TRUE(b.wait([&] { return !b.frames.empty() && *b.frames.rbegin() == sa.sent(); }, 3s));
  ASSERT_TRUE(a.wait([&] { return !a.frames.empty() && *a.frames.rbegin() == sb.sent(); }, 3s));
  for (Party *p : {&a, &b}) {
    std::lock_guard<std::mutex> lock(p->m);
    Streamer &from = p == &a ? sb : sa;
    const uint64_t sent = from.sent();
    std::string missing, refused;
    for (uint64_t n = 1; n <= sent; ++n) {
      if (!p->frames.count(n)) missing += " " + std::to_string(n);
    }
    for (const auto &f : from.failed()) {
      refused += " " + std::to_string(f.first) + " (" + error_description(f.second) + ")";
    }
    EXPECT_EQ(p->frames.size(), sent) << "every frame arrived exactly once; missing:" << missing
                                      << "; refused by the sender:" << refused;
    EXPECT_EQ(p->duplicates, 0u);
  }
  call::ContextStats cs;
  cs = b.ctx->stats();
  EXPECT_EQ(2u, cs.network_changes);
  std::printf("after 3 network changes: generation %llu; caller %llu restarts / %llu attempts, "
              "callee %llu / %llu; pair %s -> %s\n",
              (unsigned long long)st_a.ice_generation,
              (unsigned long long)st_a.ice_restarts, (unsigned long long)st_a.direct_attempts,
              (unsigned long long)st_b.ice_restarts, (unsigned long long)st_b.direct_attempts,
              st_a.local_candidate.c_str(), st_a.remote_candidate.c_str());
  ASSERT_EQ(kOk, a.ctx->hangup(id));
}

}  // namespace
}  // namespace parley

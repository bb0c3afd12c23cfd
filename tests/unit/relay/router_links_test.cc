// The router driven through its Link interface with fake connections: deterministic time
// and delivery, so races (a replaced connection's late message) and queue limits can be
// provoked exactly. router_test.cc covers the same router over real QUIC.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/error.h"
#include "identity/identity.h"
#include "media/e2e_keys.h"
#include "relay/router.h"
#include "signal/message.h"

namespace parley::relay {
namespace {

using signal::Message;
using signal::Type;

// A connection as the router sees it. `reading` false: the client stops reading, and what
// the relay sends piles up until `queue_cap` (quic::ConnectionConfig::max_queued_bytes).
struct FakeLink final : Link {
  explicit FakeLink(uint8_t who) {
    std::memset(fp.bytes, who, sizeof fp.bytes);
    SocketAddress::parse("192.0.2.1:4000", &addr);
  }
  const identity::Fingerprint &peer() const override { return fp; }
  SocketAddress remote() const override { return addr; }
  int send_message(int64_t, const uint8_t *data, size_t len) override {
    if (closed) return kErrClosed;
    if (!reading) {
      if (queued + 4 + len > queue_cap) return kErrQueueFull;
      queued += 4 + len;
      return kOk;
    }
    Message m;
    EXPECT_EQ(kOk, signal::decode(data, len, &m));
    got.push_back(m);
    return kOk;
  }
  int send_datagram(const uint8_t *, size_t) override { return closed ? kErrClosed : kOk; }
  void close(uint64_t code, const std::string &) override {
    if (closed) return;
    closed = true;
    close_code = code;
  }
  quic::PathStats stats() const override { return {}; }
  size_t count(Type t) const {
    size_t n = 0;
    for (const auto &m : got) n += m.type == t;
    return n;
  }

  identity::Fingerprint fp;
  SocketAddress addr;
  std::vector<Message> got;
  bool reading = true, closed = false;
  uint64_t close_code = 0;
  size_t queued = 0, queue_cap = 256 * 1024;
};

class RouterLinks : public ::testing::Test {
 protected:
  void make(RouterLimits limits = {}) {
    router_ = std::make_unique<Router>(limits);
    router_->advance(now_);
  }
  FakeLink *connect(uint8_t who) {
    links_.push_back(std::make_unique<FakeLink>(who));
    router_->on_link_connected(links_.back().get());
    return links_.back().get();
  }
  FakeLink *connect_as(const identity::Fingerprint &fp) {
    links_.push_back(std::make_unique<FakeLink>(0));
    links_.back()->fp = fp;
    router_->on_link_connected(links_.back().get());
    return links_.back().get();
  }
  void send(FakeLink *l, const Message &m) {
    std::vector<uint8_t> b;
    ASSERT_EQ(kOk, signal::encode(m, &b));
    router_->on_link_message(l, 0, b.data(), b.size());
  }
  void reg(FakeLink *l) {
    Message m;
    m.type = Type::kRegister;
    send(l, m);
    ASSERT_FALSE(l->got.empty());
    ASSERT_EQ(l->got.back().type, Type::kRegisterAck);
  }
  Message join(const signal::RoomId &room) {
    Message m;
    m.type = Type::kRoomJoin;
    m.room_id = room;
    return m;
  }
  Message invite(FakeLink *from, FakeLink *to) {
    Message m;
    m.type = Type::kCallInvite;
    m.call_id = signal::CallId::random();
    m.from = from->fp;
    m.to = to->fp;
    m.ice_ufrag = "abcd";
    m.ice_pwd = "abcdefghijklmnopqrstuv";
    m.media_key = signal::SignedKey{};
    m.identity_key.emplace();
    m.codecs = {1};
    return m;
  }
  Message accept(FakeLink *callee, const Message &inv) {
    Message a = inv;
    a.type = Type::kCallAccept;
    a.from = callee->fp;
    a.to = *inv.from;
    return a;
  }
  int last_error(FakeLink *l) {
    for (auto it = l->got.rbegin(); it != l->got.rend(); ++it) {
      if (it->type == Type::kError) return it->error_code.value_or(0);
    }
    return 0;
  }
  void tick(Timestamp ns) {
    now_ += ns;
    router_->advance(now_);
  }

  Timestamp now_ = kNanosPerSecond;
  std::unique_ptr<Router> router_;
  std::vector<std::unique_ptr<FakeLink>> links_;
};

// Finding 9: the old connection of a replaced registration may still have messages in
// flight. Before the fix a room-join from it made its identity a member again with no
// connection left to remove it (the replaced connection's close does nothing).
TEST_F(RouterLinks, MessagesFromAReplacedConnectionAreIgnored) {
  make();
  FakeLink *old_conn = connect(1);
  reg(old_conn);
  FakeLink *new_conn = connect(1);
  reg(new_conn);
  EXPECT_TRUE(old_conn->closed);
  EXPECT_EQ(old_conn->close_code, signal::kCloseReplaced);
  const signal::RoomId room = signal::RoomId::random();
  const size_t before = old_conn->got.size();
  send(old_conn, join(room));  // in flight when the relay closed it
  EXPECT_EQ(router_->gauges().rooms, 0u);
  EXPECT_EQ(old_conn->got.size(), before);
  EXPECT_EQ(router_->stats().signal_ignored_replaced, 1u);
  router_->on_link_closed(old_conn);
  router_->on_link_closed(new_conn);
  EXPECT_EQ(router_->gauges().rooms, 0u);
  EXPECT_EQ(router_->gauges().room_members, 0u);
}

// Finding 3: a repeated join re-broadcast the member list to every member, so one member's
// signaling multiplied into everyone's queues. Now only the asker gets the state again.
TEST_F(RouterLinks, ARepeatedJoinIsAnsweredToItsSenderOnly) {
  make();
  const signal::RoomId room = signal::RoomId::random();
  std::vector<FakeLink *> members;
  for (uint8_t i = 1; i <= 4; ++i) {
    members.push_back(connect(i));
    reg(members.back());
    send(members.back(), join(room));
  }
  std::vector<size_t> before;
  for (FakeLink *m : members) before.push_back(m->count(Type::kRoomUpdate));
  for (int i = 0; i < 10; ++i) send(members[0], join(room));
  EXPECT_EQ(members[0]->count(Type::kRoomUpdate), before[0] + 10);
  for (size_t i = 1; i < members.size(); ++i) {
    EXPECT_EQ(members[i]->count(Type::kRoomUpdate), before[i]) << "member " << i;
  }
  const Message &u = members[0]->got.back();
  ASSERT_EQ(u.type, Type::kRoomUpdate);
  EXPECT_EQ(u.members.size(), 4u);
  EXPECT_EQ(*u.stream_id, u.members[0].stream_id);  // its own stream id, as on first join
}

// Finding 3: a member that stops reading is closed with kCloseSlowConsumer once its queue
// is full, and leaves its rooms once the close completes; the others go on.
TEST_F(RouterLinks, AClientThatStopsReadingIsClosedAsASlowConsumer) {
  make();
  const signal::RoomId room = signal::RoomId::random();
  FakeLink *idle = connect(1);
  reg(idle);
  send(idle, join(room));
  idle->reading = false;
  idle->queue_cap = 4096;
  // Room churn is legitimate traffic that reaches the idle member.
  for (uint8_t i = 2; i < 60 && !idle->closed; ++i) {
    FakeLink *c = connect(i);
    reg(c);
    send(c, join(room));
    Message leave = join(room);
    leave.type = Type::kRoomLeave;
    send(c, leave);
  }
  ASSERT_TRUE(idle->closed);
  EXPECT_EQ(idle->close_code, kCloseSlowConsumer);
  EXPECT_LE(idle->queued, idle->queue_cap);
  EXPECT_EQ(router_->stats().closed_slow_consumers, 1u);
  router_->on_link_closed(idle);
  EXPECT_EQ(router_->gauges().rooms, 0u);
}

// Finding 3: the signaling rate limit counts bytes, not only messages.
TEST_F(RouterLinks, SignalingBytesAreRateLimited) {
  RouterLimits limits;
  limits.signal_rate = 1000;
  limits.signal_burst = 1000;
  limits.signal_byte_rate = 1000;
  limits.signal_byte_burst = 4000;
  make(limits);
  FakeLink *a = connect(1);
  reg(a);
  Message big;
  big.type = Type::kError;  // relayed nowhere: costs only its own bytes
  big.error_code = 1;
  big.text = std::string(signal::kMaxText, 'x');
  size_t accepted = 0;
  for (int i = 0; i < 20; ++i) {
    const uint64_t limited = router_->stats().signal_rate_limited;
    send(a, big);
    if (router_->stats().signal_rate_limited == limited) ++accepted;
  }
  EXPECT_GE(accepted, 5u);  // ~540 bytes each: 4000 bytes of burst, the register's included
  EXPECT_LE(accepted, 8u);
  EXPECT_EQ(last_error(a), kErrRateLimited);
}

// Finding 4: one caller's ringing invites filled the callee's call limit, so nobody else
// could call the victim, and the victim could not call out.
TEST_F(RouterLinks, RingingInvitesDoNotLockTheCalleeOut) {
  make();
  FakeLink *mallory = connect(1), *victim = connect(2), *alice = connect(3), *bob = connect(4);
  for (FakeLink *l : {mallory, victim, alice, bob}) reg(l);
  // One pending invite per caller and callee.
  send(mallory, invite(mallory, victim));
  EXPECT_EQ(victim->count(Type::kCallInvite), 1u);
  for (int i = 0; i < 8; ++i) send(mallory, invite(mallory, victim));
  EXPECT_EQ(victim->count(Type::kCallInvite), 1u);
  EXPECT_EQ(last_error(mallory), kErrLimitReached);
  // Others still reach the victim, and the victim still calls out.
  send(alice, invite(alice, victim));
  EXPECT_EQ(victim->count(Type::kCallInvite), 2u);
  send(victim, invite(victim, bob));
  EXPECT_EQ(bob->count(Type::kCallInvite), 1u);
  EXPECT_EQ(last_error(victim), 0);
}

TEST_F(RouterLinks, IncomingInvitesHaveTheirOwnCapAndAcceptingCounts) {
  RouterLimits limits;
  limits.max_calls_per_client = 2;
  limits.max_incoming_invites = 3;
  make(limits);
  FakeLink *callee = connect(100);
  reg(callee);
  std::vector<FakeLink *> callers;
  std::vector<Message> invites;
  for (uint8_t i = 1; i <= 4; ++i) {
    callers.push_back(connect(i));
    reg(callers.back());
    invites.push_back(invite(callers.back(), callee));
    send(callers.back(), invites.back());
  }
  EXPECT_EQ(callee->count(Type::kCallInvite), 3u);  // the 4th is over max_incoming_invites
  EXPECT_EQ(last_error(callers[3]), kErrLimitReached);
  send(callee, accept(callee, invites[0]));
  send(callee, accept(callee, invites[1]));
  EXPECT_EQ(callers[0]->count(Type::kCallAccept), 1u);
  EXPECT_EQ(callers[1]->count(Type::kCallAccept), 1u);
  // Two accepted calls are the callee's share: a third accept is refused, the call rings on.
  send(callee, accept(callee, invites[2]));
  EXPECT_EQ(callers[2]->count(Type::kCallAccept), 0u);
  EXPECT_EQ(last_error(callee), kErrLimitReached);
  EXPECT_EQ(router_->stats().accepts_refused_limit, 1u);
  EXPECT_EQ(router_->gauges().calls, 3u);
}

}  // namespace
}  // namespace parley::relay

namespace parley::relay {
namespace {

// What a party shows a relay that lost its call: the peer's media key for this call, signed
// to it. Nobody else can use it, and the relay rebuilds exactly that call from it.
TEST_F(RouterLinks, AResumeNeedsThePeersProofAndRebuildsTheCall) {
  make();
  std::unique_ptr<identity::Identity> ia, ib, ic;
  ASSERT_EQ(kOk, identity::Identity::generate(&ia));
  ASSERT_EQ(kOk, identity::Identity::generate(&ib));
  ASSERT_EQ(kOk, identity::Identity::generate(&ic));
  FakeLink *a = connect_as(ia->fingerprint()), *b = connect_as(ib->fingerprint()),
           *c = connect_as(ic->fingerprint());
  reg(a);
  reg(b);
  reg(c);
  const signal::CallId id = signal::CallId::random();
  media::LocalMediaKey a_key, b_key;  // a called b: a signed as the caller, b as the callee
  ASSERT_EQ(kOk, media::make_local_media_key(*ia, id, b->fp, media::KeyRole::kCaller, 1, &a_key));
  ASSERT_EQ(kOk, media::make_local_media_key(*ib, id, a->fp, media::KeyRole::kCallee, 1, &b_key));
  auto resume = [&](FakeLink *from, FakeLink *to, const identity::Identity &signer,
                    const media::LocalMediaKey &key, uint32_t stream) {
    Message m;
    m.type = Type::kCallResume;
    m.call_id = id;
    m.from = from->fp;
    m.to = to->fp;
    m.stream_id = stream;
    m.media_key = key.signed_key;
    m.identity_key.emplace();
    std::memcpy(m.identity_key->data(), signer.public_key(), identity::kPublicKeyLen);
    return m;
  };
  // Mallory with b's proof made out to a; and a claiming another identity.
  send(c, resume(c, b, *ib, b_key, 4242));
  EXPECT_EQ(kErrMediaKey, last_error(c));
  Message spoof = resume(a, b, *ib, b_key, 4242);
  spoof.from = c->fp;
  send(a, spoof);
  EXPECT_EQ(kErrPeerIdentity, last_error(a));
  // b's proof passed off as c's: the identity key is not c's.
  send(a, resume(a, c, *ib, b_key, 4242));
  EXPECT_EQ(kErrMediaKey, last_error(a));
  EXPECT_EQ(0u, router_->gauges().calls);
  EXPECT_EQ(3u, router_->stats().resumes_refused);

  send(a, resume(a, b, *ib, b_key, 4242));
  EXPECT_EQ(1u, router_->gauges().calls);
  EXPECT_EQ(1u, router_->stats().calls_resumed);
  // Signaling reaches b again; b's own resume finds the call (no second one).
  Message q;
  q.type = Type::kQualityReport;
  q.call_id = id;
  q.loss_permille = 0;
  q.rtt_ms = 10;
  q.jitter_ms = 1;
  send(a, q);
  EXPECT_EQ(1u, b->count(Type::kQualityReport));
  EXPECT_EQ(4242u, *b->got.back().stream_id);
  send(b, resume(b, a, *ia, a_key, 4242));
  EXPECT_EQ(1u, router_->stats().calls_reattached);
  EXPECT_EQ(1u, router_->gauges().calls);
  // Another call cannot take the stream id of a resumed one.
  const signal::CallId other = signal::CallId::random();
  media::LocalMediaKey c_key;
  ASSERT_EQ(kOk, media::make_local_media_key(*ic, other, a->fp, media::KeyRole::kCallee, 1, &c_key));
  Message taken = resume(a, c, *ic, c_key, 4242);
  taken.call_id = other;
  send(a, taken);
  EXPECT_EQ(kErrLimitReached, last_error(a));

  // A party that goes away leaves the call to the other; the relay forgets it only when
  // neither is here.
  const size_t b_hangups = b->count(Type::kCallHangup);
  router_->on_link_closed(a);
  EXPECT_EQ(1u, router_->gauges().calls);
  EXPECT_EQ(b_hangups, b->count(Type::kCallHangup));
  router_->on_link_closed(b);
  EXPECT_EQ(0u, router_->gauges().calls);

  // Found by fuzz_router: the peer registers only after the resume (so the call is not on
  // its list), then both go; the call must not outlive them.
  FakeLink *a2 = connect_as(ia->fingerprint());
  reg(a2);
  send(a2, resume(a2, b, *ib, b_key, 4343));
  FakeLink *b2 = connect_as(ib->fingerprint());
  reg(b2);
  router_->on_link_closed(a2);
  EXPECT_EQ(1u, router_->gauges().calls);
  router_->on_link_closed(b2);
  EXPECT_EQ(0u, router_->gauges().calls);
}

}  // namespace
// A party that leaves the relay and never comes back (its app crashed: no hangup) ends the
// call for the other party after left_call_timeout_ms; one that comes back and resumes in
// time keeps it.
TEST_F(RouterLinks, ACallWhosePartyLeftEndsForTheOtherUnlessItComesBack) {
  RouterLimits limits;
  limits.left_call_timeout_ms = 2000;
  make(limits);
  FakeLink *a = connect(1), *b = connect(2), *c = connect(3), *d = connect(4);
  for (FakeLink *l : {a, b, c, d}) reg(l);
  const Message ab = invite(a, b), cd = invite(c, d);
  send(a, ab);
  send(b, accept(b, ab));
  send(c, cd);
  send(d, accept(d, cd));
  ASSERT_EQ(2u, router_->gauges().calls_active);
  const uint32_t ab_stream = *b->got.back().stream_id;  // from the invite

  // b and d go away (b's process killed, say); b comes back within the window and resumes.
  b->closed = d->closed = true;
  router_->on_link_closed(b);
  router_->on_link_closed(d);
  tick(1500 * kNanosPerMilli);
  EXPECT_FALSE(router_->handle_timeouts());
  FakeLink *b2 = connect(2);
  reg(b2);
  Message r;
  r.type = Type::kCallResume;
  r.call_id = ab.call_id;
  r.from = b2->fp;
  r.to = a->fp;
  r.stream_id = ab_stream;
  r.media_key = signal::SignedKey{};
  r.identity_key.emplace();
  send(b2, r);
  EXPECT_EQ(1u, router_->stats().calls_reattached);

  // Past the deadline: only the call whose party stayed away ends, for the one still here.
  tick(600 * kNanosPerMilli);
  EXPECT_TRUE(router_->handle_timeouts());
  ASSERT_EQ(1u, c->count(Type::kCallHangup));
  EXPECT_EQ(kErrPeerUnavailable, c->got.back().error_code.value_or(0));
  EXPECT_EQ(0u, a->count(Type::kCallHangup));
  EXPECT_EQ(1u, router_->stats().calls_ended_party_gone);
  EXPECT_EQ(1u, router_->gauges().calls_active);
  tick(10 * kNanosPerSecond);
  EXPECT_FALSE(router_->handle_timeouts());
  EXPECT_EQ(0u, a->count(Type::kCallHangup));

  // Both parties gone: the call is simply forgotten, nobody to tell.
  a->closed = b2->closed = true;
  router_->on_link_closed(a);
  router_->on_link_closed(b2);
  EXPECT_EQ(0u, router_->gauges().calls);
  tick(10 * kNanosPerSecond);
  EXPECT_FALSE(router_->handle_timeouts());
}

}  // namespace parley::relay

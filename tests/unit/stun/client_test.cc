#include "stun/client.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/error.h"
#include "test_address.h"

namespace parley::stun {
namespace {

constexpr Timestamp kMs = kNanosPerMilli;

using parley::testing::addr;

std::vector<uint8_t> request(const TransactionId &id) {
  std::vector<uint8_t> buf(kMaxMessageLen);
  MessageBuilder b(buf.data(), buf.size());
  b.start(kBinding, kRequest, id);
  b.add_fingerprint();
  size_t n;
  EXPECT_EQ(b.finish(&n), kOk);
  buf.resize(n);
  return buf;
}

std::vector<uint8_t> response(const TransactionId &id, const SocketAddress &mapped,
                              const std::vector<uint8_t> &key = {}, Class cls = kSuccessResponse) {
  std::vector<uint8_t> buf(kMaxMessageLen);
  MessageBuilder b(buf.data(), buf.size());
  b.start(kBinding, cls, id);
  b.add_xor_address(kAttrXorMappedAddress, mapped);
  if (cls == kErrorResponse) b.add_error_code(400, "Bad Request");
  if (!key.empty()) b.add_message_integrity(key.data(), key.size());
  b.add_fingerprint();
  size_t n;
  EXPECT_EQ(b.finish(&n), kOk);
  buf.resize(n);
  return buf;
}

// Drains everything due at `now`, returning how many datagrams went out.
int drain(ClientTransactions &c, Timestamp now) {
  int n = 0;
  ClientTransactions::Transmit t;
  while (c.poll_transmit(now, &t)) ++n;
  return n;
}

TEST(StunClient, Rfc8489RetransmissionSchedule) {
  ClientTransactions c;
  const TransactionId id = TransactionId::random();
  auto req = request(id);
  const Timestamp t0 = 1000 * kMs;
  ASSERT_EQ(c.start(req.data(), req.size(), addr("192.0.2.1:3478"), RetransmitConfig{}, t0, 7),
            kOk);
  // Defaults: RTO 500 ms, Rc 7, Rm 16 -> sends at 0, 500, 1500, 3500, 7500, 15500, 31500 ms;
  // failure at 39500 ms.
  std::vector<Timestamp> sends;
  Timestamp now = t0;
  for (int guard = 0; guard < 100; ++guard) {
    if (drain(c, now) == 1) sends.push_back(now - t0);
    c.handle_timeout(now);
    if (c.pending() == 0) break;
    now = c.next_deadline();
  }
  const std::vector<Timestamp> expect = {0, 500 * kMs, 1500 * kMs, 3500 * kMs, 7500 * kMs,
                                         15500 * kMs, 31500 * kMs};
  EXPECT_EQ(sends, expect);
  EXPECT_EQ(now - t0, 39500 * kMs);
  ClientTransactions::Result r;
  ASSERT_TRUE(c.poll_result(&r));
  EXPECT_EQ(r.outcome, ClientTransactions::Outcome::kTimeout);
  EXPECT_EQ(r.cookie, 7u);
  EXPECT_EQ(c.stats().requests_sent, 1u);
  EXPECT_EQ(c.stats().retransmissions, 6u);
  EXPECT_EQ(c.stats().timeouts, 1u);
}

TEST(StunClient, IcePacingWithCap) {
  ClientTransactions c;
  auto req = request(TransactionId::random());
  RetransmitConfig ice{50, 5, 4, 100};
  ASSERT_EQ(c.start(req.data(), req.size(), addr("192.0.2.1:3478"), ice, 0, 1), kOk);
  std::vector<Timestamp> sends;
  Timestamp now = 0;
  while (c.pending()) {
    if (drain(c, now)) sends.push_back(now);
    c.handle_timeout(now);
    if (c.pending()) now = c.next_deadline();
  }
  const std::vector<Timestamp> expect = {0, 50 * kMs, 150 * kMs, 250 * kMs, 350 * kMs};
  EXPECT_EQ(sends, expect);
  EXPECT_EQ(now, 350 * kMs + 4 * 50 * kMs);
}

TEST(StunClient, MatchesByIdAndSourceOnly) {
  ClientTransactions c;
  const TransactionId id = TransactionId::random();
  auto req = request(id);
  const SocketAddress server = addr("192.0.2.1:3478");
  ASSERT_EQ(c.start(req.data(), req.size(), server, RetransmitConfig{}, 0, 1), kOk);
  EXPECT_EQ(drain(c, 0), 1);
  const SocketAddress mapped = addr("198.51.100.9:5555");

  auto resp = response(id, mapped);
  // Right ID, wrong source: ignored and counted.
  EXPECT_TRUE(c.handle_datagram(resp.data(), resp.size(), addr("192.0.2.2:3478"), 10 * kMs));
  EXPECT_TRUE(c.handle_datagram(resp.data(), resp.size(), addr("192.0.2.1:3479"), 10 * kMs));
  EXPECT_EQ(c.stats().wrong_source, 2u);
  // Other ID: unmatched.
  auto other = response(TransactionId::random(), mapped);
  EXPECT_TRUE(c.handle_datagram(other.data(), other.size(), server, 10 * kMs));
  EXPECT_EQ(c.stats().unmatched, 1u);
  // Corrupted fingerprint: counted, ignored.
  auto bad = resp;
  bad.back() ^= 0xff;
  EXPECT_TRUE(c.handle_datagram(bad.data(), bad.size(), server, 10 * kMs));
  EXPECT_EQ(c.stats().bad_fingerprint, 1u);
  ClientTransactions::Result r;
  EXPECT_FALSE(c.poll_result(&r));
  EXPECT_EQ(c.pending(), 1u);

  // The genuine response completes it, with its RTT.
  EXPECT_TRUE(c.handle_datagram(resp.data(), resp.size(), server, 25 * kMs));
  ASSERT_TRUE(c.poll_result(&r));
  EXPECT_EQ(r.outcome, ClientTransactions::Outcome::kSuccess);
  EXPECT_EQ(r.rtt, 25 * kMs);
  Message m;
  ASSERT_EQ(Message::parse(r.response.data(), r.response.size(), &m), kOk);
  SocketAddress got;
  ASSERT_EQ(m.xor_address(kAttrXorMappedAddress, &got), kOk);
  EXPECT_EQ(got, mapped);
  EXPECT_EQ(c.pending(), 0u);
  // A late duplicate is now unmatched.
  EXPECT_TRUE(c.handle_datagram(resp.data(), resp.size(), server, 30 * kMs));
  EXPECT_EQ(c.stats().unmatched, 2u);
}

TEST(StunClient, IntegrityRequiredWhenKeyGiven) {
  ClientTransactions c;
  const TransactionId id = TransactionId::random();
  auto req = request(id);
  const SocketAddress peer = addr("[2001:db8::1]:9000");
  const std::vector<uint8_t> key = {'p', 'w'};
  ASSERT_EQ(c.start(req.data(), req.size(), peer, RetransmitConfig{}, 0, 3, key.data(), key.size()), kOk);
  drain(c, 0);
  auto unsigned_resp = response(id, peer);
  auto wrong_key = response(id, peer, {'x'});
  auto good = response(id, peer, key);
  EXPECT_TRUE(c.handle_datagram(unsigned_resp.data(), unsigned_resp.size(), peer, 1));
  EXPECT_TRUE(c.handle_datagram(wrong_key.data(), wrong_key.size(), peer, 1));
  EXPECT_EQ(c.stats().bad_integrity, 2u);
  EXPECT_EQ(c.pending(), 1u);
  EXPECT_TRUE(c.handle_datagram(good.data(), good.size(), peer, 1));
  ClientTransactions::Result r;
  ASSERT_TRUE(c.poll_result(&r));
  EXPECT_EQ(r.outcome, ClientTransactions::Outcome::kSuccess);
}

TEST(StunClient, ErrorResponseCompletes) {
  ClientTransactions c;
  const TransactionId id = TransactionId::random();
  auto req = request(id);
  const SocketAddress server = addr("192.0.2.1:3478");
  ASSERT_EQ(c.start(req.data(), req.size(), server, RetransmitConfig{}, 0, 1), kOk);
  auto err = response(id, server, {}, kErrorResponse);
  EXPECT_TRUE(c.handle_datagram(err.data(), err.size(), server, 1));
  ClientTransactions::Result r;
  ASSERT_TRUE(c.poll_result(&r));
  EXPECT_EQ(r.outcome, ClientTransactions::Outcome::kErrorResponse);
}

// RFC 5780: the success to a CHANGE-REQUEST comes from the changed address, but a refusal
// (420) comes from where the request was sent; both must be accepted, nothing else.
TEST(StunClient, ExpectedSourceForChangeRequests) {
  ClientTransactions c;
  const TransactionId id = TransactionId::random();
  auto req = request(id);
  const SocketAddress server = addr("192.0.2.1:3478"), changed = addr("192.0.2.2:3479");
  ASSERT_EQ(c.start(req.data(), req.size(), server, RetransmitConfig{}, 1, 1, nullptr, 0, changed), kOk);
  auto ok = response(id, server);
  EXPECT_TRUE(c.handle_datagram(ok.data(), ok.size(), server, 2));  // success from `to`: no
  EXPECT_EQ(c.stats().wrong_source, 1u);
  auto err = response(id, server, {}, kErrorResponse);
  EXPECT_TRUE(c.handle_datagram(err.data(), err.size(), server, 2));  // refusal from `to`: yes
  ClientTransactions::Result r;
  ASSERT_TRUE(c.poll_result(&r));
  EXPECT_EQ(r.outcome, ClientTransactions::Outcome::kErrorResponse);
}

TEST(StunClient, HugeRetransmissionCountsDoNotOverflowTheTimer) {
  ClientTransactions c;
  auto req = request(TransactionId::random());
  RetransmitConfig many{500, 80, 1, 0};
  ASSERT_EQ(c.start(req.data(), req.size(), addr("192.0.2.1:3478"), many, 1, 1), kOk);
  Timestamp now = 1, prev = 0;
  for (int i = 0; i < 80 && c.pending(); ++i) {
    drain(c, now);
    const Timestamp next = c.next_deadline();
    ASSERT_GE(next, prev) << "deadline went backwards at send " << i;
    prev = next;
    now = next;
  }
}

TEST(StunClient, NonResponsesAreLeftToTheCaller) {
  ClientTransactions c;
  auto req = request(TransactionId::random());
  const uint8_t quic[] = {0xc0, 0, 0, 0, 1};
  EXPECT_FALSE(c.handle_datagram(quic, sizeof quic, addr("192.0.2.1:1"), 0));
  EXPECT_FALSE(c.handle_datagram(req.data(), req.size(), addr("192.0.2.1:1"), 0));
}

TEST(StunClient, StartRejectsBadInput) {
  ClientTransactions c;
  const TransactionId id = TransactionId::random();
  auto req = request(id);
  auto resp = response(id, addr("192.0.2.1:1"));
  EXPECT_EQ(c.start(resp.data(), resp.size(), addr("192.0.2.1:1"), {}, 0, 1),
            kErrInvalidArgument);
  ASSERT_EQ(c.start(req.data(), req.size(), addr("192.0.2.1:1"), {}, 0, 1), kOk);
  EXPECT_EQ(c.start(req.data(), req.size(), addr("192.0.2.1:1"), {}, 0, 2),
            kErrInvalidArgument);  // same ID twice
  c.cancel(1);
  EXPECT_EQ(c.pending(), 0u);
}

}  // namespace
}  // namespace parley::stun

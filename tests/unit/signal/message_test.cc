#include "signal/message.h"

#include <gtest/gtest.h>

#include <cstring>

#include "base/error.h"

namespace parley::signal {
namespace {

identity::Fingerprint fp(uint8_t fill) {
  identity::Fingerprint f;
  std::memset(f.bytes, fill, 32);
  return f;
}

Id16 id16(uint8_t fill) {
  Id16 id;
  std::memset(id.bytes, fill, 16);
  return id;
}

Message invite() {
  Message m;
  m.type = Type::kCallInvite;
  m.call_id = id16(0x11);
  m.from = fp(0xaa);
  m.to = fp(0xbb);
  m.ice_ufrag = "abcd";
  m.ice_pwd = "0123456789abcdefghijkl";
  ice::Candidate c;
  EXPECT_EQ(ice::Candidate::parse("candidate:a1 1 udp 2130706431 192.0.2.5 40000 typ host", &c),
            kOk);
  m.candidates = {c};
  SignedKey k;
  std::memset(k.public_key, 1, 32);
  std::memset(k.signature, 2, 64);
  m.media_key = k;
  m.identity_key.emplace();
  m.identity_key->fill(3);
  m.codecs = {1};
  return m;
}

// One example of every type, with what it requires and some optional fields.
std::vector<Message> one_of_each() {
  std::vector<Message> all;
  Message m;
  m.type = Type::kRegister;
  m.software = "parley 0.1.0";
  all.push_back(m);
  m = Message();
  m.type = Type::kRegisterAck;
  SocketAddress::parse("[2001:db8::7]:40000", &m.observed_address);
  all.push_back(m);
  all.push_back(invite());
  for (Type t : {Type::kCallRinging, Type::kCallReject, Type::kCallHangup}) {
    m = Message();
    m.type = t;
    m.call_id = id16(1);
    m.from = fp(2);
    m.to = fp(3);
    if (t == Type::kCallReject) {
      m.error_code = -23;
      m.text = "busy";
    }
    all.push_back(m);
  }
  m = invite();
  m.type = Type::kCallAccept;
  m.nat = NatInfo{2, 3};  // address-dependent, random: what birthday probing keys on
  all.push_back(m);
  m = Message();
  m.type = Type::kCandidate;
  m.call_id = id16(4);
  m.candidates = invite().candidates;
  all.push_back(m);
  m = Message();
  m.type = Type::kEndOfCandidates;
  m.call_id = id16(4);
  all.push_back(m);
  for (Type t : {Type::kPathSwitchPropose, Type::kPathSwitchAck}) {
    m = Message();
    m.type = t;
    m.call_id = id16(5);
    m.sequence = 0x0102030405060708ull;
    m.path = PathKind::kDirect;
    all.push_back(m);
  }
  m = Message();
  m.type = Type::kQualityReport;
  m.room_id = id16(6);
  m.stream_id = 7;
  m.loss_permille = 25;
  m.rtt_ms = 80;
  m.jitter_ms = 12;
  all.push_back(m);
  m = Message();
  m.type = Type::kQualityDirective;
  m.call_id = id16(6);
  m.profile = 2;
  all.push_back(m);
  for (Type t : {Type::kUpgradePropose, Type::kUpgradeConfirm}) {
    m = Message();
    m.type = t;
    m.call_id = id16(8);
    m.sequence = 9;
    m.profile = 1;
    m.media_timestamp = 0xfffffff0u;
    all.push_back(m);
  }
  m = Message();
  m.type = Type::kUpgradeAck;
  m.room_id = id16(8);
  m.sequence = 9;
  all.push_back(m);
  for (Type t : {Type::kRoomJoin, Type::kRoomLeave, Type::kRoomUpdate}) {
    m = Message();
    m.type = t;
    m.room_id = id16(10);
    if (t == Type::kRoomUpdate) m.participants = {fp(1), fp(2), fp(3)};
    all.push_back(m);
  }
  m = Message();
  m.type = Type::kError;
  m.error_code = -28;
  m.text = "unknown signaling message type 99";
  all.push_back(m);
  return all;
}

TEST(Signal, EveryTypeRoundTrips) {
  const auto all = one_of_each();
  EXPECT_EQ(all.size(), 20u);
  for (const Message &m : all) {
    std::vector<uint8_t> wire;
    ASSERT_EQ(encode(m, &wire), kOk) << type_name(m.type) << ": " << last_error_message();
    Message back;
    ASSERT_EQ(decode(wire.data(), wire.size(), &back), kOk)
        << type_name(m.type) << ": " << last_error_message();
    EXPECT_TRUE(back == m) << type_name(m.type);
  }
}

// The wire format is pinned byte for byte (docs/protocol.md shows this example).
TEST(Signal, HangupGoldenBytes) {
  Message m;
  m.type = Type::kCallHangup;
  m.call_id = id16(0x11);
  m.from = fp(0xaa);
  m.to = fp(0xbb);
  std::vector<uint8_t> wire;
  ASSERT_EQ(encode(m, &wire), kOk);
  std::vector<uint8_t> expect = {0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5c,
                                 0x00, 0x01, 0x00, 0x10};
  expect.insert(expect.end(), 16, 0x11);
  expect.insert(expect.end(), {0x00, 0x02, 0x00, 0x20});
  expect.insert(expect.end(), 32, 0xaa);
  expect.insert(expect.end(), {0x00, 0x03, 0x00, 0x20});
  expect.insert(expect.end(), 32, 0xbb);
  EXPECT_EQ(wire, expect);
}

TEST(Signal, UnknownFieldsAreSkipped) {
  std::vector<uint8_t> wire;
  ASSERT_EQ(encode(invite(), &wire), kOk);
  const uint8_t extra[] = {0x12, 0x34, 0x00, 0x03, 'n', 'e', 'w'};
  wire.insert(wire.end(), extra, extra + sizeof extra);
  const uint32_t body = uint32_t(wire.size() - kHeaderSize);
  wire[4] = uint8_t(body >> 24); wire[5] = uint8_t(body >> 16);
  wire[6] = uint8_t(body >> 8); wire[7] = uint8_t(body);
  Message back;
  ASSERT_EQ(decode(wire.data(), wire.size(), &back), kOk);
  EXPECT_TRUE(back == invite());
}

TEST(Signal, RepeatedUnknownFieldsAreSkippedToo) {
  std::vector<uint8_t> wire;
  ASSERT_EQ(encode(invite(), &wire), kOk);
  const uint8_t extra[] = {0x00, 0x30, 0x00, 0x01, 'x', 0x00, 0x30, 0x00, 0x01, 'y'};
  wire.insert(wire.end(), extra, extra + sizeof extra);
  const uint32_t body = uint32_t(wire.size() - kHeaderSize);
  wire[4] = uint8_t(body >> 24); wire[5] = uint8_t(body >> 16);
  wire[6] = uint8_t(body >> 8); wire[7] = uint8_t(body);
  Message back;
  EXPECT_EQ(decode(wire.data(), wire.size(), &back), kOk);
}

TEST(Signal, EncodeRefusesWhatDecodeWouldRefuse) {
  std::vector<uint8_t> wire;
  Message m = invite();
  m.candidates.push_back(ice::Candidate());  // default: no address, not parseable
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m = Message();
  m.type = Type::kPathSwitchAck;
  m.call_id = id16(1);
  m.sequence = 1;
  m.path = PathKind(2);
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m = Message();
  m.type = Type::kError;
  m.error_code = -1;
  m.text = "\xc3\x28";  // invalid UTF-8
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m.text = "caf\xc3\xa9 \xe2\x98\x8e";  // valid UTF-8
  EXPECT_EQ(encode(m, &wire), kOk);
}

TEST(Signal, UnknownTypeAndVersionAreDistinct) {
  std::vector<uint8_t> wire;
  ASSERT_EQ(encode(invite(), &wire), kOk);
  Message back;
  auto t = wire;
  t[1] = 99;
  EXPECT_EQ(decode(t.data(), t.size(), &back), kErrSignalUnknownType);
  t[1] = 0;
  EXPECT_EQ(decode(t.data(), t.size(), &back), kErrSignalUnknownType);
  auto v = wire;
  v[0] = 2;
  EXPECT_EQ(decode(v.data(), v.size(), &back), kErrSignalVersion);
}

TEST(Signal, EveryTruncationIsMalformed) {
  std::vector<uint8_t> wire;
  ASSERT_EQ(encode(invite(), &wire), kOk);
  for (size_t n = 0; n < wire.size(); ++n) {
    Message back;
    EXPECT_EQ(decode(wire.data(), n, &back), kErrSignalMalformed) << n;
  }
}

TEST(Signal, StrictFieldRules) {
  auto encode_raw = [](Type t, std::vector<uint8_t> body) {
    std::vector<uint8_t> w = {kVersion, uint8_t(t), 0, 0, 0, 0, 0, 0};
    w.insert(w.end(), body.begin(), body.end());
    const uint32_t n = uint32_t(body.size());
    w[4] = uint8_t(n >> 24); w[5] = uint8_t(n >> 16); w[6] = uint8_t(n >> 8); w[7] = uint8_t(n);
    return w;
  };
  Message back;
  // Wrong fixed size.
  auto w = encode_raw(Type::kEndOfCandidates, {0x00, 0x01, 0x00, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                               10, 11, 12, 13, 14, 15});
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
  // A singular field twice.
  std::vector<uint8_t> cid = {0x00, 0x01, 0x00, 0x10};
  cid.insert(cid.end(), 16, 7);
  std::vector<uint8_t> twice = cid;
  twice.insert(twice.end(), cid.begin(), cid.end());
  w = encode_raw(Type::kEndOfCandidates, twice);
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
  // Required field missing.
  w = encode_raw(Type::kEndOfCandidates, {});
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
  EXPECT_NE(std::string(last_error_message()).find("call id required"), std::string::npos);
  // An invalid candidate string.
  std::vector<uint8_t> body = cid;
  const std::string bad = "candidate:1 1 udp 1 example.com 5 typ host";
  body.insert(body.end(), {0x00, 0x06, 0x00, uint8_t(bad.size())});
  body.insert(body.end(), bad.begin(), bad.end());
  w = encode_raw(Type::kCandidate, body);
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
  // Path must be 0 or 1.
  body = cid;
  body.insert(body.end(), {0x00, 0x11, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 1});
  body.insert(body.end(), {0x00, 0x12, 0x00, 0x01, 2});
  w = encode_raw(Type::kPathSwitchAck, body);
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
  // The NAT field is exactly two bytes (values it does not know are the receiver's business).
  body = cid;
  body.insert(body.end(), {0x00, 0x1a, 0x00, 0x01, 2});
  w = encode_raw(Type::kEndOfCandidates, body);
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
  body = cid;
  body.insert(body.end(), {0x00, 0x1a, 0x00, 0x02, 9, 9});
  w = encode_raw(Type::kEndOfCandidates, body);
  ASSERT_EQ(decode(w.data(), w.size(), &back), kOk);
  EXPECT_TRUE(back.nat == (NatInfo{9, 9}));
  // Body length disagreeing with the datagram.
  w = encode_raw(Type::kRegister, {});
  w.push_back(0);
  EXPECT_EQ(decode(w.data(), w.size(), &back), kErrSignalMalformed);
}

TEST(Signal, LimitsAreEnforcedBothWays) {
  Message m = invite();
  m.candidates.assign(kMaxCandidates + 1, m.candidates[0]);
  std::vector<uint8_t> wire;
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m = invite();
  m.ice_ufrag = "ab";  // shorter than ICE allows
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m = invite();
  m.ice_pwd = std::string(22, '-');  // not ice-chars
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m = invite();
  m.media_key.reset();
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  m = invite();
  m.identity_key.reset();
  EXPECT_EQ(encode(m, &wire), kErrInvalidArgument);
  std::vector<uint8_t> huge(kMaxMessageSize + 1, 0);
  huge[0] = kVersion;
  huge[1] = uint8_t(Type::kRegister);
  Message back;
  EXPECT_EQ(decode(huge.data(), huge.size(), &back), kErrSignalMalformed);
}

}  // namespace
}  // namespace parley::signal

#include "stun/message.h"

#include <gnutls/crypto.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "base/error.h"
#include "rfc5769_vectors.h"

namespace parley::stun {
namespace {

using parley::testing::from_hex;

const uint8_t *pw() { return reinterpret_cast<const uint8_t *>(parley::testing::kRfc5769Password); }
const size_t kPwLen = std::strlen(parley::testing::kRfc5769Password);

TEST(StunVectors, SampleRequest) {
  auto v = from_hex(parley::testing::kRfc5769Request);
  Message m;
  ASSERT_EQ(Message::parse(v.data(), v.size(), &m), kOk);
  EXPECT_EQ(m.method(), kBinding);
  EXPECT_EQ(m.message_class(), kRequest);
  EXPECT_EQ(m.value(*m.find(kAttrSoftware)), "STUN test client");
  EXPECT_EQ(m.value(*m.find(kAttrUsername)), "evtj:h6vY");
  uint32_t prio;
  ASSERT_EQ(m.u32(kAttrPriority, &prio), kOk);
  EXPECT_EQ(prio, 0x6e0001ffu);
  uint64_t tie;
  ASSERT_EQ(m.u64(kAttrIceControlled, &tie), kOk);
  EXPECT_EQ(tie, 0x932ff9b151263b36ull);
  EXPECT_EQ(m.check_integrity(pw(), kPwLen), kOk);
  EXPECT_EQ(m.check_integrity(reinterpret_cast<const uint8_t *>("wrong"), 5), kErrStunIntegrity);
  EXPECT_EQ(m.unknown_required_count(), 0u);
}

void check_response(const char *hex, const char *expect_addr) {
  auto v = from_hex(hex);
  Message m;
  ASSERT_EQ(Message::parse(v.data(), v.size(), &m), kOk);
  EXPECT_EQ(m.message_class(), kSuccessResponse);
  EXPECT_EQ(m.value(*m.find(kAttrSoftware)), "test vector");
  SocketAddress a;
  ASSERT_EQ(m.xor_address(kAttrXorMappedAddress, &a), kOk);
  EXPECT_EQ(a.to_string(), expect_addr);
  EXPECT_EQ(m.check_integrity(pw(), kPwLen), kOk);
}

TEST(StunVectors, SampleIpv4Response) {
  check_response(parley::testing::kRfc5769Ipv4Response, "192.0.2.1:32853");
}

TEST(StunVectors, SampleIpv6Response) {
  check_response(parley::testing::kRfc5769Ipv6Response,
                 "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

TEST(StunVectors, LongTermAuthRequest) {
  auto v = from_hex(parley::testing::kRfc5769LongTermRequest);
  Message m;
  ASSERT_EQ(Message::parse(v.data(), v.size(), &m), kOk);
  const std::string user(m.value(*m.find(kAttrUsername)));
  EXPECT_EQ(user, "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9");
  EXPECT_EQ(m.value(*m.find(kAttrRealm)), "example.org");
  EXPECT_EQ(m.value(*m.find(kAttrNonce)), "f//499k954d6OL34oL9FSTvy64sA");
  const std::string input = user + ":example.org:TheMatrIX";
  uint8_t key[16];
  ASSERT_EQ(gnutls_hash_fast(GNUTLS_DIG_MD5, input.data(), input.size(), key), 0);
  EXPECT_EQ(m.check_integrity(key, sizeof key), kOk);
}

// Re-encoding the sample request with the builder reproduces the RFC bytes exactly (modulo
// the USERNAME padding, which the RFC fills with spaces and parley with zeros).
TEST(StunBuilder, ReproducesSampleRequest) {
  auto v = from_hex(parley::testing::kRfc5769Request);
  Message ref;
  ASSERT_EQ(Message::parse(v.data(), v.size(), &ref), kOk);
  uint8_t buf[kMaxMessageLen];
  MessageBuilder b(buf, sizeof buf);
  b.start(kBinding, kRequest, ref.transaction_id());
  b.add_string(kAttrSoftware, "STUN test client");
  b.add_u32(kAttrPriority, 0x6e0001ff);
  b.add_u64(kAttrIceControlled, 0x932ff9b151263b36ull);
  b.add_string(kAttrUsername, "evtj:h6vY");
  auto expected = v;
  expected[73] = expected[74] = expected[75] = 0;  // USERNAME padding
  b.add_message_integrity(pw(), kPwLen);
  b.add_fingerprint();
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  ASSERT_EQ(n, v.size());
  // Integrity covers the padding bytes, so only the prefix before it can match byte for byte;
  // the rest must verify instead.
  EXPECT_EQ(0, std::memcmp(buf, expected.data(), 76));
  Message m;
  ASSERT_EQ(Message::parse(buf, n, &m), kOk);
  EXPECT_EQ(m.check_integrity(pw(), kPwLen), kOk);
}

TEST(StunBuilder, RoundTripsEveryAttributeKind) {
  uint8_t buf[kMaxMessageLen];
  MessageBuilder b(buf, sizeof buf);
  const TransactionId txid = TransactionId::random();
  SocketAddress v4, v6;
  ASSERT_EQ(SocketAddress::parse("203.0.113.7:40000", &v4), kOk);
  ASSERT_EQ(SocketAddress::parse("[2001:db8::7]:3478", &v6), kOk);
  b.start(kBinding, kErrorResponse, txid);
  b.add_xor_address(kAttrXorMappedAddress, v6);
  b.add_address(kAttrMappedAddress, v4);
  b.add_address(kAttrOtherAddress, v6);
  b.add_address(kAttrResponseOrigin, v4);
  b.add_u32(kAttrChangeRequest, kChangeIp | kChangePort);
  b.add_flag(kAttrUseCandidate);
  b.add_u64(kAttrIceControlling, 42);
  b.add_error_code(487, "Role Conflict");
  const uint16_t unknown[] = {0x0031, 0x0032, 0x0033};
  b.add_unknown_attributes(unknown, 3);
  const uint8_t key[] = "key";
  b.add_message_integrity(key, 3);
  b.add_message_integrity_sha256(key, 3);
  b.add_fingerprint();
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  ASSERT_TRUE(looks_like_stun(buf, n));

  Message m;
  ASSERT_EQ(Message::parse(buf, n, &m), kOk);
  EXPECT_EQ(m.message_class(), kErrorResponse);
  EXPECT_EQ(m.transaction_id(), txid);
  SocketAddress a;
  ASSERT_EQ(m.xor_address(kAttrXorMappedAddress, &a), kOk);
  EXPECT_EQ(a, v6);
  ASSERT_EQ(m.address(kAttrMappedAddress, &a), kOk);
  EXPECT_EQ(a, v4);
  ASSERT_EQ(m.address(kAttrOtherAddress, &a), kOk);
  EXPECT_EQ(a, v6);
  uint32_t flags;
  ASSERT_EQ(m.u32(kAttrChangeRequest, &flags), kOk);
  EXPECT_EQ(flags, kChangeIp | kChangePort);
  EXPECT_TRUE(m.has(kAttrUseCandidate));
  int code;
  std::string_view reason;
  ASSERT_EQ(m.error_code(&code, &reason), kOk);
  EXPECT_EQ(code, 487);
  EXPECT_EQ(reason, "Role Conflict");
  // SHA-256 integrity is preferred when present, and verifies.
  EXPECT_EQ(m.check_integrity(key, 3), kOk);
}

TEST(StunBuilder, OverflowFailsFinishWithoutWritingPastBuffer) {
  uint8_t buf[64];
  std::memset(buf, 0xee, sizeof buf);
  MessageBuilder b(buf, 40);
  b.start(kBinding, kRequest, TransactionId::random());
  b.add_string(kAttrSoftware, "a much too long software name for forty bytes");
  size_t n;
  EXPECT_EQ(b.finish(&n), kErrBufferTooSmall);
  for (size_t i = 40; i < sizeof buf; ++i) EXPECT_EQ(buf[i], 0xee) << i;
}

class StunMalformed : public ::testing::Test {
 protected:
  void SetUp() override { good_ = from_hex(parley::testing::kRfc5769Request); }
  int parse(const std::vector<uint8_t> &v) {
    Message m;
    return Message::parse(v.data(), v.size(), &m);
  }
  std::vector<uint8_t> good_;
};

TEST_F(StunMalformed, EveryTruncationIsRejected) {
  for (size_t len = 0; len < good_.size(); ++len) {
    std::vector<uint8_t> cut(good_.begin(), good_.begin() + long(len));
    EXPECT_NE(parse(cut), kOk) << len;
  }
}

TEST_F(StunMalformed, HeaderFieldsAreChecked) {
  auto v = good_;
  v[0] |= 0x80;
  EXPECT_EQ(parse(v), kErrStunMalformed);
  v = good_;
  v[4] ^= 1;  // cookie
  EXPECT_EQ(parse(v), kErrStunMalformed);
  v = good_;
  v[3] += 4;  // length larger than datagram
  EXPECT_EQ(parse(v), kErrStunMalformed);
  v = good_;
  v[3] -= 2;  // not a multiple of 4
  EXPECT_EQ(parse(v), kErrStunMalformed);
}

TEST_F(StunMalformed, AttributeLengthOverrunIsRejected) {
  auto v = good_;
  v[22] = 0x01;  // SOFTWARE length 0x0110: past the end
  EXPECT_EQ(parse(v), kErrStunMalformed);
}

TEST_F(StunMalformed, FingerprintMismatchIsDistinct) {
  auto v = good_;
  v.back() ^= 1;
  EXPECT_EQ(parse(v), kErrStunFingerprint);
  v = good_;
  v[30] ^= 1;  // inside SOFTWARE: the CRC no longer matches
  EXPECT_EQ(parse(v), kErrStunFingerprint);
}

TEST_F(StunMalformed, AttributeAfterFingerprintIsRejected) {
  uint8_t buf[128];
  MessageBuilder b(buf, sizeof buf);
  b.start(kBinding, kRequest, TransactionId::random());
  b.add_fingerprint();
  b.add_string(kAttrSoftware, "late");
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  // Make the FINGERPRINT itself valid for the final header, so only its position is wrong.
  const uint32_t crc = crc32(buf, kHeaderLen) ^ 0x5354554e;
  buf[24] = uint8_t(crc >> 24);
  buf[25] = uint8_t(crc >> 16);
  buf[26] = uint8_t(crc >> 8);
  buf[27] = uint8_t(crc);
  Message m;
  EXPECT_EQ(Message::parse(buf, n, &m), kErrStunMalformed);
}

TEST_F(StunMalformed, IllFormedTypedAttributes) {
  uint8_t buf[128];
  MessageBuilder b(buf, sizeof buf);
  b.start(kBinding, kSuccessResponse, TransactionId::random());
  const uint8_t bad_addr[8] = {0, 3, 0, 1, 1, 2, 3, 4};  // family 3
  b.add_bytes(kAttrXorMappedAddress, bad_addr, sizeof bad_addr);
  b.add_bytes(kAttrPriority, bad_addr, 3);
  const uint8_t bad_err[4] = {0, 0, 7, 0};  // class 7
  b.add_bytes(kAttrErrorCode, bad_err, 4);
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  Message m;
  ASSERT_EQ(Message::parse(buf, n, &m), kOk);  // framing is fine...
  SocketAddress a;
  EXPECT_EQ(m.xor_address(kAttrXorMappedAddress, &a), kErrStunMalformed);  // ...values not
  uint32_t u;
  EXPECT_EQ(m.u32(kAttrPriority, &u), kErrStunMalformed);
  int code;
  EXPECT_EQ(m.error_code(&code, nullptr), kErrStunMalformed);
  EXPECT_EQ(m.address(kAttrMappedAddress, &a), kErrStunMalformed);  // absent
}

TEST(StunParse, UnknownAttributes) {
  uint8_t buf[128];
  MessageBuilder b(buf, sizeof buf);
  b.start(kBinding, kRequest, TransactionId::random());
  b.add_string(0x7777, "required");  // comprehension-required, unknown
  b.add_string(0xC001, "optional");  // comprehension-optional, unknown: skipped silently
  b.add_string(0x0027, "rp");        // RESPONSE-PORT: deliberately unsupported
  b.add_string(kAttrPadding, "pad"); // PADDING: accepted
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  Message m;
  ASSERT_EQ(Message::parse(buf, n, &m), kOk);
  ASSERT_EQ(m.unknown_required_count(), 2u);
  EXPECT_EQ(m.unknown_required()[0], 0x7777);
  EXPECT_EQ(m.unknown_required()[1], 0x0027);
}

TEST(StunParse, AttributesAfterIntegrityAreIgnored) {
  uint8_t buf[256];
  MessageBuilder b(buf, sizeof buf);
  b.start(kBinding, kRequest, TransactionId::random());
  const uint8_t key[] = "k";
  b.add_message_integrity(key, 1);
  b.add_string(kAttrUsername, "smuggled");  // after MI: must not be seen
  b.add_string(0x7777, "x");                // nor count as unknown
  b.add_fingerprint();
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  Message m;
  ASSERT_EQ(Message::parse(buf, n, &m), kOk);
  EXPECT_FALSE(m.has(kAttrUsername));
  EXPECT_EQ(m.unknown_required_count(), 0u);
}

TEST(StunParse, TooManyAttributes) {
  uint8_t buf[kMaxMessageLen];
  MessageBuilder b(buf, sizeof buf);
  b.start(kBinding, kRequest, TransactionId::random());
  for (size_t i = 0; i <= kMaxAttributes; ++i) b.add_flag(kAttrUseCandidate);
  size_t n;
  ASSERT_EQ(b.finish(&n), kOk);
  Message m;
  EXPECT_EQ(Message::parse(buf, n, &m), kErrStunMalformed);
}

TEST(StunDemux, LooksLikeStun) {
  auto v = from_hex(parley::testing::kRfc5769Request);
  EXPECT_TRUE(looks_like_stun(v.data(), v.size()));
  v[0] = 0x40;  // QUIC long/short headers have the 0x40 bit set
  EXPECT_FALSE(looks_like_stun(v.data(), v.size()));
  EXPECT_FALSE(looks_like_stun(v.data(), 10));
}

TEST(Crc32, KnownValue) {
  const uint8_t s[] = "123456789";
  EXPECT_EQ(crc32(s, 9), 0xCBF43926u);
}

}  // namespace
}  // namespace parley::stun

#include "stun/responder.h"

#include <gtest/gtest.h>

#include <vector>

#include "base/error.h"
#include "test_address.h"

namespace parley::stun {
namespace {

using parley::testing::addr;

struct Built {
  std::vector<uint8_t> bytes;
  TransactionId id;
};

// A Binding request, optionally padded with SOFTWARE so the response budget allows extras.
Built binding(size_t software_len = 0, uint32_t change = 0, uint16_t unknown_type = 0) {
  Built out;
  out.id = TransactionId::random();
  out.bytes.resize(kMaxMessageLen);
  MessageBuilder b(out.bytes.data(), out.bytes.size());
  b.start(kBinding, kRequest, out.id);
  if (change) b.add_u32(kAttrChangeRequest, change);
  if (unknown_type) b.add_string(unknown_type, "?");
  if (software_len) b.add_string(kAttrSoftware, std::string(software_len, 's'));
  size_t n;
  EXPECT_EQ(b.finish(&n), kOk);
  out.bytes.resize(n);
  return out;
}

class ResponderTest : public ::testing::Test {
 protected:
  ResponderConfig rfc5780() {
    ResponderConfig c;
    c.primary = addr("203.0.113.10:3478");
    c.alternate = addr("203.0.113.11:3479");
    return c;
  }
  bool ask(Responder &r, const Built &req, const SocketAddress &local, Message *m) {
    if (!r.handle(req.bytes.data(), req.bytes.size(), client_, local, out_, sizeof out_,
                  &reply_)) {
      return false;
    }
    EXPECT_LE(reply_.len, req.bytes.size() + 12) << "amplification";
    EXPECT_EQ(Message::parse(out_, reply_.len, m), kOk);
    EXPECT_EQ(m->transaction_id(), req.id);
    EXPECT_EQ(reply_.to, client_);
    return true;
  }
  SocketAddress client_ = addr("198.51.100.20:40000");
  uint8_t out_[kMaxMessageLen];
  Responder::Reply reply_;
};

TEST_F(ResponderTest, MinimalRequestGetsOnlyTheMappedAddress) {
  Responder r(rfc5780());
  Message m;
  ASSERT_TRUE(ask(r, binding(), addr("203.0.113.10:3478"), &m));
  EXPECT_EQ(reply_.len, 20u + 12u);  // exactly request + XOR-MAPPED-ADDRESS
  SocketAddress mapped;
  ASSERT_EQ(m.xor_address(kAttrXorMappedAddress, &mapped), kOk);
  EXPECT_EQ(mapped, client_);
  EXPECT_FALSE(m.has(kAttrOtherAddress));
  EXPECT_EQ(reply_.source, addr("203.0.113.10:3478"));
}

TEST_F(ResponderTest, PaddedRequestEarnsRfc5780Attributes) {
  Responder r(rfc5780());
  Message m;
  ASSERT_TRUE(ask(r, binding(64), addr("203.0.113.10:3478"), &m));
  SocketAddress other, origin;
  ASSERT_EQ(m.address(kAttrOtherAddress, &other), kOk);
  EXPECT_EQ(other, addr("203.0.113.11:3479"));
  ASSERT_EQ(m.address(kAttrResponseOrigin, &origin), kOk);
  EXPECT_EQ(origin, addr("203.0.113.10:3478"));
  EXPECT_TRUE(m.has(kAttrSoftware));
  EXPECT_TRUE(m.has(kAttrFingerprint));
}

TEST_F(ResponderTest, OtherAddressDependsOnWhereTheRequestArrived) {
  Responder r(rfc5780());
  const char *local[] = {"203.0.113.10:3478", "203.0.113.10:3479", "203.0.113.11:3478",
                         "203.0.113.11:3479"};
  const char *other[] = {"203.0.113.11:3479", "203.0.113.11:3478", "203.0.113.10:3479",
                         "203.0.113.10:3478"};
  for (int i = 0; i < 4; ++i) {
    Message m;
    ASSERT_TRUE(ask(r, binding(64), addr(local[i]), &m));
    SocketAddress o;
    ASSERT_EQ(m.address(kAttrOtherAddress, &o), kOk);
    EXPECT_EQ(o, addr(other[i])) << "request on " << local[i];
  }
}

TEST_F(ResponderTest, ChangeRequestPicksTheOtherSocket) {
  Responder r(rfc5780());
  Message m;
  ASSERT_TRUE(ask(r, binding(64, kChangeIp | kChangePort), addr("203.0.113.10:3478"), &m));
  EXPECT_EQ(reply_.source, addr("203.0.113.11:3479"));
  SocketAddress origin;
  ASSERT_EQ(m.address(kAttrResponseOrigin, &origin), kOk);
  EXPECT_EQ(origin, reply_.source);
  ASSERT_TRUE(ask(r, binding(64, kChangePort), addr("203.0.113.10:3478"), &m));
  EXPECT_EQ(reply_.source, addr("203.0.113.10:3479"));
  ASSERT_TRUE(ask(r, binding(64, kChangeIp), addr("203.0.113.11:3479"), &m));
  EXPECT_EQ(reply_.source, addr("203.0.113.10:3479"));
}

TEST_F(ResponderTest, ChangeRequestWithoutAlternateIs420) {
  ResponderConfig c;
  c.primary = addr("203.0.113.10:3478");
  Responder r(c);
  Message m;
  ASSERT_TRUE(ask(r, binding(16, kChangeIp), addr("203.0.113.10:3478"), &m));
  EXPECT_EQ(m.message_class(), kErrorResponse);
  int code;
  ASSERT_EQ(m.error_code(&code, nullptr), kOk);
  EXPECT_EQ(code, 420);
  const auto *u = m.find(kAttrUnknownAttributes);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(m.value(*u), std::string("\x00\x03", 2));
}

TEST_F(ResponderTest, UnknownRequiredAttributeIs420ListingIt) {
  Responder r(rfc5780());
  Message m;
  ASSERT_TRUE(ask(r, binding(0, 0, 0x7001), addr("203.0.113.10:3478"), &m));
  int code;
  ASSERT_EQ(m.error_code(&code, nullptr), kOk);
  EXPECT_EQ(code, 420);
  EXPECT_EQ(m.value(*m.find(kAttrUnknownAttributes)), std::string("\x70\x01", 2));
}

TEST_F(ResponderTest, DropsEverythingThatIsNotABindingRequest) {
  Responder r(rfc5780());
  Message m;
  Built ind = binding();
  ind.bytes[1] = 0x11;  // Binding indication
  EXPECT_FALSE(ask(r, ind, addr("203.0.113.10:3478"), &m));
  Built garbage = binding();
  garbage.bytes[3] = 7;
  EXPECT_FALSE(ask(r, garbage, addr("203.0.113.10:3478"), &m));
  EXPECT_EQ(r.stats().dropped_not_request, 1u);
  EXPECT_EQ(r.stats().dropped_malformed, 1u);
}

TEST_F(ResponderTest, Ipv6ClientBudgetIncludesItsLargerAddress) {
  ResponderConfig c;
  c.primary = addr("[2001:db8::10]:3478");
  Responder r(c);
  client_ = addr("[2001:db8:1::20]:40000");
  Message m;
  Built req = binding();
  ASSERT_TRUE(r.handle(req.bytes.data(), req.bytes.size(), client_, c.primary, out_,
                       sizeof out_, &reply_));
  EXPECT_EQ(reply_.len, 20u + 24u);
}

}  // namespace
}  // namespace parley::stun

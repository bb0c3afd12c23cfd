#include "ice/port_mapper.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "base/error.h"
#include "test_address.h"

namespace parley::ice {
namespace {

constexpr Timestamp kMs = kNanosPerMilli;

SocketAddress A(const char *s) { return testing::addr(s); }

struct Sent {
  std::vector<uint8_t> data;
  Timestamp at;
};

// Drives a PortMapper by hand: the test plays the gateway.
struct Harness {
  explicit Harness(PortMapperConfig c) : m(c, 0) {}
  std::vector<Sent> pump(Timestamp now) {
    std::vector<Sent> out;
    const Timestamp due = m.next_deadline();
    if (due != 0 && due <= now) m.handle_timeout(now);
    Datagram d;
    while (m.poll_transmit(now, &d)) {
      EXPECT_EQ(gateway, d.to);
      out.push_back({std::vector<uint8_t>(d.data, d.data + d.len), now});
    }
    return out;
  }
  // Runs the clock in 10 ms steps up to `until`, collecting everything sent.
  std::vector<Sent> run(Timestamp from, Timestamp until) {
    std::vector<Sent> all;
    for (Timestamp t = from; t <= until; t += 10 * kMs) {
      auto s = pump(t);
      all.insert(all.end(), s.begin(), s.end());
    }
    return all;
  }
  PortMapper m;
  SocketAddress gateway = A("10.0.1.1:5351");
};

PortMapperConfig config() {
  PortMapperConfig c;
  c.gateway = A("10.0.1.1:5351");
  c.client = A("10.0.1.2:40000");
  c.lifetime_s = 120;
  for (size_t i = 0; i < c.nonce.size(); ++i) c.nonce[i] = uint8_t(i + 1);
  return c;
}

std::vector<uint8_t> pcp_answer(const std::vector<uint8_t> &req, uint8_t result,
                                const char *external, uint32_t lifetime) {
  std::vector<uint8_t> r(60, 0);
  r[0] = 2;
  r[1] = 0x81;
  r[3] = result;
  for (int i = 0; i < 4; ++i) r[4 + i] = uint8_t(lifetime >> (24 - 8 * i));
  std::memcpy(r.data() + 24, req.data() + 24, 12);  // nonce
  r[36] = 17;
  r[40] = req[40];  // internal port
  r[41] = req[41];
  SocketAddress e = A(external);
  r[42] = uint8_t(e.port() >> 8);
  r[43] = uint8_t(e.port());
  r[54] = r[55] = 0xff;
  std::memcpy(r.data() + 56, e.ip_bytes(), 4);
  return r;
}

TEST(PortMappingWire, NatPmpRequestsAndResponses) {
  uint8_t a[kNatPmpAddressRequestSize], m[kNatPmpMapRequestSize];
  natpmp_address_request(a);
  EXPECT_EQ(0, a[0]);
  EXPECT_EQ(0, a[1]);
  natpmp_map_request(40000, 40001, 7200, m);
  const uint8_t want[] = {0, 1, 0, 0, 0x9c, 0x40, 0x9c, 0x41, 0, 0, 0x1c, 0x20};
  EXPECT_EQ(0, std::memcmp(want, m, sizeof want));
  // What miniupnpd answered in the NAT lab.
  const uint8_t addr[] = {0, 0x80, 0, 0, 0, 0, 0, 3, 11, 0, 113, 20};
  NatPmpResponse r;
  ASSERT_EQ(kOk, natpmp_parse_response(addr, sizeof addr, &r));
  EXPECT_EQ(0, r.opcode);
  EXPECT_EQ("11.0.113.20", r.external.ip_string());
  const uint8_t map[] = {0, 0x81, 0, 0, 0, 0, 0, 3, 0x9c, 0x40, 0x9c, 0x40, 0, 0, 0x0e, 0x10};
  ASSERT_EQ(kOk, natpmp_parse_response(map, sizeof map, &r));
  EXPECT_EQ(40000, r.internal_port);
  EXPECT_EQ(40000, r.external_port);
  EXPECT_EQ(3600u, r.lifetime_s);
  // Wrong version, a request (no response bit), truncated success, unknown opcode.
  const uint8_t v1[] = {1, 0x80, 0, 0, 0, 0, 0, 3, 11, 0, 113, 20};
  const uint8_t req[] = {0, 0x00, 0, 0, 0, 0, 0, 3, 11, 0, 113, 20};
  const uint8_t shortmap[] = {0, 0x81, 0, 0, 0, 0, 0, 3, 0x9c, 0x40};
  const uint8_t op[] = {0, 0x85, 0, 0, 0, 0, 0, 3};
  EXPECT_EQ(kErrInvalidArgument, natpmp_parse_response(v1, sizeof v1, &r));
  EXPECT_EQ(kErrInvalidArgument, natpmp_parse_response(req, sizeof req, &r));
  EXPECT_EQ(kErrInvalidArgument, natpmp_parse_response(shortmap, sizeof shortmap, &r));
  EXPECT_EQ(kErrInvalidArgument, natpmp_parse_response(op, sizeof op, &r));
  EXPECT_EQ(kErrInvalidArgument, natpmp_parse_response(op, 3, &r));
}

TEST(PortMappingWire, PcpMapRequestLayout) {
  PcpNonce nonce{};
  nonce.fill(7);
  uint8_t q[kPcpMapRequestSize];
  pcp_map_request(A("10.0.1.2:40000"), 40000, SocketAddress(), 7200, nonce, q);
  EXPECT_EQ(2, q[0]);                                   // version
  EXPECT_EQ(1, q[1]);                                   // MAP, request
  EXPECT_EQ(0x1c, q[6]);                                // lifetime 7200
  EXPECT_EQ(0x20, q[7]);
  EXPECT_EQ(0xff, q[18]);                               // ::ffff:10.0.1.2
  EXPECT_EQ(10, q[20]);
  EXPECT_EQ(2, q[23]);
  EXPECT_EQ(7, q[24]);                                  // nonce
  EXPECT_EQ(17, q[36]);                                 // UDP
  EXPECT_EQ(0x9c, q[40]);                               // internal port 40000
  EXPECT_EQ(0x40, q[41]);
  EXPECT_EQ(0, q[42] | q[43]);                          // no suggested port
  EXPECT_EQ(0xff, q[54]);                               // suggested ::ffff:0.0.0.0
  EXPECT_EQ(0, q[56] | q[57] | q[58] | q[59]);
  PcpResponse r;
  EXPECT_EQ(kErrInvalidArgument, pcp_parse_response(q, sizeof q, &r));  // a request
  std::vector<uint8_t> ans = pcp_answer(std::vector<uint8_t>(q, q + sizeof q), 0,
                                        "11.0.113.20:40000", 7200);
  ASSERT_EQ(kOk, pcp_parse_response(ans.data(), ans.size(), &r));
  EXPECT_TRUE(r.has_map);
  EXPECT_EQ(A("11.0.113.20:40000"), r.external);
  EXPECT_EQ(kErrInvalidArgument, pcp_parse_response(ans.data(), 58, &r));  // not 4-aligned
  EXPECT_EQ(kErrInvalidArgument, pcp_parse_response(ans.data(), 20, &r));
}

TEST(PortMapper, PcpMappingIsRenewedAtHalfItsLifetimeAndDeletedOnRelease) {
  Harness h(config());
  auto first = h.pump(0);
  ASSERT_EQ(1u, first.size());
  ASSERT_EQ(60u, first[0].data.size());
  EXPECT_TRUE(h.m.probing());
  h.m.handle_datagram(pcp_answer(first[0].data, 0, "11.0.113.20:40000", 120).data(), 60,
                      h.gateway, 5 * kMs);
  PortMapperEvent e;
  ASSERT_TRUE(h.m.poll_event(&e));
  EXPECT_EQ(PortMapperEvent::Type::kMapped, e.type);
  EXPECT_EQ(MappingProtocol::kPcp, e.mapping.protocol);
  EXPECT_EQ(A("11.0.113.20:40000"), e.mapping.external);
  EXPECT_FALSE(h.m.probing());
  // Nothing until half the lifetime; then the same request (nonce) asking for that port.
  EXPECT_TRUE(h.run(10 * kMs, 60000 * kMs).empty());
  auto renew = h.pump(60005 * kMs);
  ASSERT_EQ(1u, renew.size());
  EXPECT_EQ(0, std::memcmp(renew[0].data.data() + 24, first[0].data.data() + 24, 12));
  EXPECT_EQ(0x9c, renew[0].data[42]);
  h.m.handle_datagram(pcp_answer(renew[0].data, 0, "11.0.113.20:40000", 120).data(), 60,
                      h.gateway, 60006 * kMs);
  EXPECT_FALSE(h.m.poll_event(&e));  // the same mapping: no news
  h.m.release(60007 * kMs);
  auto del = h.pump(60007 * kMs);
  ASSERT_EQ(1u, del.size());
  EXPECT_EQ(0, del[0].data[4] | del[0].data[5] | del[0].data[6] | del[0].data[7]);  // life 0
  EXPECT_TRUE(h.m.done());
}

TEST(PortMapper, SilentPcpFallsBackToNatPmpAfterTheFirstRetransmission) {
  Harness h(config());
  auto sent = h.run(0, 240 * kMs);
  ASSERT_EQ(1u, sent.size());  // PCP only
  sent = h.pump(250 * kMs);
  ASSERT_EQ(3u, sent.size());  // PCP again, NAT-PMP address + map
  EXPECT_EQ(60u, sent[0].data.size());
  EXPECT_EQ(2u, sent[1].data.size());
  EXPECT_EQ(12u, sent[2].data.size());
  const uint8_t addr[] = {0, 0x80, 0, 0, 0, 0, 0, 3, 11, 0, 113, 20};
  const uint8_t map[] = {0, 0x81, 0, 0, 0, 0, 0, 3, 0x9c, 0x40, 0x9c, 0x41, 0, 0, 0, 120};
  h.m.handle_datagram(map, sizeof map, h.gateway, 260 * kMs);
  PortMapperEvent e;
  EXPECT_FALSE(h.m.poll_event(&e));  // the address is still missing
  h.m.handle_datagram(addr, sizeof addr, h.gateway, 261 * kMs);
  ASSERT_TRUE(h.m.poll_event(&e));
  EXPECT_EQ(MappingProtocol::kNatPmp, e.mapping.protocol);
  EXPECT_EQ(A("11.0.113.20:40001"), e.mapping.external);
  h.m.release(300 * kMs);
  auto del = h.pump(300 * kMs);
  ASSERT_EQ(1u, del.size());
  const uint8_t want[] = {0, 1, 0, 0, 0x9c, 0x40, 0, 0, 0, 0, 0, 0};  // RFC 6886 3.4
  ASSERT_EQ(sizeof want, del[0].data.size());
  EXPECT_EQ(0, std::memcmp(want, del[0].data.data(), sizeof want));
}

TEST(PortMapper, ANatPmpGatewayRefusingPcpGetsNatPmpAtOnce) {
  Harness h(config());
  h.pump(0);
  const uint8_t refusal[] = {0, 0x81, 0, 1, 0, 0, 0, 3};  // RFC 6887 9
  h.m.handle_datagram(refusal, sizeof refusal, h.gateway, 2 * kMs);
  auto sent = h.pump(2 * kMs);
  // handle_datagram already queued the NAT-PMP pair; pump sent them.
  ASSERT_EQ(2u, sent.size());
  EXPECT_EQ(2u, sent[0].data.size());
  EXPECT_EQ(12u, sent[1].data.size());
}

// A NAT-PMP gateway slow to refuse PCP: its refusal arrives after NAT-PMP has started, and
// must not be taken for a refusal of NAT-PMP itself.
TEST(PortMapper, ALatePcpRefusalIsNotANatPmpRefusal) {
  Harness h(config());
  h.run(0, 260 * kMs);  // PCP, then NAT-PMP at 250 ms
  const uint8_t refusal[] = {0, 0x81, 0, 1, 0, 0, 0, 3};
  h.m.handle_datagram(refusal, sizeof refusal, h.gateway, 270 * kMs);
  PortMapperEvent e;
  EXPECT_FALSE(h.m.poll_event(&e));
  EXPECT_TRUE(h.m.probing());
  const uint8_t addr[] = {0, 0x80, 0, 0, 0, 0, 0, 3, 11, 0, 113, 20};
  const uint8_t map[] = {0, 0x81, 0, 0, 0, 0, 0, 3, 0x9c, 0x40, 0x9c, 0x40, 0, 0, 0, 120};
  h.m.handle_datagram(addr, sizeof addr, h.gateway, 280 * kMs);
  h.m.handle_datagram(map, sizeof map, h.gateway, 281 * kMs);
  ASSERT_TRUE(h.m.poll_event(&e));
  EXPECT_EQ(PortMapperEvent::Type::kMapped, e.type);
  EXPECT_EQ(MappingProtocol::kNatPmp, e.mapping.protocol);
  // And PCP is not asked again at the next retransmission.
  for (const auto &s : h.run(290 * kMs, 2000 * kMs)) EXPECT_NE(60u, s.data.size());
}

TEST(PortMapper, NoGatewayCostsAHandfulOfRequestsAndFails) {
  Harness h(config());
  auto sent = h.run(0, 3000 * kMs);
  PortMapperEvent e;
  ASSERT_TRUE(h.m.poll_event(&e));
  EXPECT_EQ(PortMapperEvent::Type::kFailed, e.type);
  // PCP at 0, 250, 750 ms; NAT-PMP (two requests) at 250 and 750: nothing after 1.5 s.
  EXPECT_EQ(7u, sent.size());
  for (const auto &s : sent) EXPECT_LT(s.at, 1500 * kMs);
  EXPECT_EQ(0u, h.m.next_deadline());
}

TEST(PortMapper, AnswersFromElsewhereOrForAnotherNonceAreIgnored) {
  Harness h(config());
  auto first = h.pump(0);
  auto ans = pcp_answer(first[0].data, 0, "11.0.113.20:40000", 120);
  h.m.handle_datagram(ans.data(), ans.size(), A("10.0.1.9:5351"), kMs);
  ans[24] ^= 1;  // another nonce
  h.m.handle_datagram(ans.data(), ans.size(), h.gateway, kMs);
  PortMapperEvent e;
  EXPECT_FALSE(h.m.poll_event(&e));
  EXPECT_TRUE(h.m.probing());
}

TEST(PortMapper, ARefusalFromBothProtocolsFailsAtOnce) {
  PortMapperConfig c = config();
  Harness h(c);
  auto first = h.pump(0);
  h.m.handle_datagram(pcp_answer(first[0].data, kPcpNotAuthorized, "0.0.0.0:0", 0).data(), 60,
                      h.gateway, kMs);
  auto sent = h.pump(kMs);
  ASSERT_EQ(2u, sent.size());  // NAT-PMP now
  const uint8_t refused[] = {0, 0x81, 0, 2, 0, 0, 0, 3, 0x9c, 0x40, 0, 0, 0, 0, 0, 0};
  h.m.handle_datagram(refused, sizeof refused, h.gateway, 2 * kMs);
  PortMapperEvent e;
  ASSERT_TRUE(h.m.poll_event(&e));
  EXPECT_EQ(PortMapperEvent::Type::kFailed, e.type);
  EXPECT_FALSE(h.m.probing());
}

}  // namespace
}  // namespace parley::ice

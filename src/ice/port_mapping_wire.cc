#include "ice/port_mapping_wire.h"

#include <cstring>

#include "base/error.h"

namespace parley::ice {

namespace {

constexpr uint8_t kNatPmpVersion = 0;
constexpr uint8_t kPcpVersion = 2;
constexpr uint8_t kPcpOpcodeMap = 1;
constexpr uint8_t kPcpResponseBit = 0x80;
constexpr uint8_t kUdp = 17;
constexpr size_t kPcpHeaderSize = 24;
constexpr size_t kPcpMapSize = 36;
constexpr size_t kPcpMaxSize = 1100;  // RFC 6887 7: messages are at most 1100 bytes

void put16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (24 - 8 * i));
}
uint16_t get16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t *p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// PCP carries every address as 16 bytes, IPv4 as ::ffff:a.b.c.d (RFC 6887 5).
void put_address(uint8_t *p, const SocketAddress &a) {
  std::memset(p, 0, 16);
  if (a.is_v4()) {
    p[10] = p[11] = 0xff;
    std::memcpy(p + 12, a.ip_bytes(), 4);
  } else if (a.is_v6()) {
    std::memcpy(p, a.ip_bytes(), 16);
  } else {
    p[10] = p[11] = 0xff;  // "no suggestion": the IPv4 all-zeros address
  }
}

SocketAddress get_address(const uint8_t *p, uint16_t port) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  SocketAddress a;
  if (std::memcmp(p, kMapped, sizeof kMapped) == 0) {
    SocketAddress::from_ip_bytes(p + 12, 4, port, &a);
  } else {
    SocketAddress::from_ip_bytes(p, 16, port, &a);
  }
  return a;
}

}  // namespace

void natpmp_address_request(uint8_t out[kNatPmpAddressRequestSize]) {
  out[0] = kNatPmpVersion;
  out[1] = 0;
}

void natpmp_map_request(uint16_t internal_port, uint16_t external_port, uint32_t lifetime_s,
                        uint8_t out[kNatPmpMapRequestSize]) {
  out[0] = kNatPmpVersion;
  out[1] = 1;  // map UDP
  out[2] = out[3] = 0;
  put16(out + 4, internal_port);
  put16(out + 6, external_port);
  put32(out + 8, lifetime_s);
}

int natpmp_parse_response(const uint8_t *data, size_t len, NatPmpResponse *out) {
  if (len < 8 || data[0] != kNatPmpVersion || (data[1] & 0x80) == 0) {
    return fail(kErrInvalidArgument, "not a NAT-PMP response");
  }
  NatPmpResponse r;
  r.opcode = data[1] & 0x7f;
  r.result = get16(data + 2);
  r.epoch_s = get32(data + 4);
  if (r.opcode == 0) {
    // An error answer may stop after the epoch; a success carries the address.
    if (r.result == 0) {
      if (len != 12) return fail(kErrInvalidArgument, "NAT-PMP address response of %zu bytes", len);
      SocketAddress::from_ip_bytes(data + 8, 4, 0, &r.external);
    }
  } else if (r.opcode == 1) {
    if (r.result == 0 && len != 16) {
      return fail(kErrInvalidArgument, "NAT-PMP map response of %zu bytes", len);
    }
    if (len >= 16) {
      r.internal_port = get16(data + 8);
      r.external_port = get16(data + 10);
      r.lifetime_s = get32(data + 12);
    }
  } else {
    return fail(kErrInvalidArgument, "NAT-PMP response to opcode %u", unsigned(r.opcode));
  }
  *out = r;
  return kOk;
}

void pcp_map_request(const SocketAddress &client, uint16_t internal_port,
                     const SocketAddress &external, uint32_t lifetime_s, const PcpNonce &nonce,
                     uint8_t out[kPcpMapRequestSize]) {
  std::memset(out, 0, kPcpMapRequestSize);
  out[0] = kPcpVersion;
  out[1] = kPcpOpcodeMap;
  put32(out + 4, lifetime_s);
  put_address(out + 8, client);
  uint8_t *m = out + kPcpHeaderSize;
  std::memcpy(m, nonce.data(), kPcpNonceSize);
  m[12] = kUdp;
  put16(m + 16, internal_port);
  put16(m + 18, external.is_set() ? external.port() : 0);
  put_address(m + 20, external.is_set() ? external : SocketAddress());
}

int pcp_parse_response(const uint8_t *data, size_t len, PcpResponse *out) {
  if (len < kPcpHeaderSize || len > kPcpMaxSize || len % 4 != 0 || data[0] != kPcpVersion ||
      (data[1] & kPcpResponseBit) == 0) {
    return fail(kErrInvalidArgument, "not a PCP response");
  }
  PcpResponse r;
  r.opcode = data[1] & 0x7f;
  r.result = data[3];
  r.lifetime_s = get32(data + 4);
  r.epoch_s = get32(data + 8);
  if (r.opcode == kPcpOpcodeMap && len >= kPcpHeaderSize + kPcpMapSize) {
    const uint8_t *m = data + kPcpHeaderSize;
    r.has_map = true;
    std::memcpy(r.nonce.data(), m, kPcpNonceSize);
    r.protocol = m[12];
    r.internal_port = get16(m + 16);
    r.external = get_address(m + 20, get16(m + 18));
  }
  *out = r;
  return kOk;
}

bool pcp_is_natpmp_refusal(const uint8_t *data, size_t len) {
  // RFC 6887 9: a NAT-PMP server answers version 2 with version 0, result 1.
  return len >= 4 && data[0] == kNatPmpVersion && (data[1] & 0x80) != 0 &&
         get16(data + 2) == 1;
}

}  // namespace parley::ice

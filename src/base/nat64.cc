#include "base/nat64.h"

#include <cstring>

#include "base/error.h"

namespace parley {

namespace {

// RFC 6052 2.2: the IPv4 octets follow the prefix, skipping octet 8 (the "u" octet), so a /96
// keeps them in octets 12..15 and a /32 in 4..7.
void ipv4_positions(uint8_t length, size_t pos[4]) {
  size_t at = length / 8;
  for (int i = 0; i < 4; ++i, ++at) {
    if (at == 8) ++at;
    pos[i] = at;
  }
}

bool valid_length(uint8_t length) {
  return length == 32 || length == 40 || length == 48 || length == 56 || length == 64 ||
         length == 96;
}

}  // namespace

bool Nat64Prefix::operator==(const Nat64Prefix &o) const {
  return length == o.length && std::memcmp(bytes, o.bytes, sizeof bytes) == 0;
}

int nat64_synthesize(const Nat64Prefix &prefix, const SocketAddress &v4, SocketAddress *out) {
  if (!valid_length(prefix.length) || !v4.is_v4()) {
    return fail(kErrInvalidArgument, "NAT64 synthesis needs a prefix and an IPv4 address");
  }
  uint8_t ip[16];
  std::memcpy(ip, prefix.bytes, sizeof ip);
  size_t pos[4];
  ipv4_positions(prefix.length, pos);
  for (int i = 0; i < 4; ++i) ip[pos[i]] = v4.ip_bytes()[i];
  return SocketAddress::from_ip_bytes(ip, sizeof ip, v4.port(), out);
}

int nat64_extract(const Nat64Prefix &prefix, const SocketAddress &v6, SocketAddress *out) {
  if (!valid_length(prefix.length) || !v6.is_v6() ||
      std::memcmp(v6.ip_bytes(), prefix.bytes, prefix.length / 8) != 0) {
    return fail(kErrInvalidArgument, "not an address of the NAT64 prefix");
  }
  size_t pos[4];
  ipv4_positions(prefix.length, pos);
  uint8_t ip[4];
  for (int i = 0; i < 4; ++i) ip[i] = v6.ip_bytes()[pos[i]];
  return SocketAddress::from_ip_bytes(ip, sizeof ip, v6.port(), out);
}

bool nat64_prefix_from(const std::vector<SocketAddress> &answers, Nat64Prefix *out) {
  static const uint8_t kLengths[] = {96, 64, 56, 48, 40, 32};
  for (const SocketAddress &a : answers) {
    if (!a.is_v6()) continue;
    const uint8_t *ip = a.ip_bytes();
    for (uint8_t length : kLengths) {
      size_t pos[4];
      ipv4_positions(length, pos);
      if (ip[pos[0]] != 192 || ip[pos[1]] != 0 || ip[pos[2]] != 0 ||
          (ip[pos[3]] != 170 && ip[pos[3]] != 171)) {
        continue;
      }
      // The "u" octet is zero in every synthesized address (RFC 6052 2.2).
      if (length < 96 && ip[8] != 0) continue;
      Nat64Prefix p;
      std::memcpy(p.bytes, ip, length / 8);
      p.length = length;
      *out = p;
      return true;
    }
  }
  return false;
}

}  // namespace parley

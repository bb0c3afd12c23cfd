// NAT64 address synthesis (RFC 6052) and prefix discovery (RFC 7050), sans-I/O: an IPv6-only
// host behind NAT64 reaches an IPv4 address at the NAT64 prefix with the IPv4 address
// embedded. DNS64 does this for names; these functions do it for IPv4 literals (a relay given
// as one, a peer's IPv4 candidates), with the prefix learned from how the network's DNS64
// answers the well-known name ipv4only.arpa.
#ifndef PARLEY_BASE_NAT64_H
#define PARLEY_BASE_NAT64_H

#include <cstdint>
#include <vector>

#include "base/address.h"

namespace parley {

// The name whose only IPv4 addresses are 192.0.0.170 and 192.0.0.171 (RFC 7050 2.2).
inline constexpr const char *kNat64DiscoveryName = "ipv4only.arpa";

struct Nat64Prefix {
  uint8_t bytes[16] = {};  // the prefix's bits, the rest zero
  uint8_t length = 0;      // 32, 40, 48, 56, 64 or 96 bits; 0: none
  bool is_set() const { return length != 0; }
  bool operator==(const Nat64Prefix &o) const;
};

// Embeds `v4`'s address in `prefix` (RFC 6052 2.2: bits 64..71 stay zero) with `v4`'s port.
// kOk, or kErrInvalidArgument (`v4` not IPv4, or `prefix` unset).
int nat64_synthesize(const Nat64Prefix &prefix, const SocketAddress &v4, SocketAddress *out);

// The IPv4 address (and port) embedded in `v6` when `v6` lies in `prefix`; kOk or
// kErrInvalidArgument (not in the prefix, or not IPv6).
int nat64_extract(const Nat64Prefix &prefix, const SocketAddress &v6, SocketAddress *out);

// RFC 7050 3: the prefix from the addresses ipv4only.arpa resolved to. An IPv6 answer with a
// well-known IPv4 address embedded at one of RFC 6052's positions (the /96 layout tried
// first) gives the prefix; false when no answer was synthesized (no DNS64 here).
bool nat64_prefix_from(const std::vector<SocketAddress> &answers, Nat64Prefix *out);

}  // namespace parley

#endif

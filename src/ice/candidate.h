// ICE candidates (RFC 8445 5.1): types, priorities, foundations, and the compact string form
// carried in signaling:
//   candidate:<foundation> <component> udp <priority> <ip> <port> typ <type>
//             [raddr <ip> rport <port>]
// Parsing is strict: exactly that grammar, IP literals only (no hostnames, no mDNS names).
#ifndef PARLEY_ICE_CANDIDATE_H
#define PARLEY_ICE_CANDIDATE_H

#include <cstdint>
#include <string>
#include <vector>
#include <string_view>

#include "base/address.h"

namespace parley::ice {

enum class CandidateType { kHost, kServerReflexive, kPeerReflexive, kRelay };

const char *candidate_type_name(CandidateType t);  // "host", "srflx", "prflx", "relay"

// RFC 8445 recommended type preferences.
uint32_t type_preference(CandidateType t);

// priority = 2^24 * type preference + 2^8 * local preference + (256 - component).
uint32_t candidate_priority(CandidateType t, uint16_t local_preference, uint32_t component = 1);

// Same type, base IP, STUN/relay server IP and transport => same foundation (RFC 8445
// 5.1.1.3). A short, stable hash so both ends and logs agree run after run.
// `n` random ice-chars (RFC 8445 15.4): a ufrag is 8 of them (48 bits), a password 24 (144
// bits, above the 128 the RFC requires).
std::string random_ice_chars(size_t n);

// Orders host addresses by preference, stably: IPv6 before IPv4 (RFC 8421); within IPv6
// global before unique-local before the rest, and at each scope addresses with a random
// interface identifier (temporary, RFC 8981, or stable-privacy, RFC 7217) before EUI-64
// ones, which carry the device's hardware address to every peer.
void order_host_addresses(std::vector<SocketAddress> *addresses);

std::string candidate_foundation(CandidateType t, const SocketAddress &base,
                                 const SocketAddress &server);

struct Candidate {
  std::string foundation;
  uint32_t component = 1;
  uint32_t priority = 0;
  SocketAddress address;
  CandidateType type = CandidateType::kHost;
  SocketAddress related;  // base for srflx/prflx, mapped address for relay; unset for host

  std::string to_string() const;
  // kOk or kErrCandidateInvalid (out untouched).
  static int parse(std::string_view text, Candidate *out);

  bool operator==(const Candidate &o) const {
    return foundation == o.foundation && component == o.component && priority == o.priority &&
           address == o.address && type == o.type && related == o.related;
  }
};

}  // namespace parley::ice

#endif

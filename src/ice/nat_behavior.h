// What a NAT's mappings reveal, sans-I/O: given the public addresses one socket was seen at by
// different servers (the relay, STUN servers), in the order the mappings were made, whether
// the NAT maps endpoint-independently (RFC 4787 REQ-1: one public port for every destination)
// or per destination, and how it picks ports for new mappings: the local port kept, the next
// one(s) in sequence, or at random. A sequential NAT's next mappings can be predicted, and a
// peer that checks the predicted ports reaches us through it (predicted_candidates).
#ifndef PARLEY_ICE_NAT_BEHAVIOR_H
#define PARLEY_ICE_NAT_BEHAVIOR_H

#include <cstdint>
#include <vector>

#include "base/address.h"
#include "ice/candidate.h"

namespace parley::ice {

enum class NatMapping : uint8_t {
  kUnknown = 0,              // fewer than two servers answered
  kEndpointIndependent = 1,  // one public address for every destination (or no NAT)
  kAddressDependent = 2,     // a new public port per destination
};

enum class PortAllocation : uint8_t {
  kUnknown = 0,
  kPreserved = 1,   // the public port is the local port
  kSequential = 2,  // each new mapping a small, steady step after the last
  kRandom = 3,
};

const char *nat_mapping_name(NatMapping m);          // "unknown", "endpoint-independent", ...
const char *port_allocation_name(PortAllocation a);  // "unknown", "preserved", ...

struct MappingSample {
  SocketAddress server;  // who saw it
  SocketAddress mapped;  // what it saw
};

struct NatBehavior {
  NatMapping mapping = NatMapping::kUnknown;
  PortAllocation allocation = PortAllocation::kUnknown;
  // kSequential: ports move this much per new mapping (the smallest step seen, signed).
  int32_t step = 0;
  SocketAddress last;  // the newest mapping (the base of a prediction)
};

// Steps above this between consecutive mappings are taken as random allocation: a
// sequential NAT shared with other hosts moves on by their new flows too, but a random one
// lands this close by chance only about once in 500 pairs.
constexpr int32_t kMaxSequentialGap = 64;

// `samples` in the order their mappings were made, of one socket (`local_port`) and one
// address family; samples without a mapping are skipped, and of several from one server the
// first counts.
NatBehavior classify_nat(const std::vector<MappingSample> &samples, uint16_t local_port);

// How many ports ahead of the newest mapping a sequential NAT's prediction covers: new flows
// between the last observation and the call's checks (ours toward the peer's candidates, and
// other hosts' behind the same NAT) move the allocator on.
constexpr int kPredictedPorts = 12;

// Server-reflexive candidates at the ports a sequential, address-dependent NAT will most
// likely give our next mappings (the newest mapping's address with its port advanced by
// 1..kPredictedPorts steps), each below `priority` and its predecessor, with `related` as
// their base. Empty for any other behaviour. The peer's checks to them are ordinary ICE
// checks, paced and bounded like any others; the one our own check to the peer opened
// answers.
std::vector<Candidate> predicted_candidates(const NatBehavior &b, const SocketAddress &related,
                                            uint32_t priority);

}  // namespace parley::ice

#endif

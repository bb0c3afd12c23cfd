#include "ice/nat_behavior.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace parley::ice {

const char *nat_mapping_name(NatMapping m) {
  switch (m) {
    case NatMapping::kEndpointIndependent: return "endpoint-independent";
    case NatMapping::kAddressDependent: return "address-dependent";
    case NatMapping::kUnknown: break;
  }
  return "unknown";
}

const char *port_allocation_name(PortAllocation a) {
  switch (a) {
    case PortAllocation::kPreserved: return "preserved";
    case PortAllocation::kSequential: return "sequential";
    case PortAllocation::kRandom: return "random";
    case PortAllocation::kUnknown: break;
  }
  return "unknown";
}

NatBehavior classify_nat(const std::vector<MappingSample> &samples, uint16_t local_port) {
  std::vector<MappingSample> seen;
  for (const auto &s : samples) {
    if (!s.mapped.is_set() || !s.server.is_set()) continue;
    if (!seen.empty() && s.mapped.family() != seen.front().mapped.family()) continue;
    if (std::any_of(seen.begin(), seen.end(),
                    [&](const MappingSample &o) { return o.server == s.server; })) {
      continue;
    }
    seen.push_back(s);
  }
  NatBehavior b;
  if (seen.empty()) return b;
  b.last = seen.back().mapped;
  const bool all_same = std::all_of(seen.begin(), seen.end(), [&](const MappingSample &s) {
    return s.mapped == seen.front().mapped;
  });
  if (all_same) {
    if (seen.size() >= 2) b.mapping = NatMapping::kEndpointIndependent;
    if (seen.front().mapped.port() == local_port) b.allocation = PortAllocation::kPreserved;
    return b;
  }
  b.mapping = NatMapping::kAddressDependent;
  // Steps between consecutive mappings: all small and the same way means a sequential
  // allocator (other hosts' flows may widen some steps; the smallest is the NAT's own).
  int32_t smallest = 0;
  int sign = 0;
  for (size_t i = 1; i < seen.size(); ++i) {
    const int32_t d = int32_t(seen[i].mapped.port()) - int32_t(seen[i - 1].mapped.port());
    const int s = d > 0 ? 1 : d < 0 ? -1 : 0;
    if (s == 0 || std::abs(d) > kMaxSequentialGap || (sign != 0 && s != sign) ||
        seen[i].mapped.ip_string() != seen[i - 1].mapped.ip_string()) {
      b.allocation = PortAllocation::kRandom;
      return b;
    }
    sign = s;
    if (smallest == 0 || std::abs(d) < std::abs(smallest)) smallest = d;
  }
  b.allocation = PortAllocation::kSequential;
  b.step = smallest;
  return b;
}

std::vector<Candidate> predicted_candidates(const NatBehavior &b, const SocketAddress &related,
                                            uint32_t priority) {
  std::vector<Candidate> out;
  if (b.mapping != NatMapping::kAddressDependent || b.allocation != PortAllocation::kSequential ||
      b.step == 0 || !b.last.is_set()) {
    return out;
  }
  for (int k = 1; k <= kPredictedPorts; ++k) {
    const int32_t port = int32_t(b.last.port()) + b.step * k;
    if (port < 1 || port > 65535) break;
    Candidate c;
    c.type = CandidateType::kServerReflexive;
    c.address = b.last;
    c.address.set_port(uint16_t(port));
    c.related = related;
    c.priority = priority > uint32_t(k) ? priority - uint32_t(k) : 0;
    // A foundation each: ICE checks one pair per foundation at a time (RFC 8445 6.1.2.6), and
    // only one of these ports will answer; checked one after another, the last would wait
    // for all the others to fail first.
    c.foundation = candidate_foundation(c.type, related, b.last) + "p" + std::to_string(k);
    out.push_back(c);
  }
  return out;
}

}  // namespace parley::ice

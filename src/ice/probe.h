// A blocking network diagnosis from fresh UDP sockets (one per address family): candidate
// gathering against every given STUN server and RFC 5780 NAT behaviour discovery against the
// first, run concurrently on a private loop thread. What `parley-netcheck` (through the C
// API) runs.
#ifndef PARLEY_ICE_PROBE_H
#define PARLEY_ICE_PROBE_H

#include <string>
#include <vector>

#include "ice/gatherer.h"
#include "ice/netcheck.h"

namespace parley::ice {

struct ProbeOptions {
  std::vector<std::string> stun_servers;  // "ip:port", "[v6]:port" or "hostname:port"
  std::string bind;  // "ip:port" for one socket; empty: one IPv4 and one IPv6 socket, port 0
  SocketAddress relay;  // announced as the relay candidate when set
  uint32_t deadline_ms = 2000;  // gathering deadline
  bool include_loopback = false;
};

struct ProbeResult {
  NetcheckReport netcheck;
  bool netcheck_ran = false;
  std::vector<Candidate> candidates;
  std::vector<ServerResult> servers;
  Timestamp gathering_ns = 0;
  SocketAddress bound;  // the socket of the first server's family
};

// Resolves the servers, binds, runs, returns. kOk, kErrInvalidArgument (no servers),
// kErrAddressInvalid (a server that does not parse or resolve), kErrSocket, kErrInternal.
int run_probe(const ProbeOptions &options, ProbeResult *out);

// Resolves "host:port", "[v6]:port" or "v4:port" to one address, preferring IPv4 (NAT
// behaviour discovery is about IPv4 NATs). Blocking. kOk, kErrAddressInvalid (not host:port),
// kErrNameNotFound, kErrNoUsableAddress.
int resolve_host_port(const std::string &text, SocketAddress *out);

}  // namespace parley::ice

#endif

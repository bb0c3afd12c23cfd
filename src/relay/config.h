// parley-relay's configuration: defaults, an optional config file, and command-line flags
// (flags win over the file). The file holds the same keys as the flags, one `key = value` per
// line, `#` starts a comment:
//
//   listen = 0.0.0.0:7350
//   max-connections = 20000
//
// docs/relay.md lists every key.
#ifndef PARLEY_RELAY_CONFIG_H
#define PARLEY_RELAY_CONFIG_H

#include <string>

#include "base/address.h"
#include "relay/router.h"

namespace parley::relay {

struct RelayConfig {
  SocketAddress listen;      // QUIC (parley/1 and h3) + STUN; default 0.0.0.0:7350
  // The same on the other family ("listen" given twice: one IPv4, one IPv6); unset: none.
  SocketAddress listen_other;
  bool listen_given = false;  // "listen" was set (a second one is the other family's)
  // A second STUN-only port, so clients can tell whether their NAT's mapping depends on the
  // destination port. Unset: the listen IP with port + 1 (an ephemeral port if listen's is 0).
  SocketAddress stun_alt;
  bool stun_alt_enabled = true;
  std::string seed_path = "parley-relay.seed";
  size_t max_connections = 10000;
  // From one IP address / one IPv4 /24 or IPv6 /64 (quic::EndpointConfig::max_connections_per_*).
  size_t max_connections_per_address = 32;
  size_t max_connections_per_network = 256;
  // New connections must validate their address (QUIC Retry) once this share of
  // max_connections is in use (0: always).
  uint32_t retry_percent = 10;
  // Anonymous HTTP/3 (status) connections: their own cap and a short idle timeout.
  size_t h3_max_connections = 32;
  uint32_t h3_idle_timeout_ms = 5000;
  // Signaling bytes queued for one client and not yet acknowledged; a client that lets more
  // pile up is closed with kCloseSlowConsumer (relay/router.h).
  size_t signal_queue_bytes = 256 * 1024;
  uint32_t idle_timeout_ms = 30000;
  uint32_t shutdown_timeout_ms = 3000;
  int socket_buffer_bytes = 4 << 20;
  int log_level = 3;         // kLogInfo
  bool http3 = true;         // serve /health, /metrics, /v1/identity over ALPN h3
  RouterLimits limits;
};

// Fills `out` from defaults, then `--config FILE` (if among the flags), then the flags.
// Returns kOk, or kErrInvalidArgument with `*error` saying which flag/line is wrong and why.
// `--help` returns kErrInvalidArgument with the usage text in `*error` and `*help` = true.
int parse_config(int argc, const char *const *argv, RelayConfig *out, std::string *error,
                 bool *help);

const char *usage();

}  // namespace parley::relay

#endif

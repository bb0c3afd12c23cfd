// The STUN server side, sans-I/O: answers Binding requests on whatever socket(s) the embedder
// owns (the relay's QUIC port, an alternate port, a test tool). With an alternate address
// configured it serves RFC 5780 behaviour discovery (CHANGE-REQUEST, OTHER-ADDRESS,
// RESPONSE-ORIGIN).
//
// No amplification: a response is never larger than the request plus one XOR-MAPPED-ADDRESS
// attribute. Optional attributes (OTHER-ADDRESS, RESPONSE-ORIGIN, SOFTWARE, FINGERPRINT) are
// only added while the budget allows, so a client that wants them sends a larger request (e.g.
// with SOFTWARE). Malformed messages, indications and responses get no answer at all.
#ifndef PARLEY_STUN_RESPONDER_H
#define PARLEY_STUN_RESPONDER_H

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/address.h"
#include "stun/message.h"

namespace parley::stun {

struct ResponderConfig {
  // The server's primary transport address (IP + port) and, for RFC 5780, an alternate
  // one with a different IP *and* a different port. Leave `alternate` unset when the server
  // has one address: CHANGE-REQUEST then earns a 420 and OTHER-ADDRESS is omitted.
  SocketAddress primary;
  SocketAddress alternate;
  std::string software = "parley";
};

struct ResponderStats {
  uint64_t requests = 0;
  uint64_t responses = 0;
  uint64_t error_responses = 0;
  uint64_t dropped_malformed = 0;
  uint64_t dropped_not_request = 0;
  uint64_t dropped_budget = 0;  // even a minimal answer would have amplified
};

class Responder {
 public:
  explicit Responder(ResponderConfig config) : config_(std::move(config)) {}

  struct Reply {
    size_t len = 0;
    SocketAddress source;  // the local address to send from (differs for CHANGE-REQUEST)
    SocketAddress to;
  };

  // `data`/`len`: a datagram that arrived on local address `local` from `from`. Writes the
  // response to `out` (capacity `cap`, kMaxMessageLen suffices) and returns true when one
  // should be sent, false to drop.
  bool handle(const uint8_t *data, size_t len, const SocketAddress &from,
              const SocketAddress &local, uint8_t *out, size_t cap, Reply *reply);

  const ResponderStats &stats() const { return stats_; }
  const ResponderConfig &config() const { return config_; }

 private:
  bool error_reply(const Message &req, int code, const char *reason, const uint16_t *unknown,
                   size_t unknown_count, size_t budget, const SocketAddress &from,
                   const SocketAddress &local, uint8_t *out, size_t cap, Reply *reply);
  ResponderConfig config_;
  ResponderStats stats_;
};

}  // namespace parley::stun

#endif

// libFuzzer target: the shared socket's entry point. Every byte string a stranger can send to
// a parley UDP port goes through the RFC 7983 demultiplexer into either the STUN responder or
// the QUIC endpoint (as a server that accepts connections). Nothing may crash, and a STUN
// answer may never exceed the request plus one XOR-MAPPED-ADDRESS; a QUIC endpoint never sends
// a stranger more than three times what it received (RFC 9000 anti-amplification).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "base/demux.h"
#include "base/error.h"
#include "base/log.h"
#include "identity/identity.h"
#include "quic/endpoint.h"
#include "stun/message.h"
#include "stun/responder.h"

using namespace parley;

namespace {

struct Harness {
  std::unique_ptr<identity::Identity> id;
  std::unique_ptr<quic::Endpoint> endpoint;
  stun::Responder responder{[] {
    stun::ResponderConfig c;
    SocketAddress::parse("203.0.113.10:3478", &c.primary);
    return c;
  }()};
  SocketAddress local, peer;
  size_t sent = 0, received = 0;
  Timestamp now = 1000 * kNanosPerSecond;

  Harness() {
    log_set_level(kLogOff);
    const uint8_t seed[32] = {7};
    if (identity::Identity::from_seed(seed, 32, &id) != kOk) std::abort();
    quic::EndpointConfig cfg;
    cfg.max_connections = 128;           // keep fuzzing memory bounded...
    cfg.retry_when_handshaking_over = 8;  // ...while still reaching the Retry path
    if (quic::Endpoint::create(*id, cfg,
                               [this](const SocketAddress &, const uint8_t *, size_t n) {
                                 sent += n;
                               },
                               &endpoint) != kOk) {
      std::abort();
    }
    SocketAddress::parse("203.0.113.10:3478", &local);
    SocketAddress::parse("198.51.100.7:40000", &peer);
    endpoint->set_local_address(local);
    endpoint->set_accept([](const SocketAddress &) {
      return quic::Endpoint::Incoming{[](const identity::Fingerprint &) { return true; },
                                      [](quic::Connection &, const quic::Event &) {}};
    });
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Harness h;
  h.now += 10 * kNanosPerMilli;
  switch (classify_datagram(data, size)) {
    case DatagramKind::kStun: {
      uint8_t out[stun::kMaxMessageLen];
      stun::Responder::Reply reply;
      if (h.responder.handle(data, size, h.peer, h.local, out, sizeof out, &reply) &&
          reply.len > size + 12) {
        std::abort();
      }
      break;
    }
    case DatagramKind::kQuic: {
      h.received += size;
      const size_t before = h.sent;
      h.endpoint->handle_datagram(data, size, h.peer, h.now);
      // The immediate answers to one datagram (Retry, version negotiation, reset, close)
      // never exceed 3x that datagram.
      if (h.sent - before > 3 * size) std::abort();
      h.endpoint->flush(h.now);
      if (h.endpoint->next_expiry() != 0 && h.endpoint->next_expiry() <= h.now) {
        h.endpoint->handle_expiry(h.now);
      }
      // Everything sent to a stranger (Retry, version negotiation, stateless resets, handshake
      // flights of half-open connections) stays within 3x what it sent us.
      if (h.sent > 3 * h.received) std::abort();
      break;
    }
    case DatagramKind::kUnknown:
      break;
  }
  return 0;
}

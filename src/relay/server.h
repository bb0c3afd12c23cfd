// The relay's I/O adapter: binds the QUIC+STUN port and the alternate STUN port on a Loop,
// demultiplexes the shared port (STUN -> responder, QUIC -> endpoint), drives the Router's
// clock and ring timeouts, serves the HTTP/3 endpoints, and shuts down gracefully.
// Create, use and destroy on the loop thread.
#ifndef PARLEY_RELAY_SERVER_H
#define PARLEY_RELAY_SERVER_H

#include <functional>
#include <memory>
#include <string>

#include "base/loop.h"
#include "base/udp_socket.h"
#include "identity/identity.h"
#include "quic/endpoint.h"
#include "quic/endpoint_driver.h"
#include "relay/config.h"
#include "relay/router.h"
#include "stun/responder.h"

namespace parley::relay {

struct ServerStats {
  uint64_t stun_requests = 0, stun_responses = 0;
  uint64_t dropped_unknown_protocol = 0;
  uint64_t http_requests = 0;
};

class Server {
 public:
  // Binds both ports and starts serving. `id` must outlive the server. kOk, kErrSocket
  // (a port is taken), kErrCrypto, kErrInvalidArgument.
  static int create(Loop &loop, const identity::Identity &id, const RelayConfig &config,
                    std::unique_ptr<Server> *out);
  ~Server();

  SocketAddress address() const;           // the QUIC+STUN port as bound
  SocketAddress other_address() const;     // the other family's (RelayConfig::listen_other), or unset
  SocketAddress stun_alt_address() const;  // unset when disabled

  // Stops accepting connections and calls, closes every connection with "shutting down"
  // (clients reconnect elsewhere or later) and calls `done` once all are gone or
  // shutdown_timeout_ms passed, whichever comes first. Idempotent.
  void shutdown(std::function<void()> done);

  // Prometheus text exposition of every counter and gauge.
  std::string metrics() const;
  const Router &router() const { return router_; }
  Router &router() { return router_; }
  const quic::Endpoint &endpoint() const { return *endpoint_; }

 private:
  Server(Loop &loop, const identity::Identity &id, const RelayConfig &config);
  void on_main_datagram(const uint8_t *data, size_t len, const SocketAddress &from);
  void on_other_datagram(const uint8_t *data, size_t len, const SocketAddress &from);
  // Either family's QUIC port: QUIC to the shared endpoint, STUN answered from `sock`.
  void on_quic_port_datagram(UdpSocket &sock, stun::Responder &responder, const uint8_t *data,
                             size_t len, const SocketAddress &from);
  void on_alt_datagram(const uint8_t *data, size_t len, const SocketAddress &from);
  void answer_stun(UdpSocket &sock, stun::Responder &responder, const uint8_t *data,
                   size_t len, const SocketAddress &from);
  void tick();
  void check_shutdown();

  Loop &loop_;
  const identity::Identity &id_;
  RelayConfig config_;
  Router router_;
  UdpSocket sock_, alt_sock_, other_sock_;
  bool alt_bound_ = false, other_bound_ = false;
  std::unique_ptr<stun::Responder> responder_, alt_responder_, other_responder_;
  // The socket a datagram to `to` leaves from: the one of its family.
  UdpSocket &socket_for(const SocketAddress &to) {
    return other_bound_ && to.family() == other_sock_.local_address().family() ? other_sock_
                                                                                : sock_;
  }
  std::unique_ptr<quic::Endpoint> endpoint_;
  std::unique_ptr<quic::EndpointDriver> driver_;
  Timer tick_timer_, shutdown_timer_;
  std::function<void()> shutdown_done_;
  Timestamp shutdown_deadline_ = 0;
  ServerStats stats_;
  Timestamp started_ = 0;
};

}  // namespace parley::relay

#endif

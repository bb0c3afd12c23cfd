// Binds an Endpoint to the loop: a Timer for its expiries and a "kick" after API calls. The
// caller routes QUIC datagrams from the shared socket to on_datagram (after demultiplexing,
// see base/demux.h). Loop thread only.
#ifndef PARLEY_QUIC_ENDPOINT_DRIVER_H
#define PARLEY_QUIC_ENDPOINT_DRIVER_H

#include "base/loop.h"
#include "quic/endpoint.h"

namespace parley::quic {

class EndpointDriver {
 public:
  EndpointDriver(Loop &loop, Endpoint &endpoint) : endpoint_(endpoint), timer_(loop) {}
  void on_datagram(const uint8_t *data, size_t len, const SocketAddress &from);
  // Sends what API calls queued and re-arms the timer. Call after connect/send/close.
  void kick();

 private:
  Endpoint &endpoint_;
  Timer timer_;
  bool armed_once_ = false;
};

}  // namespace parley::quic

#endif

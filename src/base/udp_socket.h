// A UDP socket on a Loop: the thin I/O adapter under the sans-I/O protocol cores. Receives in
// batches where the system has recvmmsg (through libuv; one datagram per call elsewhere) into
// one buffer allocated at bind time, and sends with uv_udp_try_send (synchronous, no
// allocation). Create, use and destroy on the loop thread.
#ifndef PARLEY_BASE_UDP_SOCKET_H
#define PARLEY_BASE_UDP_SOCKET_H

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/address.h"
#include "base/loop.h"

namespace parley {

// One datagram of a batch; the pointers must stay valid during the send_batch call.
struct OutDatagram {
  const uint8_t *data;
  size_t len;
  const SocketAddress *to;
};

struct UdpSocketStats {
  uint64_t datagrams_received = 0;
  uint64_t datagrams_sent = 0;
  uint64_t send_errors = 0;  // EAGAIN (socket buffer full) and other failures: dropped
  uint64_t receive_errors = 0;
};

class UdpSocket {
 public:
  using ReceiveFn =
      std::function<void(const uint8_t *data, size_t len, const SocketAddress &from)>;

  explicit UdpSocket(Loop &loop);
  ~UdpSocket();
  UdpSocket(const UdpSocket &) = delete;
  UdpSocket &operator=(const UdpSocket &) = delete;

  // Binds to `address` (port 0: any free port; IPv6 sockets are v6-only) and starts
  // delivering datagrams to `on_receive`. kOk or kErrSocket.
  int bind(const SocketAddress &address, ReceiveFn on_receive);
  SocketAddress local_address() const;
  // Asks the kernel for larger socket buffers (bytes; 0 leaves one unchanged): bursts of
  // media or handshakes then queue instead of dropping. Call after bind. kOk or kErrSocket.
  int set_buffer_sizes(int receive, int send);
  // Replaces the receive handler (e.g. when a demultiplexer or a new protocol takes over).
  void set_receiver(ReceiveFn on_receive);

  // Sends one datagram now. kOk, or kErrSocket if the kernel refused it (counted; the
  // datagram is dropped — UDP semantics, never queued).
  int send(const SocketAddress &to, const uint8_t *data, size_t len);
  // Sends up to `n` datagrams with as few system calls as the system allows (sendmmsg where it
  // exists, else one per datagram).
  // Returns how many were sent; the rest were refused (counted in send_errors, dropped).
  size_t send_batch(const OutDatagram *batch, size_t n);

  const UdpSocketStats &stats() const;

 private:
  struct Impl;
  Impl *impl_;  // freed by libuv's close callback, which may run after the destructor
};

// The local IP the kernel would use to reach `destination` (a connected UDP socket is created
// and closed; no packet is sent). kOk or kErrSocket.
int route_source(const SocketAddress &destination, SocketAddress *out);

}  // namespace parley

#endif

// The I/O adapter for the ice layer's sans-I/O machines: real sockets, a real timer, the
// system's interfaces. Everything here runs on the Loop thread.
#ifndef PARLEY_ICE_DRIVER_H
#define PARLEY_ICE_DRIVER_H

#include <functional>
#include <vector>

#include "base/loop.h"
#include "base/udp_socket.h"
#include "ice/machine.h"

namespace parley::ice {

struct InterfaceOptions {
  bool include_loopback = false;
  bool include_link_local = false;
};

// Addresses of every up interface (port 0) in order_host_addresses's order, skipping loopback
// and link-local unless asked. kOk or kErrSocket.
int host_interface_addresses(const InterfaceOptions &options, std::vector<SocketAddress> *out);

// Runs `machine` until it is done, sending through `v4`/`v6` (either may be null: datagrams
// for a family without a socket are dropped) and feeding it what they receive. `on_done` runs
// once, on the loop thread, when the machine reports done.
class MachineRunner {
 public:
  MachineRunner(Loop &loop, UdpSocket *v4, UdpSocket *v6, StunMachine &machine,
                std::function<void()> on_done);
  void start();
  // Feed a datagram received on one of the sockets (wire this from the socket's receiver).
  void on_datagram(const uint8_t *data, size_t len, const SocketAddress &from);

 private:
  void pump();

  UdpSocket *v4_, *v6_;
  StunMachine &machine_;
  std::function<void()> on_done_;
  Timer timer_;
  bool finished_ = false;
};

}  // namespace parley::ice

#endif

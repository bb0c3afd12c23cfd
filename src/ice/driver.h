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

// The IPv4 default gateway (port 0) and our address toward it (port 0), from the kernel's
// routing table (Linux: /proc/net/route; no packet is sent). kOk, kErrNoUsableAddress (no
// IPv4 default route through a gateway), kErrSocket.
int default_gateway_v4(SocketAddress *gateway, SocketAddress *local);

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
  // Runs after every round of feeding, timeouts and sending: for machines with events.
  void set_after_pump(std::function<void()> fn) { after_pump_ = std::move(fn); }
  // Sends what the machine has to send now (after a call on the machine from outside).
  void kick() { pump(); }

 private:
  void pump();

  UdpSocket *v4_, *v6_;
  StunMachine &machine_;
  std::function<void()> on_done_, after_pump_;
  Timer timer_;
  bool finished_ = false;
};

}  // namespace parley::ice

#endif

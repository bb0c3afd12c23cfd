// The shape shared by the ice layer's sans-I/O state machines (gathering, netcheck), so one
// small adapter (driver.h) can run any of them on real sockets and timers, and tests can run
// them on a simulated network with a simulated clock.
#ifndef PARLEY_ICE_MACHINE_H
#define PARLEY_ICE_MACHINE_H

#include <cstddef>
#include <cstdint>

#include "base/address.h"
#include "base/clock.h"

namespace parley::ice {

struct Datagram {
  const uint8_t *data;  // valid until the next call on the machine
  size_t len;
  SocketAddress to;
};

class StunMachine {
 public:
  virtual ~StunMachine() = default;
  // Next datagram to send at `now`; false when nothing is due.
  virtual bool poll_transmit(Timestamp now, Datagram *out) = 0;
  // A datagram that arrived on the machine's socket.
  virtual void handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                               Timestamp now) = 0;
  // When the machine next needs handle_timeout (0: no timer needed).
  virtual Timestamp next_deadline() const = 0;
  virtual void handle_timeout(Timestamp now) = 0;
  virtual bool done() const = 0;
};

}  // namespace parley::ice

#endif

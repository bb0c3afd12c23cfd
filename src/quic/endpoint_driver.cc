#include "quic/endpoint_driver.h"

#include "base/clock.h"

namespace parley::quic {

void EndpointDriver::on_datagram(const uint8_t *data, size_t len, const SocketAddress &from) {
  endpoint_.handle_datagram(data, len, from, monotonic_now());
  kick();
}

void EndpointDriver::kick() {
  Timestamp now = monotonic_now();
  const Timestamp due = endpoint_.next_expiry();
  if (due != 0 && due <= now) {
    endpoint_.handle_expiry(now);
  } else {
    endpoint_.flush(now);
  }
  const Timestamp next = endpoint_.next_expiry();
  if (next == 0) {
    timer_.stop();
    return;
  }
  now = monotonic_now();
  const uint64_t ms = next > now ? (next - now + kNanosPerMilli - 1) / kNanosPerMilli : 0;
  if (armed_once_) {
    timer_.restart(ms);
  } else {
    armed_once_ = true;
    timer_.start(ms, 0, [this] { kick(); });
  }
}

}  // namespace parley::quic

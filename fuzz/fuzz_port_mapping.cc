// libFuzzer target: the PCP and NAT-PMP response parsers and the port mapper that reads them
// (any datagram from the gateway's port-mapping port reaches it). The mapper must never
// report a mapping for another internal port, with lifetime 0, or without an address.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "base/log.h"
#include "ice/port_mapper.h"
#include "ice/port_mapping_wire.h"

using namespace parley;
using namespace parley::ice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  NatPmpResponse n;
  const int rn = natpmp_parse_response(data, size, &n);
  if (rn != kOk && rn != kErrInvalidArgument) std::abort();
  PcpResponse p;
  const int rp = pcp_parse_response(data, size, &p);
  if (rp != kOk && rp != kErrInvalidArgument) std::abort();
  pcp_is_natpmp_refusal(data, size);

  PortMapperConfig c;
  SocketAddress::parse("10.0.1.1:5351", &c.gateway);
  SocketAddress::parse("10.0.1.2:40000", &c.client);
  c.nonce.fill(1);  // the fuzzer can then echo it
  PortMapper m(c, 1);
  Timestamp now = 1;
  Datagram d;
  while (m.poll_transmit(now, &d)) {
  }
  // The input as a few datagrams: each chunk prefixed by its length byte.
  size_t at = 0;
  while (at < size) {
    const size_t n_bytes = data[at++];
    const size_t take = n_bytes < size - at ? n_bytes : size - at;
    now += 100 * kNanosPerMilli;
    m.handle_datagram(data + at, take, c.gateway, now);
    if (m.next_deadline() != 0 && m.next_deadline() <= now) m.handle_timeout(now);
    while (m.poll_transmit(now, &d)) {
      if (d.to != c.gateway || d.len == 0 || d.len > kPcpMapRequestSize) std::abort();
    }
    at += take;
  }
  PortMapperEvent e;
  while (m.poll_event(&e)) {
    if (e.type == PortMapperEvent::Type::kMapped &&
        (!e.mapping.external.is_set() || e.mapping.lifetime_s == 0 ||
         e.mapping.protocol == MappingProtocol::kNone)) {
      std::abort();
    }
  }
  m.release(now);
  while (m.poll_transmit(now, &d)) {
  }
  if (!m.done()) std::abort();
  return 0;
}

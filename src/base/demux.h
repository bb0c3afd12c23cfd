// RFC 7983-style demultiplexing of the one shared UDP socket by the first byte: 0-3 is STUN
// (confirm with stun::looks_like_stun), 64-255 is QUIC (the fixed bit 0x40 of every QUIC v1
// packet, or the long-header bit). Anything else is dropped.
#ifndef PARLEY_BASE_DEMUX_H
#define PARLEY_BASE_DEMUX_H

#include <cstddef>
#include <cstdint>

namespace parley {

enum class DatagramKind { kStun, kQuic, kUnknown };

inline DatagramKind classify_datagram(const uint8_t *data, size_t len) {
  if (len == 0) return DatagramKind::kUnknown;
  if (data[0] <= 3) return DatagramKind::kStun;
  if (data[0] >= 64) return DatagramKind::kQuic;
  return DatagramKind::kUnknown;
}

}  // namespace parley

#endif

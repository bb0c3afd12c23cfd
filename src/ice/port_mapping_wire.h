// The wire formats of the two port-mapping protocols a home router answers on UDP port 5351:
// NAT-PMP (RFC 6886) and its successor PCP (RFC 6887, the MAP opcode only). Encoders write
// requests; decoders check every length, version, opcode and reserved field a gateway sends
// and reject anything else. No I/O (ice/port_mapper.h drives them).
#ifndef PARLEY_ICE_PORT_MAPPING_WIRE_H
#define PARLEY_ICE_PORT_MAPPING_WIRE_H

#include <array>
#include <cstddef>
#include <cstdint>

#include "base/address.h"

namespace parley::ice {

constexpr uint16_t kPortMappingServerPort = 5351;

// --- NAT-PMP (RFC 6886) ---------------------------------------------------------------------

constexpr size_t kNatPmpAddressRequestSize = 2;
constexpr size_t kNatPmpMapRequestSize = 12;

// "What is your external address?" (opcode 0).
void natpmp_address_request(uint8_t out[kNatPmpAddressRequestSize]);
// Map UDP `internal_port` for `lifetime_s` (0: delete the mapping; then `external_port` must
// be 0 too), asking for `external_port` (0: any).
void natpmp_map_request(uint16_t internal_port, uint16_t external_port, uint32_t lifetime_s,
                        uint8_t out[kNatPmpMapRequestSize]);

struct NatPmpResponse {
  uint8_t opcode = 0;       // of the request it answers (0 address, 1 map UDP)
  uint16_t result = 0;      // 0 success; RFC 6886 3.5 for the rest
  uint32_t epoch_s = 0;     // seconds since the gateway's mappings were last reset
  SocketAddress external;   // opcode 0 with result 0: the external IPv4 address (port 0)
  uint16_t internal_port = 0, external_port = 0;  // opcode 1
  uint32_t lifetime_s = 0;                       // opcode 1
};

// kOk or kErrInvalidArgument (not a NAT-PMP response: length, version, opcode).
int natpmp_parse_response(const uint8_t *data, size_t len, NatPmpResponse *out);

// --- PCP (RFC 6887), MAP ----------------------------------------------------------------------

constexpr size_t kPcpMapRequestSize = 60;
constexpr size_t kPcpNonceSize = 12;
using PcpNonce = std::array<uint8_t, kPcpNonceSize>;

enum PcpResult : uint8_t {
  kPcpSuccess = 0,
  kPcpUnsupportedVersion = 1,
  kPcpNotAuthorized = 2,
  kPcpMalformedRequest = 3,
  kPcpUnsupportedOpcode = 4,
  kPcpNetworkFailure = 7,
  kPcpNoResources = 8,
  kPcpCannotProvideExternal = 11,
  kPcpAddressMismatch = 12,
};

// A MAP request for UDP `internal_port` of `client` (the address the request leaves from:
// the gateway checks it against the packet's source), for `lifetime_s` (0: delete),
// suggesting `external` (unset: none). The nonce ties the answer, and later renewals and
// the delete, to this mapping.
void pcp_map_request(const SocketAddress &client, uint16_t internal_port,
                     const SocketAddress &external, uint32_t lifetime_s, const PcpNonce &nonce,
                     uint8_t out[kPcpMapRequestSize]);

struct PcpResponse {
  uint8_t opcode = 0;
  uint8_t result = 0;
  uint32_t lifetime_s = 0, epoch_s = 0;
  // MAP (when the response is long enough to carry it; error responses may be shorter).
  bool has_map = false;
  PcpNonce nonce{};
  uint8_t protocol = 0;
  uint16_t internal_port = 0;
  SocketAddress external;  // assigned external address and port (IPv4 unmapped)
};

// kOk or kErrInvalidArgument (not a PCP response: length, version, R bit, size not a
// multiple of 4). A gateway that speaks only NAT-PMP answers a PCP request with a NAT-PMP
// "unsupported version" response: pcp_is_natpmp_refusal tells that apart.
int pcp_parse_response(const uint8_t *data, size_t len, PcpResponse *out);
bool pcp_is_natpmp_refusal(const uint8_t *data, size_t len);

}  // namespace parley::ice

#endif

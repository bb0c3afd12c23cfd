// Asks the local gateway to open a port for our socket, sans-I/O: PCP (RFC 6887) first and
// NAT-PMP (RFC 6886) when PCP is refused or silent, so either kind of home router answers.
// The mapping (the gateway's external address and port, forwarded to our socket's port) is a
// candidate every peer can reach, whatever the NAT's mapping and filtering. It is renewed at
// half its lifetime and deleted on release(). Requests go only to the configured gateway, at
// most once per retransmission step, and end at the give-up time: a network without a
// port-mapping gateway costs a handful of small datagrams to its own router.
//
// Driving it: a StunMachine (ice/machine.h) that never reports done until released. After
// anything is fed in, drain poll_transmit() and poll_event().
#ifndef PARLEY_ICE_PORT_MAPPER_H
#define PARLEY_ICE_PORT_MAPPER_H

#include <deque>
#include <vector>

#include "base/address.h"
#include "ice/machine.h"
#include "ice/port_mapping_wire.h"

namespace parley::ice {

enum class MappingProtocol { kNone = 0, kPcp = 1, kNatPmp = 2, kUpnp = 3 };
const char *mapping_protocol_name(MappingProtocol p);  // "none", "pcp", "nat-pmp", "upnp"

struct PortMapping {
  MappingProtocol protocol = MappingProtocol::kNone;
  SocketAddress external;  // the gateway's external address and the port it forwards
  uint32_t lifetime_s = 0;
};

struct PortMapperConfig {
  SocketAddress gateway;   // the default router, port kPortMappingServerPort
  SocketAddress client;    // our address toward it, with our socket's (internal) port
  uint32_t lifetime_s = 7200;
  bool pcp = true, natpmp = true;
  // Sends at 0, 250, 750 ms (PCP; NAT-PMP joins at 250 ms if PCP is silent); nothing by
  // give_up_ms: no gateway answers. RFC 6886 3.1 starts at 250 ms too.
  uint32_t first_retransmit_ms = 250;
  uint32_t give_up_ms = 1500;
  PcpNonce nonce{};  // all zero: a random one is drawn
};

struct PortMapperEvent {
  enum class Type { kMapped, kFailed, kLost };
  Type type = Type::kFailed;
  PortMapping mapping;  // kMapped: the (new) mapping; kLost: the one that was lost
  const char *why = "";  // kFailed / kLost
};

class PortMapper : public StunMachine {
 public:
  PortMapper(PortMapperConfig config, Timestamp now);

  bool poll_transmit(Timestamp now, Datagram *out) override;
  // Only answers from the gateway's address count; anything else is ignored.
  void handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                       Timestamp now) override;
  Timestamp next_deadline() const override;
  void handle_timeout(Timestamp now) override;
  bool done() const override { return state_ == State::kReleased; }

  bool poll_event(PortMapperEvent *out);
  // Still asking for a first mapping (neither mapped nor given up).
  bool probing() const { return state_ == State::kProbing; }
  // The current mapping (protocol kNone while there is none).
  const PortMapping &mapping() const { return mapping_; }
  // Deletes the mapping at the gateway (one request, not retransmitted: the context is going
  // away) and stops. Done once that request has been taken by poll_transmit.
  void release(Timestamp now);
  uint64_t requests_sent() const { return requests_sent_; }

 private:
  enum class State { kProbing, kMapped, kRenewing, kIdle, kReleasing, kReleased };
  void send_round(Timestamp now);
  void on_pcp(const uint8_t *data, size_t len, Timestamp now);
  void on_natpmp(const uint8_t *data, size_t len, Timestamp now);
  void mapped(MappingProtocol p, const SocketAddress &external, uint32_t lifetime_s,
              Timestamp now);
  void give_up(Timestamp now, const char *why);
  void queue(const uint8_t *data, size_t len);

  PortMapperConfig config_;
  State state_ = State::kProbing;
  PortMapping mapping_;
  bool pcp_refused_ = false, natpmp_started_ = false, natpmp_refused_ = false;
  SocketAddress natpmp_external_;                 // from the address request
  uint16_t natpmp_port_ = 0;                      // from the map request
  uint32_t natpmp_lifetime_ = 0;
  Timestamp round_started_ = 0, next_send_ = 0, renew_at_ = 0, expires_ = 0;
  uint32_t backoff_ms_ = 0;
  std::deque<std::vector<uint8_t>> out_;
  std::vector<uint8_t> sending_;
  std::deque<PortMapperEvent> events_;
  uint64_t requests_sent_ = 0;
};

}  // namespace parley::ice

#endif

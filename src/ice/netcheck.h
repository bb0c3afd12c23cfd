// NAT behaviour discovery (RFC 5780 section 4), sans-I/O, from the one shared socket.
//   1. Binding to the server: UDP works? mapped address; OTHER-ADDRESS; NAT at all?
//   2. Filtering: CHANGE-REQUEST (IP+port), then (port only): which unsolicited sources get
//      through. Run *before* any request is sent to the alternate address, which would open
//      the very pinholes under test. Hairpinning (a request to our own mapped address) runs
//      alongside.
//   3. Mapping: Binding to (alternate IP, primary port) and (alternate IP, alternate port):
//      does the mapping change with the destination?
// The result is a structured report and a classic classification.
#ifndef PARLEY_ICE_NETCHECK_H
#define PARLEY_ICE_NETCHECK_H

#include <optional>
#include <string>

#include "ice/machine.h"
#include "stun/client.h"

namespace parley::ice {

enum class Behaviour { kUnknown, kEndpointIndependent, kAddressDependent, kAddressPortDependent };
enum class NatClass {
  kUnknown,
  kUdpBlocked,
  kOpenInternet,    // no NAT, no filtering
  kFirewalled,      // no NAT, but unsolicited traffic is filtered
  kFullCone,        // EIM + EIF
  kRestrictedCone,  // EIM + address-dependent filtering
  kPortRestrictedCone,  // EIM + address-and-port-dependent filtering
  kSymmetric,       // mapping depends on the destination
};

const char *behaviour_name(Behaviour b);  // "endpoint-independent", ...
const char *nat_class_name(NatClass c);    // "port-restricted-cone", ...

struct NetcheckConfig {
  SocketAddress server;      // primary address of an RFC 5780 capable STUN server
  SocketAddress local_base;  // our address toward it (route source IP + socket port)
  stun::RetransmitConfig rtx{200, 3, 4, 0};  // 0/200/600 ms, gives up at 1.4 s
  // Requests carry SOFTWARE so the server's no-amplification budget has room for
  // OTHER-ADDRESS and RESPONSE-ORIGIN in its answers.
  std::string software = "parley-netcheck (RFC 5780 behaviour discovery)";
};

struct NetcheckReport {
  bool udp = false;
  SocketAddress local;
  SocketAddress mapped;
  SocketAddress other_address;  // server's alternate address, if it has one
  std::optional<bool> nat;
  Behaviour mapping = Behaviour::kUnknown;
  Behaviour filtering = Behaviour::kUnknown;
  std::optional<bool> port_preserved;
  std::optional<bool> hairpinning;
  NatClass classification = NatClass::kUnknown;
  Timestamp rtt = 0;
};

class Netcheck : public StunMachine {
 public:
  Netcheck(NetcheckConfig config, Timestamp now);

  bool poll_transmit(Timestamp now, Datagram *out) override;
  void handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                       Timestamp now) override;
  Timestamp next_deadline() const override { return done_ ? 0 : client_.next_deadline(); }
  void handle_timeout(Timestamp now) override;
  bool done() const override { return done_; }

  const NetcheckReport &report() const { return report_; }
  // The first Binding was answered (or gave up): other_address is known if the server has one.
  bool binding_done() const { return phase_ != Phase::kBinding; }
  // The filtering tests are over: packets to the server's alternate address no longer
  // disturb them.
  bool filtering_done() const { return filtering_done_; }

 private:
  enum Test : uint64_t {
    kTestBinding,
    kTestFilterChangeBoth,
    kTestFilterChangePort,
    kTestHairpin,
    kTestMapAltIp,
    kTestMapAltBoth,
  };
  void send(Test test, const SocketAddress &to, uint32_t change, const SocketAddress &expect,
            Timestamp now);
  void step(Timestamp now);
  void classify();

  NetcheckConfig config_;
  NetcheckReport report_;
  stun::ClientTransactions client_;
  stun::TransactionId hairpin_id_;
  enum class Phase { kBinding, kFiltering, kMapping, kDone } phase_ = Phase::kBinding;
  std::optional<bool> filter_both_, filter_port_;
  std::optional<SocketAddress> map_alt_ip_, map_alt_both_;
  bool map_alt_ip_failed_ = false, map_alt_both_failed_ = false;
  bool filter_refused_ = false;
  bool filtering_done_ = false;
  bool done_ = false;
};

}  // namespace parley::ice

#endif

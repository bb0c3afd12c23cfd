#include "ice/netcheck.h"

#include "base/error.h"
#include "stun/message.h"

namespace parley::ice {

const char *behaviour_name(Behaviour b) {
  switch (b) {
    case Behaviour::kUnknown: return "unknown";
    case Behaviour::kEndpointIndependent: return "endpoint-independent";
    case Behaviour::kAddressDependent: return "address-dependent";
    case Behaviour::kAddressPortDependent: return "address-and-port-dependent";
  }
  return "?";
}

const char *nat_class_name(NatClass c) {
  switch (c) {
    case NatClass::kUnknown: return "unknown";
    case NatClass::kUdpBlocked: return "udp-blocked";
    case NatClass::kOpenInternet: return "open-internet";
    case NatClass::kFirewalled: return "firewalled";
    case NatClass::kFullCone: return "full-cone";
    case NatClass::kRestrictedCone: return "restricted-cone";
    case NatClass::kPortRestrictedCone: return "port-restricted-cone";
    case NatClass::kSymmetric: return "symmetric";
  }
  return "?";
}

Netcheck::Netcheck(NetcheckConfig config, Timestamp now) : config_(std::move(config)) {
  report_.local = config_.local_base;
  send(kTestBinding, config_.server, 0, SocketAddress(), now);
}

void Netcheck::send(Test test, const SocketAddress &to, uint32_t change,
                    const SocketAddress &expect, Timestamp now) {
  uint8_t buf[stun::kMaxMessageLen];
  stun::MessageBuilder b(buf, sizeof buf);
  const stun::TransactionId id = stun::TransactionId::random();
  if (test == kTestHairpin) hairpin_id_ = id;
  b.start(stun::kBinding, stun::kRequest, id);
  if (change) b.add_u32(stun::kAttrChangeRequest, change);
  if (!config_.software.empty()) b.add_string(stun::kAttrSoftware, config_.software);
  b.add_fingerprint();
  size_t n = 0;
  if (b.finish(&n) == kOk) client_.start(buf, n, to, config_.rtx, now, test, nullptr, 0, expect);
}

bool Netcheck::poll_transmit(Timestamp now, Datagram *out) {
  if (done_) return false;
  stun::ClientTransactions::Transmit t;
  if (!client_.poll_transmit(now, &t)) return false;
  *out = {t.data, t.len, t.to};
  return true;
}

void Netcheck::handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                               Timestamp now) {
  if (done_) return;
  if (!client_.handle_datagram(data, len, from, now)) {
    // Not a response: our own hairpin request coming back through the NAT?
    stun::Message m;
    if (stun::Message::parse(data, len, &m) == kOk && m.message_class() == stun::kRequest &&
        m.transaction_id() == hairpin_id_ && phase_ != Phase::kBinding) {
      report_.hairpinning = true;
      client_.cancel(kTestHairpin);
    }
  }
  step(now);
}

void Netcheck::handle_timeout(Timestamp now) {
  if (done_) return;
  client_.handle_timeout(now);
  step(now);
}

void Netcheck::step(Timestamp now) {
  stun::ClientTransactions::Result res;
  while (client_.poll_result(&res)) {
    const bool ok = res.outcome == stun::ClientTransactions::Outcome::kSuccess;
    const bool answered = res.outcome != stun::ClientTransactions::Outcome::kTimeout;
    stun::Message m;
    SocketAddress mapped;
    bool has_mapped = false;
    if (ok && stun::Message::parse(res.response.data(), res.response.size(), &m) == kOk) {
      // XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a server of the RFC 3489 era.
      has_mapped = m.xor_address(stun::kAttrXorMappedAddress, &mapped) == kOk ||
                   m.address(stun::kAttrMappedAddress, &mapped) == kOk;
    }
    switch (Test(res.cookie)) {
      case kTestBinding:
        if (!has_mapped) {
          // Only silence means blocked; an answer without a usable address proves UDP works
          // but tells us nothing more.
          report_.udp = answered;
          phase_ = Phase::kDone;
          break;
        }
        report_.udp = true;
        report_.mapped = mapped;
        report_.rtt = res.rtt;
        report_.nat = !(mapped == config_.local_base);
        report_.port_preserved = mapped.port() == config_.local_base.port();
        if (m.has(stun::kAttrOtherAddress)) {
          m.address(stun::kAttrOtherAddress, &report_.other_address);
        }
        if (report_.other_address.is_set() &&
            report_.other_address.family() == config_.server.family() &&
            !report_.other_address.same_ip(config_.server) &&
            report_.other_address.port() != config_.server.port()) {
          phase_ = Phase::kFiltering;
          SocketAddress alt_port_only = config_.server;
          alt_port_only.set_port(report_.other_address.port());
          send(kTestFilterChangeBoth, config_.server, stun::kChangeIp | stun::kChangePort,
               report_.other_address, now);
          send(kTestFilterChangePort, config_.server, stun::kChangePort, alt_port_only, now);
        } else {
          phase_ = Phase::kDone;  // no RFC 5780 support: mapping/filtering stay unknown
        }
        send(kTestHairpin, mapped, 0, SocketAddress(), now);
        break;
      case kTestFilterChangeBoth:
        filter_both_ = has_mapped;
        filter_refused_ |= answered && !has_mapped;  // e.g. 420: the server cannot change
        break;
      case kTestFilterChangePort:
        filter_port_ = has_mapped;
        filter_refused_ |= answered && !has_mapped;
        break;
      case kTestHairpin:
        // A *response* to the hairpin request means something answered at our mapped
        // address (the NAT or a server): inconclusive, but the request did not loop back.
        if (!report_.hairpinning) report_.hairpinning = false;
        break;
      case kTestMapAltIp:
        if (has_mapped) map_alt_ip_ = mapped; else map_alt_ip_failed_ = true;
        break;
      case kTestMapAltBoth:
        if (has_mapped) map_alt_both_ = mapped; else map_alt_both_failed_ = true;
        break;
    }
  }

  if (phase_ == Phase::kFiltering && filter_both_ && filter_port_) {
    report_.filtering = filter_refused_ ? Behaviour::kUnknown
                        : *filter_both_ ? Behaviour::kEndpointIndependent
                        : *filter_port_ ? Behaviour::kAddressDependent
                                        : Behaviour::kAddressPortDependent;
    filtering_done_ = true;
    phase_ = Phase::kMapping;
    SocketAddress alt_ip = report_.other_address;
    alt_ip.set_port(config_.server.port());
    send(kTestMapAltIp, alt_ip, 0, SocketAddress(), now);
    send(kTestMapAltBoth, report_.other_address, 0, SocketAddress(), now);
  }
  if (phase_ == Phase::kMapping && (map_alt_ip_ || map_alt_ip_failed_) &&
      (map_alt_both_ || map_alt_both_failed_)) {
    if (map_alt_ip_ && *map_alt_ip_ == report_.mapped) {
      report_.mapping = Behaviour::kEndpointIndependent;
    } else if (map_alt_ip_ && map_alt_both_) {
      report_.mapping = *map_alt_both_ == *map_alt_ip_ ? Behaviour::kAddressDependent
                                                       : Behaviour::kAddressPortDependent;
    }
    phase_ = Phase::kDone;
  }
  if (phase_ == Phase::kDone) filtering_done_ = true;
  // Done once the phases are over and the hairpin probe has an answer either way.
  if (phase_ == Phase::kDone && (client_.pending() == 0 || !report_.udp)) {
    if (report_.udp && !report_.hairpinning) report_.hairpinning = false;
    client_.cancel(kTestHairpin);
    classify();
    done_ = true;
  }
}

void Netcheck::classify() {
  if (!report_.udp) {
    report_.classification = NatClass::kUdpBlocked;
    return;
  }
  if (!report_.mapped.is_set()) {
    report_.classification = NatClass::kUnknown;
    return;
  }
  if (report_.nat && !*report_.nat) {
    report_.mapping = Behaviour::kEndpointIndependent;  // no NAT: nothing rewrites the port
    switch (report_.filtering) {
      case Behaviour::kEndpointIndependent: report_.classification = NatClass::kOpenInternet; break;
      case Behaviour::kUnknown: report_.classification = NatClass::kUnknown; break;
      default: report_.classification = NatClass::kFirewalled; break;
    }
    return;
  }
  switch (report_.mapping) {
    case Behaviour::kUnknown:
      report_.classification = NatClass::kUnknown;
      return;
    case Behaviour::kAddressDependent:
    case Behaviour::kAddressPortDependent:
      report_.classification = NatClass::kSymmetric;
      return;
    case Behaviour::kEndpointIndependent:
      break;
  }
  switch (report_.filtering) {
    case Behaviour::kEndpointIndependent: report_.classification = NatClass::kFullCone; break;
    case Behaviour::kAddressDependent: report_.classification = NatClass::kRestrictedCone; break;
    case Behaviour::kAddressPortDependent:
      report_.classification = NatClass::kPortRestrictedCone;
      break;
    case Behaviour::kUnknown: report_.classification = NatClass::kUnknown; break;
  }
}

}  // namespace parley::ice

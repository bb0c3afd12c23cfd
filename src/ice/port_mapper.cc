#include "ice/port_mapper.h"

#include <sodium.h>

#include <algorithm>

#include "base/error.h"
#include "base/log.h"

namespace parley::ice {

namespace {
constexpr Timestamp kMs = kNanosPerMilli;
constexpr Timestamp kS = kNanosPerSecond;
}  // namespace

const char *mapping_protocol_name(MappingProtocol p) {
  switch (p) {
    case MappingProtocol::kPcp: return "pcp";
    case MappingProtocol::kNatPmp: return "nat-pmp";
    case MappingProtocol::kUpnp: return "upnp";
    case MappingProtocol::kNone: break;
  }
  return "none";
}

PortMapper::PortMapper(PortMapperConfig config, Timestamp now) : config_(std::move(config)) {
  if (std::all_of(config_.nonce.begin(), config_.nonce.end(), [](uint8_t b) { return b == 0; })) {
    randombytes_buf(config_.nonce.data(), config_.nonce.size());
  }
  round_started_ = next_send_ = now;
  backoff_ms_ = config_.first_retransmit_ms;
  if (!config_.pcp && !config_.natpmp) {
    give_up(now, "no protocol enabled");
    return;
  }
  send_round(now);
}

void PortMapper::queue(const uint8_t *data, size_t len) { out_.emplace_back(data, data + len); }

void PortMapper::send_round(Timestamp now) {
  const bool renewing = state_ == State::kRenewing;
  const MappingProtocol held = mapping_.protocol;
  const bool pcp = config_.pcp && !pcp_refused_ && (!renewing || held == MappingProtocol::kPcp);
  if (pcp) {
    uint8_t req[kPcpMapRequestSize];
    pcp_map_request(config_.client, config_.client.port(), renewing ? mapping_.external
                                                                     : SocketAddress(),
                    config_.lifetime_s, config_.nonce, req);
    queue(req, sizeof req);
  }
  // NAT-PMP joins when PCP is off, refused, or silent past the first retransmission.
  const bool natpmp_due = config_.natpmp && !natpmp_refused_ &&
                          (natpmp_started_ || !pcp ||
                           now >= round_started_ + Timestamp(config_.first_retransmit_ms) * kMs) &&
                          (!renewing || held == MappingProtocol::kNatPmp);
  if (natpmp_due) {
    natpmp_started_ = true;
    uint8_t a[kNatPmpAddressRequestSize];
    natpmp_address_request(a);
    queue(a, sizeof a);
    uint8_t m[kNatPmpMapRequestSize];
    natpmp_map_request(config_.client.port(),
                       renewing ? mapping_.external.port() : config_.client.port(),
                       config_.lifetime_s, m);
    queue(m, sizeof m);
  }
  next_send_ = now + Timestamp(backoff_ms_) * kMs;
  backoff_ms_ *= 2;
}

bool PortMapper::poll_transmit(Timestamp, Datagram *out) {
  if (out_.empty()) {
    if (state_ == State::kReleasing) state_ = State::kReleased;
    return false;
  }
  sending_ = std::move(out_.front());
  out_.pop_front();
  out->data = sending_.data();
  out->len = sending_.size();
  out->to = config_.gateway;
  ++requests_sent_;
  return true;
}

void PortMapper::handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                                 Timestamp now) {
  if (from != config_.gateway || len < 2 ||
      !(state_ == State::kProbing || state_ == State::kRenewing || state_ == State::kMapped)) {
    return;
  }
  if (data[0] == 2) {
    on_pcp(data, len, now);
  } else if (data[0] == 0) {
    if (pcp_is_natpmp_refusal(data, len) && (data[1] & 0x7f) == 1 && natpmp_port_ == 0 &&
        config_.pcp && !pcp_refused_ && !natpmp_started_) {
      // Only PCP was asked yet, so this "unsupported version" answers it: NAT-PMP now.
      pcp_refused_ = true;
      if (config_.natpmp) {
        natpmp_started_ = true;
        send_round(now);
      } else {
        give_up(now, "the gateway speaks NAT-PMP only, and NAT-PMP is off");
      }
      return;
    }
    on_natpmp(data, len, now);
  }
}

void PortMapper::on_pcp(const uint8_t *data, size_t len, Timestamp now) {
  PcpResponse r;
  if (pcp_parse_response(data, len, &r) != kOk || r.opcode != 1) return;
  if (r.has_map && (r.nonce != config_.nonce || r.protocol != 17 ||
                    r.internal_port != config_.client.port())) {
    return;  // another client's, or another mapping's
  }
  if (r.result == kPcpSuccess && r.has_map && r.external.is_set() && r.lifetime_s > 0) {
    mapped(MappingProtocol::kPcp, r.external, r.lifetime_s, now);
    return;
  }
  if (r.result == kPcpSuccess) return;  // malformed success: wait for a proper one
  PARLEY_LOG(kLogInfo, "ice", "PCP: the gateway refused the mapping (result %u)",
             unsigned(r.result));
  pcp_refused_ = true;
  if (config_.natpmp && !natpmp_refused_ && state_ == State::kProbing) {
    if (!natpmp_started_) {
      natpmp_started_ = true;
      send_round(now);
    }
  } else if (state_ == State::kProbing) {
    give_up(now, "the gateway refused the mapping");
  }
}

void PortMapper::on_natpmp(const uint8_t *data, size_t len, Timestamp now) {
  NatPmpResponse r;
  if (!natpmp_started_ || natpmp_parse_response(data, len, &r) != kOk) return;
  if (r.result == 1) {
    // "Unsupported version": our NAT-PMP requests are version 0, so this answers the PCP
    // one, late (RFC 6887 9); NAT-PMP's own answers are still to come.
    pcp_refused_ = true;
    return;
  }
  if (r.result != 0) {
    PARLEY_LOG(kLogInfo, "ice", "NAT-PMP: the gateway refused (opcode %u, result %u)",
               unsigned(r.opcode), unsigned(r.result));
    natpmp_refused_ = true;
    if ((pcp_refused_ || !config_.pcp) && state_ == State::kProbing) {
      give_up(now, "the gateway refused the mapping");
    }
    return;
  }
  if (r.opcode == 0) {
    natpmp_external_ = r.external;
  } else {
    if (r.internal_port != config_.client.port() || r.lifetime_s == 0) return;
    natpmp_port_ = r.external_port;
    natpmp_lifetime_ = r.lifetime_s;
  }
  if (natpmp_external_.is_set() && natpmp_port_ != 0) {
    SocketAddress ext = natpmp_external_;
    ext.set_port(natpmp_port_);
    mapped(MappingProtocol::kNatPmp, ext, natpmp_lifetime_, now);
  }
}

void PortMapper::mapped(MappingProtocol p, const SocketAddress &external, uint32_t lifetime_s,
                        Timestamp now) {
  // The first protocol to answer keeps the mapping; a late answer of the other is ignored.
  if (mapping_.protocol != MappingProtocol::kNone && mapping_.protocol != p) return;
  const bool changed = mapping_.protocol != p || mapping_.external != external;
  mapping_.protocol = p;
  mapping_.external = external;
  mapping_.lifetime_s = lifetime_s;
  state_ = State::kMapped;
  out_.clear();
  renew_at_ = now + Timestamp(lifetime_s) * kS / 2;
  expires_ = now + Timestamp(lifetime_s) * kS;
  if (changed) {
    PortMapperEvent e;
    e.type = PortMapperEvent::Type::kMapped;
    e.mapping = mapping_;
    events_.push_back(e);
  }
}

void PortMapper::give_up(Timestamp, const char *why) {
  out_.clear();
  PortMapperEvent e;
  e.type = mapping_.protocol == MappingProtocol::kNone ? PortMapperEvent::Type::kFailed
                                                       : PortMapperEvent::Type::kLost;
  e.mapping = mapping_;
  e.why = why;
  events_.push_back(e);
  mapping_ = PortMapping();
  state_ = State::kIdle;
}

Timestamp PortMapper::next_deadline() const {
  switch (state_) {
    case State::kProbing:
      return std::min(next_send_, round_started_ + Timestamp(config_.give_up_ms) * kMs);
    case State::kRenewing: return std::min(next_send_, expires_);
    case State::kMapped: return renew_at_;
    default: return 0;
  }
}

void PortMapper::handle_timeout(Timestamp now) {
  switch (state_) {
    case State::kProbing:
      if (now >= round_started_ + Timestamp(config_.give_up_ms) * kMs) {
        give_up(now, "no port-mapping gateway answered");
      } else if (now >= next_send_) {
        send_round(now);
      }
      break;
    case State::kRenewing:
      if (now >= expires_) {
        give_up(now, "the gateway stopped renewing the mapping");
      } else if (now >= next_send_) {
        send_round(now);
      }
      break;
    case State::kMapped:
      if (now >= renew_at_) {
        state_ = State::kRenewing;
        round_started_ = next_send_ = now;
        backoff_ms_ = config_.first_retransmit_ms;
        send_round(now);
      }
      break;
    default:
      break;
  }
}

bool PortMapper::poll_event(PortMapperEvent *out) {
  if (events_.empty()) return false;
  *out = events_.front();
  events_.pop_front();
  return true;
}

void PortMapper::release(Timestamp) {
  out_.clear();
  if (mapping_.protocol == MappingProtocol::kPcp) {
    uint8_t req[kPcpMapRequestSize];
    pcp_map_request(config_.client, config_.client.port(), mapping_.external, 0,
                    config_.nonce, req);
    queue(req, sizeof req);
  } else if (mapping_.protocol == MappingProtocol::kNatPmp) {
    uint8_t m[kNatPmpMapRequestSize];
    natpmp_map_request(config_.client.port(), 0, 0, m);  // RFC 6886 3.4: delete
    queue(m, sizeof m);
  }
  mapping_ = PortMapping();
  state_ = out_.empty() ? State::kReleased : State::kReleasing;
}

}  // namespace parley::ice

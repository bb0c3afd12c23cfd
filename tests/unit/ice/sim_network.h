// A simulated network for the ice layer's sans-I/O machines: one client behind a modelled NAT,
// an RFC 5780 STUN server (parley's real Responder) on two IPs x two ports, a simulated
// clock and fixed one-way latency. Deterministic: no sockets, no sleeps.
#ifndef PARLEY_TESTS_ICE_SIM_NETWORK_H
#define PARLEY_TESTS_ICE_SIM_NETWORK_H

#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "base/address.h"
#include "base/clock.h"
#include "ice/machine.h"
#include "stun/responder.h"
#include "test_address.h"

namespace parley::testing {

inline SocketAddress sim_addr(const char *s) { return addr(s); }

struct NatModel {
  enum class Mapping { kNone, kEndpointIndependent, kAddressDependent, kAddressPortDependent };
  enum class Filtering { kOpen, kAddressDependent, kAddressPortDependent, kBlockAllUdp };
  Mapping mapping = Mapping::kEndpointIndependent;
  Filtering filtering = Filtering::kAddressPortDependent;
  bool preserve_port = true;
  bool hairpin = false;
};

class SimNetwork {
 public:
  SimNetwork(NatModel nat, SocketAddress client = sim_addr("10.0.0.2:5000"),
             SocketAddress wan = sim_addr("198.51.100.1:0"), bool server_rfc5780 = true)
      : nat_(nat), client_(client), wan_(wan), responder_(responder_config(server_rfc5780)) {}

  static stun::ResponderConfig server_config() {
    stun::ResponderConfig c;
    c.primary = sim_addr("203.0.113.10:3478");
    c.alternate = sim_addr("203.0.113.11:3479");
    return c;
  }
  static stun::ResponderConfig responder_config(bool rfc5780) {
    stun::ResponderConfig c = server_config();
    if (!rfc5780) c.alternate = SocketAddress();
    return c;
  }
  const SocketAddress &client() const { return client_; }
  // The client's address as the Internet sees it for the first destination.
  void add_dead(const SocketAddress &a) { dead_.insert(key(a)); }

  // Runs `m` until it is done or `limit` passes; returns the simulated time at the end.
  Timestamp run(ice::StunMachine &m, Timestamp start = 0,
                Timestamp limit = 30 * kNanosPerSecond) {
    Timestamp now = start;
    while (!m.done() && now - start < limit) {
      ice::Datagram d;
      while (m.poll_transmit(now, &d)) outbound(d, now);
      if (m.done()) break;
      Timestamp next = m.next_deadline();
      if (!inflight_.empty() && (next == 0 || inflight_.begin()->first < next)) {
        next = inflight_.begin()->first;
      }
      if (next == 0) break;  // nothing will ever happen again
      now = next > now ? next : now;
      while (!inflight_.empty() && inflight_.begin()->first <= now) {
        auto it = inflight_.begin();
        Packet p = it->second;
        inflight_.erase(it);
        m.handle_datagram(p.data.data(), p.data.size(), p.from, now);
      }
      if (m.next_deadline() != 0 && m.next_deadline() <= now) m.handle_timeout(now);
    }
    return now;
  }

  static constexpr Timestamp kLatency = 10 * kNanosPerMilli;
  uint64_t server_requests() const { return responder_.stats().requests; }

 private:
  struct Packet {
    std::vector<uint8_t> data;
    SocketAddress from;
  };
  using Key = std::tuple<int, std::vector<uint8_t>, uint16_t>;
  static Key key(const SocketAddress &a) {
    return {a.family(), std::vector<uint8_t>(a.ip_bytes(), a.ip_bytes() + a.ip_len()), a.port()};
  }

  // The public address the NAT uses for a packet from the client to `dst`.
  SocketAddress map(const SocketAddress &dst) {
    if (nat_.mapping == NatModel::Mapping::kNone) return client_;
    Key k;
    switch (nat_.mapping) {
      case NatModel::Mapping::kEndpointIndependent: k = Key{0, {}, 0}; break;
      case NatModel::Mapping::kAddressDependent: k = key(dst); std::get<2>(k) = 0; break;
      default: k = key(dst); break;
    }
    auto it = mappings_.find(k);
    if (it == mappings_.end()) {
      uint16_t port = nat_.preserve_port && mappings_.empty() ? client_.port() : next_port_++;
      SocketAddress pub = wan_;
      pub.set_port(port);
      it = mappings_.emplace(k, pub).first;
    }
    return it->second;
  }

  bool inbound_allowed(const SocketAddress &src, const SocketAddress &to_public) {
    if (nat_.filtering == NatModel::Filtering::kBlockAllUdp) return false;
    bool mapped = nat_.mapping == NatModel::Mapping::kNone;
    for (const auto &m : mappings_) mapped |= m.second == to_public;
    if (!mapped) return false;
    switch (nat_.filtering) {
      case NatModel::Filtering::kOpen: return true;
      case NatModel::Filtering::kAddressDependent: {
        for (const auto &s : sent_to_) {
          if (s.same_ip(src)) return true;
        }
        return false;
      }
      default:
        for (const auto &s : sent_to_) {
          if (s == src) return true;
        }
        return false;
    }
  }

  void outbound(const ice::Datagram &d, Timestamp now) {
    if (nat_.filtering == NatModel::Filtering::kBlockAllUdp) return;
    if (dead_.count(key(d.to))) return;
    const SocketAddress src = map(d.to);
    sent_to_.push_back(d.to);
    if (d.to.same_ip(wan_) || d.to == client_) {  // hairpin (or to ourselves when no NAT)
      if (nat_.mapping != NatModel::Mapping::kNone && !nat_.hairpin) return;
      if (d.to == client_ || inbound_allowed(src, d.to)) {
        deliver({std::vector<uint8_t>(d.data, d.data + d.len), src}, now + 2 * kLatency);
      }
      return;
    }
    const auto cfg = server_config();
    SocketAddress p_alt = cfg.primary, a_p = cfg.alternate;
    p_alt.set_port(cfg.alternate.port());
    a_p.set_port(cfg.primary.port());
    bool server = false;
    for (const auto &a : {cfg.primary, cfg.alternate, p_alt, a_p}) server |= a == d.to;
    if (!server) return;  // nobody there
    uint8_t out[stun::kMaxMessageLen];
    stun::Responder::Reply reply;
    if (!responder_.handle(d.data, d.len, src, d.to, out, sizeof out, &reply)) return;
    if (!inbound_allowed(reply.source, reply.to)) return;
    deliver({std::vector<uint8_t>(out, out + reply.len), reply.source}, now + 2 * kLatency);
  }

  void deliver(Packet p, Timestamp at) { inflight_.emplace(at, std::move(p)); }

  NatModel nat_;
  SocketAddress client_, wan_;
  stun::Responder responder_;
  std::map<Key, SocketAddress> mappings_;
  std::vector<SocketAddress> sent_to_;
  std::set<Key> dead_;
  std::multimap<Timestamp, Packet> inflight_;
  uint16_t next_port_ = 40001;
};

}  // namespace parley::testing

#endif

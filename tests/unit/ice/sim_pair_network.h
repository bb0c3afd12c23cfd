// A simulated Internet for two (or more) endpoints that talk to each other, for the ICE
// agent's tests: each endpoint has one UDP socket per family (its host addresses) and sits on
// the public Internet or behind a modelled NAT (sim_network.h's NatModel; several endpoints
// behind one NAT share a LAN), and a STUN server (parley's Responder) answers at kStunServer
// for gathering. Deterministic: a simulated clock, per-destination one-way latency, no
// sockets. The caller moves time: send() what endpoints transmit, pop() what arrives.
#ifndef PARLEY_TESTS_ICE_SIM_PAIR_NETWORK_H
#define PARLEY_TESTS_ICE_SIM_PAIR_NETWORK_H

#include <functional>
#include <map>
#include <vector>

#include "base/address.h"
#include "base/clock.h"
#include "sim_network.h"
#include "stun/responder.h"

namespace parley::testing {

class SimPairNetwork {
 public:
  struct Arrival {
    int endpoint;
    std::vector<uint8_t> data;
    SocketAddress from;
  };

  static SocketAddress stun_server() { return sim_addr("203.0.113.10:3478"); }
  static constexpr Timestamp kLatency = 10 * kNanosPerMilli;    // one way, Internet
  static constexpr Timestamp kLanLatency = 1 * kNanosPerMilli;  // one way, same LAN

  SimPairNetwork() : responder_(responder_config()) {}

  // A NAT with public IP `wan` (its port is ignored). Returns the NAT's id.
  int add_nat(NatModel model, const SocketAddress &wan) {
    nats_.push_back({model, wan, {}, 40001});
    return int(nats_.size()) - 1;
  }
  // An endpoint whose sockets have `hosts` (one address per family), behind NAT `nat` or on
  // the public Internet (-1); `udp_blocked`: its firewall drops all UDP. Returns its id.
  int add_endpoint(std::vector<SocketAddress> hosts, int nat = -1, bool udp_blocked = false) {
    endpoints_.push_back({std::move(hosts), nat, udp_blocked});
    return int(endpoints_.size()) - 1;
  }

  // One-way latency toward a destination (default: kLatency).
  void set_latency(std::function<Timestamp(const SocketAddress &to)> f) { latency_ = std::move(f); }
  // Consulted for every datagram an endpoint sends: true drops it (loss, a dead path).
  void set_drop(std::function<bool(int endpoint, const SocketAddress &to)> f) {
    drop_ = std::move(f);
  }

  // Endpoint `ep` sends `len` bytes to `to` at `now`, from its socket of that family.
  void send(int ep, const uint8_t *data, size_t len, const SocketAddress &to, Timestamp now) {
    if (drop_ && drop_(ep, to)) return;
    const Endpoint &s = endpoints_[size_t(ep)];
    const SocketAddress *host = host_of(s, to.family());
    if (host == nullptr || s.udp_blocked) return;
    std::vector<uint8_t> bytes(data, data + len);
    if (s.nat >= 0) {
      // On the same LAN, private addresses are reached directly.
      for (size_t e = 0; e < endpoints_.size(); ++e) {
        if (int(e) == ep || endpoints_[e].nat != s.nat) continue;
        if (has_host(endpoints_[e], to)) {
          arrive(int(e), std::move(bytes), *host, now + kLanLatency);
          return;
        }
      }
      Nat &n = nats_[size_t(s.nat)];
      if (n.model.filtering == NatModel::Filtering::kBlockAllUdp) return;
      const SocketAddress src = outbound(n, *host, to);
      route(src, to, std::move(bytes), now + latency(to), s.nat);
      return;
    }
    route(*host, to, std::move(bytes), now + latency(to), -1);
  }

  // Earliest pending arrival (0: none).
  Timestamp next_arrival() const { return inflight_.empty() ? 0 : inflight_.begin()->first; }
  // The next datagram that has arrived by `now`, in arrival order.
  bool pop(Timestamp now, Arrival *out) {
    if (inflight_.empty() || inflight_.begin()->first > now) return false;
    *out = std::move(inflight_.begin()->second);
    inflight_.erase(inflight_.begin());
    return true;
  }

 private:
  struct Mapping {
    SocketAddress internal, pub;
    SocketAddress first_dest;  // what created it (for address(-port)-dependent mapping)
    std::vector<SocketAddress> sent_to;
  };
  struct Nat {
    NatModel model;
    SocketAddress wan;
    std::vector<Mapping> mappings;
    uint16_t next_port;
  };
  struct Endpoint {
    std::vector<SocketAddress> hosts;
    int nat;
    bool udp_blocked;
  };

  static stun::ResponderConfig responder_config() {
    stun::ResponderConfig c;
    c.primary = stun_server();
    return c;
  }
  static const SocketAddress *host_of(const Endpoint &e, int family) {
    for (const auto &h : e.hosts) {
      if (h.family() == family) return &h;
    }
    return nullptr;
  }
  static bool has_host(const Endpoint &e, const SocketAddress &a) {
    for (const auto &h : e.hosts) {
      if (h == a) return true;
    }
    return false;
  }
  Timestamp latency(const SocketAddress &to) const { return latency_ ? latency_(to) : kLatency; }

  SocketAddress outbound(Nat &n, const SocketAddress &internal, const SocketAddress &to) {
    Mapping *m = nullptr;
    for (auto &x : n.mappings) {
      if (x.internal != internal) continue;
      bool same = true;
      switch (n.model.mapping) {
        case NatModel::Mapping::kAddressDependent: same = x.first_dest.same_ip(to); break;
        case NatModel::Mapping::kAddressPortDependent: same = x.first_dest == to; break;
        default: break;
      }
      if (same) {
        m = &x;
        break;
      }
    }
    if (m == nullptr) {
      uint16_t port = internal.port();
      bool used = false;
      for (const auto &x : n.mappings) used |= x.pub.port() == port;
      if (!n.model.preserve_port || used) port = n.next_port++;
      SocketAddress pub = n.wan;
      pub.set_port(port);
      n.mappings.push_back({internal, pub, to, {}});
      m = &n.mappings.back();
    }
    bool known = false;
    for (const auto &s : m->sent_to) known |= s == to;
    if (!known) m->sent_to.push_back(to);
    return m->pub;
  }

  // The internal address a datagram from `src` to NAT `n`'s public `to` reaches, if any.
  bool inbound(const Nat &n, const SocketAddress &src, const SocketAddress &to,
               SocketAddress *internal) const {
    for (const auto &m : n.mappings) {
      if (m.pub != to) continue;
      bool ok = false;
      switch (n.model.filtering) {
        case NatModel::Filtering::kOpen: ok = true; break;
        case NatModel::Filtering::kAddressDependent:
          for (const auto &s : m.sent_to) ok |= s.same_ip(src);
          break;
        case NatModel::Filtering::kAddressPortDependent:
          for (const auto &s : m.sent_to) ok |= s == src;
          break;
        case NatModel::Filtering::kBlockAllUdp: break;
      }
      if (ok) *internal = m.internal;
      return ok;
    }
    return false;
  }

  // A datagram on the public Internet from `src` to `to`; `from_nat`: the sender's NAT.
  void route(const SocketAddress &src, const SocketAddress &to, std::vector<uint8_t> bytes,
             Timestamp at, int from_nat) {
    if (to == stun_server()) {
      uint8_t out[stun::kMaxMessageLen];
      stun::Responder::Reply reply;
      if (!responder_.handle(bytes.data(), bytes.size(), src, to, out, sizeof out, &reply)) {
        return;
      }
      route(reply.source, reply.to, std::vector<uint8_t>(out, out + reply.len),
            at + latency(reply.to), -1);
      return;
    }
    for (size_t i = 0; i < nats_.size(); ++i) {
      if (!to.same_ip(nats_[i].wan)) continue;
      if (int(i) == from_nat && !nats_[i].model.hairpin) return;
      SocketAddress internal;
      if (!inbound(nats_[i], src, to, &internal)) return;
      for (size_t e = 0; e < endpoints_.size(); ++e) {
        if (endpoints_[e].nat == int(i) && has_host(endpoints_[e], internal)) {
          if (!endpoints_[e].udp_blocked) arrive(int(e), std::move(bytes), src, at);
          return;
        }
      }
      return;
    }
    for (size_t e = 0; e < endpoints_.size(); ++e) {
      if (endpoints_[e].nat < 0 && has_host(endpoints_[e], to)) {
        if (!endpoints_[e].udp_blocked) arrive(int(e), std::move(bytes), src, at);
        return;
      }
    }
    // Nobody there (a private address of another LAN, a dead host).
  }

  void arrive(int ep, std::vector<uint8_t> bytes, const SocketAddress &from, Timestamp at) {
    inflight_.emplace(at, Arrival{ep, std::move(bytes), from});
  }

  stun::Responder responder_;
  std::vector<Nat> nats_;
  std::vector<Endpoint> endpoints_;
  std::function<Timestamp(const SocketAddress &)> latency_;
  std::function<bool(int, const SocketAddress &)> drop_;
  std::multimap<Timestamp, Arrival> inflight_;  // equal times keep their send order
};

}  // namespace parley::testing

#endif

// Our addresses on the network: the candidates a call can offer (host addresses, the
// mappings the relay and the STUN servers saw, the gateway's port mapping, NAT64) and what a
// network change redoes. Apart from the calls because it is learned once per context, not per
// call, and keeps changing under calls already offered (what is found later is trickled).
#include "call/context.h"

#include <algorithm>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/resolver.h"
#include "call/context_internal.h"
#include "ice/driver.h"

namespace parley::call {

namespace {

// How long the relay's STUN answers about our mappings are waited for.
constexpr uint32_t kMappingProbeMs = 1000;
// A port mapping's candidate ranks between host (126) and server-reflexive (100) candidates.
constexpr uint32_t kPortMappingTypePreference = 110;

}  // namespace

void Context::release_port_mappings() {
  if (port_mapper_ && port_runner_) {
    port_mapper_->release(monotonic_now());
    port_runner_->kick();
  }
  if (upnp_) upnp_->abandon();
}

void Context::start_port_mapping() {
  const auto &pm = config_.direct.port_mapping;
  // What the last network's gateway gave is gone with it (it expires there by itself).
  release_port_mappings();
  port_runner_.reset();
  port_mapper_.reset();
  upnp_.reset();
  upnp_renew_.reset();
  port_mapping_ = ice::PortMapping();
  if (!pm.enabled || !config_.direct.enabled || !socket_->local_address().is_v4()) return;
  SocketAddress gateway, local;
  port_asked_at_ = monotonic_now();
  if (ice::default_gateway_v4(&gateway, &local) != kOk) {
    PARLEY_LOG(kLogInfo, "call", "port mapping: %s", last_error_message());
    return;
  }
  const uint16_t port = socket_->local_address().port();
  if (pm.pcp || pm.natpmp) {
    ice::PortMapperConfig mc;
    mc.gateway = gateway;
    mc.gateway.set_port(ice::kPortMappingServerPort);
    mc.client = local;
    mc.client.set_port(port);
    mc.lifetime_s = pm.lifetime_s;
    mc.pcp = pm.pcp;
    mc.natpmp = pm.natpmp;
    port_gateway_ = mc.gateway;
    port_mapper_ = std::make_unique<ice::PortMapper>(mc, monotonic_now());
    port_runner_ =
        std::make_unique<ice::MachineRunner>(loop_, socket_.get(), nullptr, *port_mapper_, nullptr);
    port_runner_->set_after_pump([this] {
      ice::PortMapperEvent e;
      while (port_mapper_ && port_mapper_->poll_event(&e)) {
        if (e.type == ice::PortMapperEvent::Type::kMapped) {
          on_port_mapping(e.mapping);
        } else {
          PARLEY_LOG(kLogInfo, "call", "port mapping (PCP/NAT-PMP): %s", e.why);
          if (port_mapping_.protocol == e.mapping.protocol) port_mapping_ = ice::PortMapping();
        }
      }
      trickle_candidates();
    });
    PARLEY_LOG(kLogDebug, "call", "port mapping: asking %s for UDP port %u",
               port_gateway_.to_string().c_str(), unsigned(port));
    port_runner_->start();
  }
  if (pm.upnp) {
    upnp_ = std::make_unique<ice::UpnpMapper>(loop_);
    map_upnp();
  }
}

void Context::map_upnp() {
  ice::UpnpConfig uc;
  uc.internal_port = socket_->local_address().port();
  uc.lifetime_s = config_.direct.port_mapping.lifetime_s;
  upnp_->map(uc, [this](int error, const ice::PortMapping &m) {
    if (error == kOk) {
      on_port_mapping(m);
      if (m.lifetime_s > 0) {
        // Renewed at half its lease, like the others.
        if (!upnp_renew_) upnp_renew_ = std::make_unique<Timer>(loop_);
        upnp_renew_->start(uint64_t(m.lifetime_s) * 500, 0, [this] { map_upnp(); });
      }
    }
    trickle_candidates();
  });
}

void Context::on_port_mapping(const ice::PortMapping &m) {
  // The first protocol to answer is the one offered; the others' mappings stay unused.
  if (port_mapping_.protocol != ice::MappingProtocol::kNone &&
      port_mapping_.protocol != m.protocol) {
    return;
  }
  PARLEY_LOG(kLogInfo, "call",
             "port mapping (%s): the gateway forwards %s to port %u for %u s "
             "(asked %llu ms ago)",
             ice::mapping_protocol_name(m.protocol), m.external.to_string().c_str(),
             unsigned(socket_->local_address().port()), unsigned(m.lifetime_s),
             (unsigned long long)((monotonic_now() - port_asked_at_) / kNanosPerMilli));
  port_mapping_ = m;
}

ice::PortMapping Context::port_mapping() {
  return read([&] { return port_mapping_; });
}

void Context::resolve_stun_servers() {
  stun_resolvers_.clear();
  stun_addresses_.clear();
  for (const auto &text : config_.direct.stun_servers) {
    std::string host;
    uint16_t port = 0;
    split_host_port(text, &host, &port);  // checked by create()
    auto r = std::make_unique<Resolver>(loop_);
    const int rc =
        r->resolve(host, port, [this, text](int error, const std::vector<SocketAddress> &found) {
          if (error != kOk) {
            PARLEY_LOG(kLogInfo, "call", "STUN server %s: %s", text.c_str(), last_error_message());
            return;
          }
          for (const auto &a : found) {
            const bool usable = a.is_v6() ? socket6_ || socket_->local_address().is_v6()
                                          : socket_->local_address().is_v4();
            if (usable) stun_addresses_.push_back(a);
          }
          // A name that answered after the registration's probe is probed on its own account.
          if (relay_->state() == RelayState::kRegistered && !change_pending_ &&
              (!probe_gatherer_ || probe_gatherer_->done())) {
            probe_mappings(false);
          }
        });
    if (rc == kOk) stun_resolvers_.push_back(std::move(r));
  }
}

bool Context::on_ipv6_only_network() const {
  const bool v6_socket = socket6_ || socket_->local_address().is_v6();
  if (!v6_socket || !config_.direct.nat64_discovery) return false;
  std::vector<SocketAddress> all;
  if (ice::host_interface_addresses(ice::InterfaceOptions{}, &all) != kOk) return false;
  return !all.empty() &&
         std::none_of(all.begin(), all.end(), [](const SocketAddress &a) { return a.is_v4(); });
}

void Context::discover_nat64(std::function<void()> then) {
  PARLEY_LOG(kLogInfo, "call", "IPv6-only network: looking for a NAT64 prefix (%s)",
             kNat64DiscoveryName);
  if (!nat64_resolver_) nat64_resolver_ = std::make_unique<Resolver>(loop_);
  const int r = nat64_resolver_->resolve(
      kNat64DiscoveryName, 0, [this, then](int error, const std::vector<SocketAddress> &answers) {
        Nat64Prefix found;
        if (error == kOk && nat64_prefix_from(answers, &found)) {
          SocketAddress zero, shown;
          SocketAddress::parse_ip("0.0.0.0", 0, &zero);
          nat64_synthesize(found, zero, &shown);
          PARLEY_LOG(kLogInfo, "call", "NAT64 prefix %s/%u", shown.ip_string().c_str(),
                     unsigned(found.length));
        } else {
          PARLEY_LOG(kLogInfo, "call", "no NAT64 prefix found: IPv6 only");
        }
        nat64_ = found;
        relay_->set_nat64(found);
        then();
      });
  if (r != kOk) then();
}

std::vector<ice::Candidate> Context::local_candidates() {
  std::vector<ice::Candidate> out;
  if (!config_.direct.enabled) return out;
  // Host candidates of each socket, the IPv6 one's first (RFC 8421: preferred where both
  // work); a socket on the wildcard address offers every interface address of its family.
  std::vector<SocketAddress> hosts, all;
  bool listed = false;
  for (UdpSocket *sock : {socket6_.get(), socket_.get()}) {
    if (!sock) continue;
    const SocketAddress local = sock->local_address();
    if (!local.is_unspecified_ip()) {
      hosts.push_back(local);
      continue;
    }
    if (!listed) {
      ice::InterfaceOptions io;
      io.include_loopback = config_.direct.include_loopback;
      if (ice::host_interface_addresses(io, &all) != kOk) all.clear();
      listed = true;
    }
    for (auto a : all) {
      if (a.family() != local.family()) continue;
      a.set_port(local.port());
      hosts.push_back(a);
    }
  }
  // RFC 8421 4: the families alternate in preference (IPv6 first), so the peer's checks of
  // a family that does not work never queue all ahead of the other's.
  std::vector<SocketAddress> v6, v4;
  for (const auto &h : hosts) (h.is_v6() ? v6 : v4).push_back(h);
  hosts.clear();
  for (size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
    if (i < v6.size()) hosts.push_back(v6[i]);
    if (i < v4.size()) hosts.push_back(v4[i]);
  }
  uint16_t pref = 65535;
  for (const auto &h : hosts) {
    ice::Candidate c;
    c.type = ice::CandidateType::kHost;
    c.address = h;
    c.priority = ice::candidate_priority(c.type, pref);
    c.foundation = ice::candidate_foundation(c.type, h, SocketAddress());
    out.push_back(c);
    if (pref > 0) --pref;
  }
  // The relay saw the relay socket's public mapping when we registered, and answered a STUN
  // request from the other family's socket (other_family_probe): server-reflexive candidates
  // of each family without a round trip at call time. A related address is a host of the
  // mapping's family.
  auto add_reflexive = [&](const SocketAddress &mapped, const SocketAddress &server,
                           uint16_t local_pref) {
    if (!mapped.is_set() || std::any_of(hosts.begin(), hosts.end(),
                                        [&](const SocketAddress &h) { return h == mapped; })) {
      return;
    }
    SocketAddress related;
    for (const auto &h : hosts) {
      if (h.family() == mapped.family()) {
        related = h;
        break;
      }
    }
    // Behind NAT64 an IPv6 socket is seen by an IPv4 relay at the gateway's IPv4 mapping:
    // peers with IPv4 can reach it there (their checks arrive from their own address
    // synthesized into the prefix, which is how we pair their IPv4 candidates). It has no
    // base of its family, so it goes without a related address.
    const bool nat64_mapping = mapped.is_v4() && server.is_v6();
    if (!related.is_set() && !nat64_mapping) return;
    ice::Candidate c;
    c.type = ice::CandidateType::kServerReflexive;
    c.address = mapped;
    c.related = related;
    c.priority = ice::candidate_priority(c.type, local_pref);
    c.foundation = ice::candidate_foundation(c.type, c.related, server);
    out.push_back(c);
  };
  add_reflexive(observed_now_.is_set() ? observed_now_ : relay_->observed_address(),
                relay_->relay_address(), 65535);
  if (observed_other_.is_set() && observed_other_ != relay_->observed_address() &&
      observed_other_ != observed_now_) {
    add_reflexive(observed_other_, other_server_, 65534);
  }
  // The STUN servers' answers: behind an address-dependent NAT each saw its own mapping.
  uint16_t stun_pref = 65533;
  for (const auto &m : stun_mappings_) {
    if (std::any_of(out.begin(), out.end(),
                    [&](const ice::Candidate &c) { return c.address == m.mapped; })) {
      continue;
    }
    add_reflexive(m.mapped, m.server, stun_pref--);
  }
  // The gateway's port mapping: reachable by anyone, whatever the NAT's filtering; between
  // host and srflx in preference (signaled as srflx: the grammar has no type of its own).
  const auto host4 =
      std::find_if(hosts.begin(), hosts.end(), [](const SocketAddress &h) { return h.is_v4(); });
  if (port_mapping_.external.is_v4() && host4 != hosts.end() &&
      std::none_of(out.begin(), out.end(),
                   [&](const ice::Candidate &c) { return c.address == port_mapping_.external; })) {
    ice::Candidate c;
    c.type = ice::CandidateType::kServerReflexive;
    c.address = port_mapping_.external;
    c.related = *host4;
    c.priority = (kPortMappingTypePreference << 24) | (uint32_t(65535) << 8) | 255;
    c.foundation = ice::candidate_foundation(
        c.type, *host4, port_gateway_.is_set() ? port_gateway_ : port_mapping_.external);
    out.push_back(c);
  }
  // Behind a sequential address-dependent NAT our mapping toward the peer is not one any
  // server saw, but one of the next few: offered as candidates, the peer's checks to them
  // meet the mapping our own check opens (ice/nat_behavior.h).
  if (host4 != hosts.end()) {
    for (auto &c : ice::predicted_candidates(
             nat_, *host4, ice::candidate_priority(ice::CandidateType::kServerReflexive, 32768))) {
      out.push_back(std::move(c));
    }
  }
  return out;
}

void Context::probe_mappings(bool after_change) {
  // The relay connection shows the relay one of our mappings; the socket of the other
  // family has its own (an IPv4 NAT's, when the connection went over IPv6), which IPv4-only
  // peers need to reach us directly. After a network change the connection's own mapping is
  // new too, and the register-ack's is stale: the relay answers STUN on every port it
  // listens on, so one Binding per family learns them.
  probe_runner_.reset();
  probe_gatherer_.reset();
  if (!after_change) {
    observed_now_ = SocketAddress();
    observed_other_ = SocketAddress();
  }
  other_server_ = SocketAddress();
  const SocketAddress via = relay_->relay_address();
  for (const auto &a : relay_->relay_addresses()) {
    const bool usable = a.is_v6() ? socket6_ || socket_->local_address().is_v6()
                                  : config_.relay.ipv4 && socket_->local_address().is_v4();
    if (a.family() != via.family() && usable) {
      other_server_ = a;
      break;
    }
  }
  if (!config_.direct.enabled) return;
  ice::GatherConfig gc;
  // Bound by the probe's deadline: a network still coming up (its link not yet running)
  // answers once it works, and the restart then offers what is true.
  if (after_change && via.is_set())
    gc.stun_servers.push_back({via, socket_for(via).local_address()});
  if (other_server_.is_set()) {
    gc.stun_servers.push_back({other_server_, socket_for(other_server_).local_address()});
  }
  for (const auto &a : stun_addresses_) {
    if (a != via && a != other_server_)
      gc.stun_servers.push_back({a, socket_for(a).local_address()});
  }
  if (gc.stun_servers.empty()) {
    trickle_candidates();  // of calls offered while a replaced probe ran
    if (after_change) restart_calls();
    return;
  }
  gc.deadline_ms = kMappingProbeMs;
  probe_gatherer_ = std::make_unique<ice::Gatherer>(std::move(gc), monotonic_now());
  UdpSocket *v4 = socket_->local_address().is_v4() ? socket_.get() : nullptr;
  UdpSocket *v6 = socket6_ ? socket6_.get() : v4 ? nullptr : socket_.get();
  probe_runner_ = std::make_unique<ice::MachineRunner>(
      loop_, v4, v6, *probe_gatherer_, [this, via, after_change] {
        stun_mappings_.clear();
        for (const auto &s : probe_gatherer_->servers()) {
          const bool relay = s.server == via || s.server == other_server_;
          PARLEY_LOG(kLogDebug, "call", "the %s at %s sees us at %s (%s)",
                     relay ? "relay" : "STUN server", s.server.to_string().c_str(),
                     s.mapped.to_string().c_str(), ice::server_status_name(s.status));
          if (!s.mapped.is_set()) continue;
          if (relay) {
            (s.server == via ? observed_now_ : observed_other_) = s.mapped;
          } else {
            stun_mappings_.push_back({s.server, s.mapped});
          }
        }
        classify_nat();
        trickle_candidates();
        if (after_change) restart_calls();
      });
  probe_runner_->start();
}

void Context::classify_nat() {
  // The IPv4 NAT (IPv6 has none to speak of), from its mappings in the order they were
  // made: the relay connection's (at registration, or the probe's after a change), then the
  // probe's answers in the order they were asked.
  std::vector<ice::MappingSample> samples;
  const SocketAddress relay_seen =
      observed_now_.is_set() ? observed_now_ : relay_->observed_address();
  if (relay_seen.is_v4()) samples.push_back({relay_->relay_address(), relay_seen});
  if (observed_other_.is_v4()) samples.push_back({other_server_, observed_other_});
  for (const auto &m : stun_mappings_) {
    if (m.mapped.is_v4()) samples.push_back(m);
  }
  const uint16_t port = socket_->local_address().is_v4() ? socket_->local_address().port() : 0;
  nat_ = ice::classify_nat(samples, port);
  PARLEY_LOG(kLogInfo, "call",
             "IPv4 NAT from %zu mapping(s): %s mapping, %s ports (step %d, "
             "newest %s)",
             samples.size(), ice::nat_mapping_name(nat_.mapping),
             ice::port_allocation_name(nat_.allocation), int(nat_.step),
             nat_.last.to_string().c_str());
}

int Context::network_changed() {
  return run([&] {
    on_network_change("the host says so");
    return kOk;
  });
}

void Context::on_network_change(const char *source) {
  PARLEY_LOG(kLogInfo, "call",
             "the network changed (%s): the relay connection is checked, "
             "every call restarts ICE",
             source);
  ++stats_.network_changes;
  // The new network may be IPv6-only (behind NAT64) or the first with IPv4 again.
  const bool ipv6_only = on_ipv6_only_network();
  config_.relay.ipv4 = socket_->local_address().is_v4() && !ipv6_only;
  relay_->set_families(config_.relay.ipv4, config_.relay.ipv6);
  // A relay connection over IPv4 cannot survive a move to an IPv6-only network: it starts
  // over at once, through NAT64 when the prefix is known.
  const bool relay_gone = ipv6_only && relay_->relay_address().is_v4();
  if (ipv6_only) {
    discover_nat64([this, relay_gone] { relay_->network_changed(relay_gone); });
  } else {
    nat64_ = Nat64Prefix();
    relay_->set_nat64(nat64_);
  }
  if (!relay_gone) relay_->network_changed();
  // The calls restart ICE once the mappings are known again (probe_mappings' answer or
  // deadline): a restart offering the old public address would be wasted.
  change_pending_ = true;
  resolve_stun_servers();
  start_port_mapping();
  probe_mappings(true);
}

void Context::restart_calls() {
  change_pending_ = false;
  for (auto &kv : calls_) {
    if (kv.second.session) kv.second.session->network_changed();
  }
}

void Context::trickle_candidates() {
  const bool final = !probing();
  std::vector<ice::Candidate> now;
  bool listed = false;
  for (auto &kv : calls_) {
    Call &c = kv.second;
    if (!c.candidates_open) continue;
    if (c.state == CallState::kEnded) {
      c.candidates_open = false;
      continue;
    }
    if (!listed) {
      now = local_candidates();
      listed = true;
    }
    // What was found since the offer goes out at once (a port mapping answers long before
    // UPnP's discovery ends); end-of-candidates when nothing is being learned any more.
    signal::Message m;
    m.type = signal::Type::kCandidate;
    m.call_id = c.id;
    m.nat = signal::nat_info(nat_);
    for (const auto &cand : now) {
      if (c.offered.size() >= signal::kMaxCandidates) break;
      if (std::find(c.offered.begin(), c.offered.end(), cand.address) == c.offered.end()) {
        m.candidates.push_back(cand);
        c.offered.push_back(cand.address);
      }
    }
    if (!m.candidates.empty()) {
      PARLEY_LOG(kLogInfo, "call", "%zu more candidates after the offer (call to or from %s)",
                 m.candidates.size(), c.peer.display().c_str());
      relay_->send(m);
    }
    if (!final) continue;
    c.candidates_open = false;
    send_end_of_candidates(c);
  }
}

}  // namespace parley::call

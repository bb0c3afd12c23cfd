#include "call/context.h"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>

#include "base/clock.h"
#include "base/demux.h"
#include "base/resolver.h"
#include "base/error.h"
#include "base/log.h"
#include "ice/driver.h"
#include "media/frame_header.h"

namespace parley::call {

namespace {

constexpr uint16_t kCodecOpus = 1;
// The encoder tick: a frame pushed by the host waits at most this long for its encode.
constexpr uint64_t kAudioTickMs = 2;
// How long the relay's STUN answers about our mappings are waited for.
constexpr uint32_t kMappingProbeMs = 1000;
// How long a closing context waits for the relay to acknowledge its last messages (hangups):
// several retransmissions at any RTT a relay can serve, yet a bounded wait for the host.
constexpr uint32_t kCloseLingerMs = 1000;
// A port mapping's candidate ranks between host (126) and server-reflexive (100) candidates.
constexpr uint32_t kPortMappingTypePreference = 110;
constexpr int64_t kRelaySilentMs = 2000;

// ICE credentials: ufrag 8 and password 24 ice-chars (RFC 8445 minimums are 4 and 22).
// Text that came over the network, for a host that may print it: C0 controls and DEL (a
// terminal's escape sequences) become '?'. The codec already guarantees well-formed UTF-8.
std::string printable(const std::string &text) {
  std::string out = text;
  for (auto &ch : out) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f) ch = '?';
  }
  return out;
}

}  // namespace

const char *call_state_name(CallState s) {
  switch (s) {
    case CallState::kInviting: return "inviting";
    case CallState::kRinging: return "ringing";
    case CallState::kIncoming: return "incoming";
    case CallState::kActive: return "active";
    case CallState::kEnded: return "ended";
  }
  return "?";
}

Context::Context(const identity::Identity &id, ContextConfig config, EventHandler handler)
    : id_(id), fp_(id.fingerprint()), config_(std::move(config)), handler_(std::move(handler)) {}

int Context::create(const identity::Identity &id, ContextConfig config, EventHandler handler,
                    std::unique_ptr<Context> *out) {
  // A pinned bind address of one family cannot reach a relay literal of the other, unless
  // bind6 adds the IPv6 socket.
  if (config.relay.relay.is_set() && config.bind.is_set() &&
      config.relay.relay.family() != config.bind.family() &&
      !(config.relay.relay.is_v6() && config.bind6.is_set())) {
    return fail(kErrAddressFamily, "bind address %s cannot reach the relay at %s (another family)",
                config.bind.to_string().c_str(), config.relay.relay.to_string().c_str());
  }
  if (!config.relay.relay.is_set()) {
    if (config.relay.relay_name.empty()) return fail(kErrInvalidArgument, "no relay address");
    std::string host;
    uint16_t port;
    if (split_host_port(config.relay.relay_name, &host, &port) != kOk) {
      const std::string why = last_error_message();  // fail() rewrites that buffer
      return fail(kErrInvalidArgument, "relay: %s", why.c_str());
    }
  }
  if (config.direct.stun_servers.size() > kMaxStunServers) {
    return fail(kErrInvalidArgument, "%zu STUN servers, at most %zu",
                config.direct.stun_servers.size(), kMaxStunServers);
  }
  for (const auto &text : config.direct.stun_servers) {
    std::string host;
    uint16_t port;
    if (split_host_port(text, &host, &port) != kOk) {
      const std::string why = last_error_message();
      return fail(kErrInvalidArgument, "STUN server: %s", why.c_str());
    }
  }
  {
    // The audio settings are checked once here, so a call never fails for them later.
    std::shared_ptr<VoiceChannel> probe;
    const int r = VoiceChannel::create(config.audio, &probe);
    if (r != kOk) return r;
  }
  if (identity::sodium_ready() != kOk) return kErrCrypto;
  std::unique_ptr<Context> c(new Context(id, std::move(config), std::move(handler)));
  if (c->loop_.start() != kOk) return fail(kErrInternal, "cannot start the context's loop");
  const int r = c->run([&] { return c->init(); });
  if (r != kOk) return r;  // the destructor tears down whatever init built
  *out = std::move(c);
  return kOk;
}

template <typename F>
int Context::run(F &&f) {
  if (loop_.on_loop_thread()) return f();
  std::promise<int> p;
  std::string message;
  if (loop_.post([&] {
        const int r = f();
        if (r != kOk) message = last_error_message();
        p.set_value(r);
      }) != kOk) {
    return fail(kErrClosed, "the context is shutting down");
  }
  const int r = p.get_future().get();
  if (r != kOk) restore_last_error_message(message);  // the detail belongs to this thread
  return r;
}

template <typename F>
auto Context::read(F &&f) -> decltype(f()) {
  decltype(f()) value{};
  run([&] {
    value = f();
    return kOk;
  });
  return value;
}

void Context::on_socket_datagram(const uint8_t *d, size_t n, const SocketAddress &from) {
  // RFC 7983: STUN belongs to the calls' ICE agents, QUIC to the endpoint (relay + direct).
  switch (classify_datagram(d, n)) {
    case DatagramKind::kQuic:
      driver_->on_datagram(d, n, from);
      break;
    case DatagramKind::kStun:
      on_stun(d, n, from);
      break;
    default:
      break;
  }
}

void Context::set_route(const SocketAddress &to, UdpSocket *via) {
  routes_.erase(std::remove_if(routes_.begin(), routes_.end(),
                               [&](const auto &r) { return r.first == to; }),
                routes_.end());
  if (via) routes_.emplace_back(to, via);
}

int Context::init() {
  audio_timer_ = std::make_unique<Timer>(loop_);
  quality_timer_ = std::make_unique<Timer>(loop_);
  quality_timer_->start(kQualityTickMs, kQualityTickMs, [this] { on_quality_tick(); });
  SocketAddress bind = config_.bind;
  if (!bind.is_set()) SocketAddress::parse("0.0.0.0:0", &bind);
  auto on_socket_datagram = [this](const uint8_t *d, size_t n, const SocketAddress &from) {
    this->on_socket_datagram(d, n, from);
  };
  // A port range (firewalls that open only some ports): the first free port in it.
  const uint16_t first = config_.port_min ? config_.port_min : bind.port();
  const uint16_t last = config_.port_min ? config_.port_max : bind.port();
  int r = kErrSocket;
  for (uint32_t port = first; port <= last; ++port) {
    bind.set_port(uint16_t(port));
    socket_ = std::make_unique<UdpSocket>(loop_);
    r = socket_->bind(bind, on_socket_datagram);
    if (r == kOk) break;
  }
  if (r != kOk) {
    if (first != last) {
      return fail(kErrSocket, "no free UDP port in %u..%u on %s", unsigned(first),
                  unsigned(last), bind.to_string().c_str());
    }
    return r;
  }
  socket_->set_buffer_sizes(1 << 20, 1 << 20);
  if (config_.bind6.is_set()) {
    if (!config_.bind6.is_v6() || !socket_->local_address().is_v4()) {
      return fail(kErrAddressFamily, "bind6 %s needs an IPv6 address next to an IPv4 bind",
                  config_.bind6.to_string().c_str());
    }
    socket6_ = std::make_unique<UdpSocket>(loop_);
    r = socket6_->bind(config_.bind6, on_socket_datagram);
    if (r != kOk) return r;
    socket6_->set_buffer_sizes(1 << 20, 1 << 20);
  } else if (!config_.bind.is_set()) {
    // Dual-stack unless the host pinned an address. The IPv6 socket takes the IPv4 one's
    // port where it can (one port to open in a firewall); a host without IPv6 keeps IPv4.
    SocketAddress any6;
    SocketAddress::parse("[::]:0", &any6);
    any6.set_port(socket_->local_address().port());
    socket6_ = std::make_unique<UdpSocket>(loop_);
    r = socket6_->bind(any6, on_socket_datagram);
    for (uint32_t port = first; r != kOk && config_.port_min && port <= last; ++port) {
      any6.set_port(uint16_t(port));
      socket6_ = std::make_unique<UdpSocket>(loop_);
      r = socket6_->bind(any6, on_socket_datagram);
    }
    if (r != kOk && !config_.port_min) {
      any6.set_port(0);
      socket6_ = std::make_unique<UdpSocket>(loop_);
      r = socket6_->bind(any6, on_socket_datagram);
    }
    if (r == kOk) {
      socket6_->set_buffer_sizes(1 << 20, 1 << 20);
    } else {
      PARLEY_LOG(kLogInfo, "call", "no IPv6 socket (%s): IPv4 only", last_error_message());
      socket6_.reset();
    }
  }
  quic::EndpointConfig ec;
  // Incoming connections are direct paths of calls; set_accept below lets in only the one a
  // call's ICE agent validated, and only with the peer's certificate.
  ec.accept_incoming = config_.direct.enabled;
  ec.connection.keepalive_ms = config_.relay.keepalive_ms;
  ec.connection.idle_timeout_ms = config_.relay.idle_timeout_ms;
  ec.connection.datagram_queue = 64;
  r = quic::Endpoint::create(
      id_, ec,
      [this](const SocketAddress &to, const uint8_t *d, size_t n) {
        socket_for(to).send(to, d, n);
      },
      &endpoint_);
  if (r != kOk) return r;
  endpoint_->set_batch_sender([this](const quic::TxPacket *p, size_t n) {
    if (!routes_.empty()) {  // a birthday socket carries a direct path: rare, and per packet
      for (size_t i = 0; i < n; ++i) socket_for(p[i].to).send(p[i].to, p[i].data, p[i].len);
      return;
    }
    // One system call per family present in the batch (almost always just one).
    OutDatagram batch[quic::kTxBatch];
    for (UdpSocket *sock : {socket_.get(), socket6_.get()}) {
      if (!sock) continue;
      size_t k = 0;
      for (size_t i = 0; i < n; ++i) {
        if (&socket_for(p[i].to) == sock) batch[k++] = {p[i].data, p[i].len, &p[i].to};
      }
      if (k) sock->send_batch(batch, k);
    }
  });
  endpoint_->set_local_address(socket_->local_address());
  if (socket6_) endpoint_->set_local_address(socket6_->local_address());
  endpoint_->set_accept([this](const SocketAddress &remote) {
    for (auto &kv : calls_) {
      Session *s = kv.second.session.get();
      if (s && s->wants_connection(remote)) return s->accept_direct(remote);
    }
    PARLEY_LOG(kLogDebug, "call", "refusing a QUIC connection from %s: no call expects it",
               remote.to_string().c_str());
    return quic::Endpoint::Incoming{};
  });
  driver_ = std::make_unique<quic::EndpointDriver>(loop_, *endpoint_);
  RelayClient::Listener l;
  l.on_state = [this](RelayState s, int error) {
    Event e(EventType::kRelayState);
    e.relay_state = s;
    e.error = error;
    if (s == RelayState::kUntrusted) e.peer = *relay_->presented_fingerprint();
    emit(e);
    // The relay forgets a client's rooms with its connection: join them again, and the
    // relay's updates bring the memberships (and stream ids) back.
    if (s == RelayState::kRegistered) {
      // A registration in the middle of a network change (the relay connection started over)
      // probes again with what is now true; the calls' restart still waits for it.
      probe_mappings(change_pending_);
      for (auto &kv : rooms_) {
        drop_room_routes(kv.first, kv.second);
        kv.second.members.clear();
        kv.second.streams.clear();
        kv.second.stream = 0;
        signal::Message m;
        m.type = signal::Type::kRoomJoin;
        m.room_id = kv.first;
        relay_->send(m);
      }
      // A relay that restarted (or timed our connection out) may have lost our calls: each
      // active one is re-announced with its proof, and what ended meanwhile is told now.
      for (auto &kv : calls_) {
        if (kv.second.state == CallState::kActive) send_resume(kv.second);
      }
      for (auto &kv : calls_) {
        if (kv.second.session) kv.second.session->relay_registered();
      }
      std::vector<signal::Message> hangups = std::move(pending_hangups_);
      pending_hangups_.clear();
      for (const auto &h : hangups) {
        if (relay_->send(h) == kOk) ++stats_.hangups_delivered_late;
      }
    }
  };
  l.on_message = [this](const signal::Message &m) { on_relay_message(m); };
  l.on_datagram = [this](const uint8_t *d, size_t n) { on_datagram(d, n); };
  config_.relay.ipv4 = socket_->local_address().is_v4();
  config_.relay.ipv6 = socket_->local_address().is_v6() || socket6_ != nullptr;
  // An IPv6-only network (IPv6 sockets, no IPv4 address but loopback) may reach IPv4 only
  // through NAT64: its prefix is learned first, so the relay given as an IPv4 literal and the
  // peers' IPv4 candidates can be reached through it (RFC 7050, RFC 8305 7).
  const bool ipv6_only = on_ipv6_only_network();
  if (ipv6_only) config_.relay.ipv4 = false;
  relay_ = std::make_unique<RelayClient>(loop_, *endpoint_, *driver_, fp_, config_.relay, l);
  if (config_.watch_network) {
    network_watch_ = std::make_unique<NetworkWatch>(loop_, config_.network_debounce_ms, [this] {
      on_network_change("an interface, address or default route changed");
    });
    if (network_watch_->start() != kOk) {
      PARLEY_LOG(kLogInfo, "call", "not watching the network (%s): the host must call "
                 "network_changed", last_error_message());
      network_watch_.reset();
    }
  }
  resolve_stun_servers();
  start_port_mapping();
  if (!ipv6_only) {
    relay_->start();
    return kOk;
  }
  discover_nat64([this] { relay_->start(); });
  return kOk;
}

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
    port_runner_ = std::make_unique<ice::MachineRunner>(loop_, socket_.get(), nullptr,
                                                        *port_mapper_, nullptr);
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
  PARLEY_LOG(kLogInfo, "call", "port mapping (%s): the gateway forwards %s to port %u for %u s "
             "(asked %llu ms ago)", ice::mapping_protocol_name(m.protocol),
             m.external.to_string().c_str(), unsigned(socket_->local_address().port()),
             unsigned(m.lifetime_s),
             (unsigned long long)((monotonic_now() - port_asked_at_) / kNanosPerMilli));
  port_mapping_ = m;
}

ice::PortMapping Context::port_mapping() { return read([&] { return port_mapping_; }); }

void Context::resolve_stun_servers() {
  stun_resolvers_.clear();
  stun_addresses_.clear();
  for (const auto &text : config_.direct.stun_servers) {
    std::string host;
    uint16_t port = 0;
    split_host_port(text, &host, &port);  // checked by create()
    auto r = std::make_unique<Resolver>(loop_);
    const int rc = r->resolve(host, port, [this, text](int error,
                                                     const std::vector<SocketAddress> &found) {
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
      kNat64DiscoveryName, 0,
      [this, then](int error, const std::vector<SocketAddress> &answers) {
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

Context::~Context() {
  // The hangups go out and the relay acknowledges them (bounded) before the connection
  // closes; a handler's call in between finds the context closing.
  std::promise<void> flushed;
  run([this, &flushed] {
    closing_ = true;
    // Lookups still running answer nobody: their callbacks would touch what is torn down.
    stun_resolvers_.clear();
    nat64_resolver_.reset();
    if (!relay_) {
      flushed.set_value();
      return kOk;
    }
    for (auto &kv : calls_) {
      if (kv.second.state != CallState::kEnded) {
        relay_->send(call_message(signal::Type::kCallHangup, kv.second));
      }
    }
    relay_->stop_after_flush(kCloseLingerMs, [&flushed] { flushed.set_value(); });
    // The gateway forwards nothing to us once we are gone.
    release_port_mappings();
    upnp_renew_.reset();  // no renewal may start while the delete below runs
    return kOk;
  });
  flushed.get_future().wait();
  if (upnp_) upnp_->release_blocking();  // HTTP to the router: not on the loop
  run([this] {
    port_runner_.reset();
    port_mapper_.reset();
    upnp_.reset();
    media_routes_.clear();
    for (auto &kv : calls_) {
      if (kv.second.voice) kv.second.voice->end();
    }
    calls_.clear();
    audio_timer_.reset();
    quality_timer_.reset();
    retired_.clear();
    probe_runner_.reset();
    probe_gatherer_.reset();
    network_watch_.reset();
    relay_.reset();
    if (endpoint_) endpoint_->close_all(0, "context closed", monotonic_now());
    if (driver_) driver_->kick();
    driver_.reset();
    endpoint_.reset();
    socket6_.reset();
    socket_.reset();
    return kOk;
  });
  loop_.stop();
}

void Context::emit(const Event &e) {
  if (!closing_ && handler_) handler_(e);
}

RelayState Context::relay_state() { return read([&] { return relay_->state(); }); }
int Context::trust_relay(const identity::Fingerprint &fp) {
  return run([&] {
    PARLEY_LOG(kLogInfo, "call", "the host trusts relay identity %s", fp.hex().c_str());
    relay_->trust(fp);
    return kOk;
  });
}
void Context::sync() { run([] { return kOk; }); }
SocketAddress Context::local_address() { return read([&] { return socket_->local_address(); }); }
SocketAddress Context::observed_address() {
  return read([&] { return relay_->observed_address(); });
}
SocketAddress Context::relay_address() {
  return read([&] { return relay_->relay_address(); });
}
std::optional<identity::Fingerprint> Context::relay_fingerprint() {
  return read([&] { return relay_->relay_fingerprint(); });
}
ContextStats Context::stats() { return read([&] { return stats_; }); }

signal::Message Context::call_message(signal::Type t, const Call &c) const {
  signal::Message m;
  m.type = t;
  m.call_id = c.id;
  m.from = fp_;
  m.to = c.peer;
  return m;
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
  const auto host4 = std::find_if(hosts.begin(), hosts.end(),
                                  [](const SocketAddress &h) { return h.is_v4(); });
  if (port_mapping_.external.is_v4() && host4 != hosts.end() &&
      std::none_of(out.begin(), out.end(), [&](const ice::Candidate &c) {
        return c.address == port_mapping_.external;
      })) {
    ice::Candidate c;
    c.type = ice::CandidateType::kServerReflexive;
    c.address = port_mapping_.external;
    c.related = *host4;
    c.priority = (kPortMappingTypePreference << 24) | (uint32_t(65535) << 8) | 255;
    c.foundation = ice::candidate_foundation(c.type, *host4, port_gateway_.is_set()
                                                                   ? port_gateway_
                                                                   : port_mapping_.external);
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
  if (after_change && via.is_set()) gc.stun_servers.push_back({via, socket_for(via).local_address()});
  if (other_server_.is_set()) {
    gc.stun_servers.push_back({other_server_, socket_for(other_server_).local_address()});
  }
  for (const auto &a : stun_addresses_) {
    if (a != via && a != other_server_) gc.stun_servers.push_back({a, socket_for(a).local_address()});
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
  PARLEY_LOG(kLogInfo, "call", "IPv4 NAT from %zu mapping(s): %s mapping, %s ports (step %d, "
             "newest %s)", samples.size(), ice::nat_mapping_name(nat_.mapping),
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
  PARLEY_LOG(kLogInfo, "call", "the network changed (%s): the relay connection is checked, "
             "every call restarts ICE", source);
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

int Context::send_offer(signal::Type type, Call &c) {
  // The ephemeral X25519 key whose signed public half lets the peer derive the call's media
  // keys; the relay carries it but cannot substitute its own (it cannot sign as us).
  const media::KeyRole role =
      type == signal::Type::kCallInvite ? media::KeyRole::kCaller : media::KeyRole::kCallee;
  int r = media::make_local_media_key(id_, c.id, c.peer, role, wall_clock_ms(), &c.media_key);
  if (r != kOk) return r;
  c.ufrag = ice::random_ice_chars(8);
  std::string pwd = ice::random_ice_chars(24);
  r = c.pwd.assign(pwd.data(), pwd.size());
  if (r != kOk) return r;
  signal::Message m = call_message(type, c);
  m.ice_ufrag = c.ufrag;
  m.ice_pwd = std::move(pwd);
  m.media_key = c.media_key.signed_key;
  // Every candidate is known at once (host addresses, and the mapping the relay observed),
  // so they ride in the offer; later ones would be trickled as Candidate messages.
  m.candidates = local_candidates();
  if (m.candidates.size() > signal::kMaxCandidates) m.candidates.resize(signal::kMaxCandidates);
  m.nat = signal::nat_info(nat_);
  c.offered.clear();
  for (const auto &cand : m.candidates) c.offered.push_back(cand.address);
  m.identity_key.emplace();
  std::memcpy(m.identity_key->data(), id_.public_key(), identity::kPublicKeyLen);
  m.codecs = {kCodecOpus};
  r = relay_->send(m);
  identity::wipe(&m.ice_pwd);
  if (r != kOk) return r;
  // A probe of our mappings under way (the relay just registered, or the network changed)
  // may find more (STUN servers' mappings, a sequential NAT's predicted ports): they follow
  // when it ends, at most its deadline later. Checks need no end-of-candidates; only a
  // failure waits for it.
  c.candidates_open = probing();
  return c.candidates_open ? kOk : send_end_of_candidates(c);
}

int Context::send_end_of_candidates(const Call &c) {
  signal::Message eoc;
  eoc.type = signal::Type::kEndOfCandidates;
  eoc.call_id = c.id;
  return relay_->send(eoc);
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

int Context::take_peer_offer(Call &c, const signal::Message &m) {
  const bool invite = m.type == signal::Type::kCallInvite;
  const uint64_t now_ms = wall_clock_ms();
  int r = media::verify_peer_media_key(
      m.identity_key->data(), c.peer, fp_, c.id,
      invite ? media::KeyRole::kCaller : media::KeyRole::kCallee, now_ms, *m.media_key);
  if (r != kOk) return r;
  if (invite) {
    r = recent_invites_.admit(c.id, m.media_key->issued_at_ms, now_ms);
    if (r != kOk) return r;
  }
  c.peer_key = *m.media_key;
  c.peer_identity_key = *m.identity_key;
  c.peer_ufrag = m.ice_ufrag;
  r = c.peer_pwd.assign(m.ice_pwd.data(), m.ice_pwd.size());
  if (r != kOk) return r;
  for (const auto &cand : m.candidates) c.peer_candidates.push_back(cand);
  if (m.nat) c.peer_nat = *m.nat;
  return kOk;
}

int Context::start_session(Call &c) {
  Session::Env env;
  env.loop = &loop_;
  env.send = [this](const SocketAddress &to, const uint8_t *d, size_t n) {
    socket_for(to).send(to, d, n);
  };
  env.route = [this](const SocketAddress &to, UdpSocket *via) { set_route(to, via); };
  env.deliver = [this](const uint8_t *d, size_t n, const SocketAddress &from) {
    on_socket_datagram(d, n, from);
  };
  env.nat = &nat_;
  if (socket_->local_address().is_v4()) {
    env.bind4 = socket_->local_address();
    env.bind4.set_port(0);
  }
  env.endpoint = endpoint_.get();
  env.driver = driver_.get();
  env.relay = relay_.get();
  env.id = &id_;
  env.direct = config_.direct;
  env.gather = [this](Nat64Prefix *nat64) {
    std::vector<ice::Candidate> local = local_candidates();
    const bool ipv4_host = std::any_of(local.begin(), local.end(), [](const ice::Candidate &lc) {
      return lc.type == ice::CandidateType::kHost && lc.address.is_v4();
    });
    *nat64 = ipv4_host ? Nat64Prefix() : nat64_;
    return local;
  };
  const signal::CallId id = c.id;
  const identity::Fingerprint peer = c.peer;
  const uint32_t stream = c.stream;
  const uint64_t serial = c.serial;
  // The session outlives its call by up to a loop turn (it is retired, not destroyed, when
  // the call ends) and its direct connection keeps delivering meanwhile: every frame finds
  // the call again by id, and frames for a call that is over are dropped.
  env.on_media = [this, id, peer, stream, serial](const media::FrameHeader &h, uint64_t index,
                                                  const uint8_t *payload, size_t len,
                                                  PathKind via) {
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second.serial != serial ||
        it->second.state != CallState::kActive) {
      ++stats_.media_after_end;
      return;
    }
    Call &call = it->second;
    VoiceChannel *voice = call.voice.get();
    ++stats_.media_received;
    if (via == PathKind::kRelay) call.peer_left_relay = false;  // it is back there
    const int64_t now = int64_t(monotonic_now() / 1000);
    voice->on_frame_index(index, now);
    if (call.quality) call.quality->on_frame(index, now / 1000);
    if (h.flags & media::kFrameFlagVoice) {
      voice->on_peer_profile(h.profile, h.timestamp);
      voice->on_voice_frame(h.timestamp, payload, len, now);
      return;
    }
    Event e(EventType::kMedia);
    e.call = id;
    e.peer = peer;
    e.stream_id = stream;
    e.sequence = h.sequence;
    e.timestamp = h.timestamp;
    e.profile = h.profile;
    e.payload = payload;
    e.len = len;
    e.path = via;
    emit(e);
  };
  env.on_path = [this, id, peer, serial](PathKind from, PathKind to, const char *reason) {
    // A session torn down after the call ended may still report its paths closing: the
    // host was already told the call is over.
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second.serial != serial ||
        it->second.state == CallState::kEnded) {
      return;
    }
    Event e(EventType::kPathChanged);
    e.call = id;
    e.peer = peer;
    e.path_from = from;
    e.path = to;
    e.text = reason;
    emit(e);
  };
  Session::Params p;
  p.id = c.id;
  p.peer = c.peer;
  p.caller = c.outgoing;
  p.stream = c.stream;
  p.local_ufrag = c.ufrag;
  p.local_pwd.assign(c.pwd.data(), c.pwd.size());
  p.remote_ufrag = c.peer_ufrag;
  p.remote_pwd.assign(c.peer_pwd.data(), c.peer_pwd.size());
  p.local_candidates = env.gather(&p.nat64);
  p.remote_candidates = std::move(c.peer_candidates);
  p.remote_candidates_done = c.peer_candidates_done;
  p.remote_nat = c.peer_nat;
  c.peer_candidates.clear();
  const int r = Session::create(std::move(env), std::move(p), c.media_key, c.peer_key,
                                &c.session);
  if (r == kOk) replay_early_stun(*c.session);
  return r;
}

void Context::on_stun(const uint8_t *data, size_t len, const SocketAddress &from) {
  // PCP and NAT-PMP answers start with a version byte of 2 or 0: the demultiplexer's STUN
  // range (RFC 7983), and only the gateway's port-mapping port sends them.
  if (port_runner_ && from == port_gateway_) {
    port_runner_->on_datagram(data, len, from);
    return;
  }
  if (probe_runner_ && (from == other_server_ || from == relay_->relay_address() ||
                        std::find(stun_addresses_.begin(), stun_addresses_.end(), from) !=
                            stun_addresses_.end())) {
    probe_runner_->on_datagram(data, len, from);
    return;
  }
  bool waiting = false;  // a call whose session (and ICE agent) has not started yet
  for (auto &kv : calls_) {
    Session *s = kv.second.session.get();
    if (s && s->on_stun(data, len, from)) return;
    waiting |= !s && kv.second.state != CallState::kEnded;
  }
  // The callee starts checking as it accepts, so its first check can reach the caller before
  // the accept that starts the caller's agent: kept a moment for it (a Binding request,
  // RFC 5389 type 0x0001), or the pair waits for the check's retransmission.
  if (!waiting || len < 2 || data[0] != 0x00 || data[1] != 0x01 || len > kMaxEarlyStunLen) {
    return;
  }
  if (early_stun_.size() == kMaxEarlyStun) early_stun_.pop_front();
  early_stun_.push_back({monotonic_now(), from, std::vector<uint8_t>(data, data + len)});
}

void Context::replay_early_stun(Session &s) {
  const Timestamp now = monotonic_now();
  while (!early_stun_.empty()) {
    EarlyStun e = std::move(early_stun_.front());
    early_stun_.pop_front();
    if (now - e.at <= Timestamp(kEarlyStunMs) * kNanosPerMilli) {
      s.on_stun(e.data.data(), e.data.size(), e.from);
    }
  }
}

int Context::start_call(const identity::Fingerprint &to, signal::CallId *out) {
  const signal::CallId id = signal::CallId::random();
  const int r = start_call_with_id(to, id);
  if (r == kOk) *out = id;
  return r;
}

int Context::start_call_with_id(const identity::Fingerprint &to, const signal::CallId &id,
                                std::shared_ptr<VoiceChannel> *voice) {
  return run([&]() -> int {
    if (to == fp_) return fail(kErrInvalidArgument, "cannot call yourself");
    if (calls_.count(id)) return fail(kErrInvalidArgument, "call id in use");
    Call c;
    c.serial = next_call_serial_++;
    c.id = id;
    c.peer = to;
    c.outgoing = true;
    int r = VoiceChannel::create(config_.audio, &c.voice);
    if (r != kOk) return r;
    r = send_offer(signal::Type::kCallInvite, c);
    if (r != kOk) return r;
    if (voice) *voice = c.voice;
    calls_.emplace(c.id, std::move(c));
    return kOk;
  });
}

int Context::accept(const signal::CallId &id) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    if (it->second.state != CallState::kIncoming) {
      return fail(kErrWrongCallState, "the call is not an incoming call waiting for an answer");
    }
    Call &c = it->second;
    int r = send_offer(signal::Type::kCallAccept, c);
    if (r != kOk) return r;
    r = start_session(c);
    if (r != kOk) {
      relay_->send(call_message(signal::Type::kCallHangup, c));
      set_call_state(c, CallState::kEnded, r, "cannot start the call's media");
      calls_.erase(it);
      return r;
    }
    set_call_state(c, CallState::kActive, kOk, "");
    return kOk;
  });
}

int Context::reject(const signal::CallId &id) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    if (it->second.state != CallState::kIncoming) {
      return fail(kErrWrongCallState, "the call is not an incoming call waiting for an answer");
    }
    const int r = relay_->send(call_message(signal::Type::kCallReject, it->second));
    if (r != kOk) return r;
    set_call_state(it->second, CallState::kEnded, kErrCallRejected, "rejected here");
    calls_.erase(it);
    return kOk;
  });
}

int Context::hangup(const signal::CallId &id) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    send_or_queue_hangup(call_message(signal::Type::kCallHangup, it->second));
    set_call_state(it->second, CallState::kEnded, kOk, "hung up here");
    calls_.erase(it);
    // The call is over here whatever the relay heard: the request succeeded.
    return kOk;
  });
}

void Context::send_resume(Call &c) {
  signal::Message m = call_message(signal::Type::kCallResume, c);
  m.stream_id = c.stream;
  m.media_key = c.peer_key;
  m.identity_key = c.peer_identity_key;
  c.resumed_in = relay_->registrations();
  if (relay_->send(m) == kOk) ++stats_.resumes_sent;
}

void Context::send_or_queue_hangup(const signal::Message &m) {
  if (relay_->state() == RelayState::kRegistered) {
    const int r = relay_->send(m);
    if (r != kOk) {
      PARLEY_LOG(kLogWarn, "call", "hangup could not reach the relay: %s", error_description(r));
    }
    return;
  }
  if (pending_hangups_.size() < kMaxPendingHangups) {
    pending_hangups_.push_back(m);
  } else {
    PARLEY_LOG(kLogWarn, "call", "relay away: a hangup is dropped (%zu already wait)",
               pending_hangups_.size());
  }
}

void Context::set_call_state(Call &c, CallState s, int error, const std::string &text,
                             Origin origin) {
  if (c.state == s) return;
  c.state = s;
  // Incoming frames find their call through its stream id while it is active.
  if (s == CallState::kActive) {
    media_routes_[c.stream] = {true, c.id, c.serial, c.peer};
    Session *session = c.session.get();
    c.voice->start([session](uint32_t ts, uint8_t profile, const uint8_t *p, size_t n) {
      session->send(media::kFrameFlagVoice, ts, profile, p, n);
    });
    c.voice_started = true;
    CallQuality::Io io;
    const signal::CallId id = c.id;
    const identity::Fingerprint peer = c.peer;
    io.send = [this, id](signal::Message &m) {
      m.call_id = id;
      return relay_->send(m);
    };
    io.changed = [this, id, peer](uint8_t from, uint8_t to, quality::Reason why, uint32_t at) {
      Event e(EventType::kQualityChanged);
      e.call = id;
      e.peer = peer;
      e.profile_from = from;
      e.profile = to;
      e.reason = why;
      e.text = quality::reason_name(why);
      e.timestamp = at;
      emit(e);
    };
    c.quality = std::make_unique<CallQuality>(c.outgoing, c.voice.get(),
                                              config_.audio.best_profile,
                                              config_.audio.adaptive, std::move(io));
    if (++active_voice_ == 1) {
      audio_timer_->start(kAudioTickMs, kAudioTickMs, [this] { on_audio_tick(); });
    }
  }
  if (s == CallState::kEnded) {
    if (c.voice) c.voice->end();
    if (c.voice_started && --active_voice_ == 0) audio_timer_->stop();
    c.voice_started = false;
    auto it = media_routes_.find(c.stream);
    if (it != media_routes_.end() && it->second.is_call && it->second.serial == c.serial) {
      media_routes_.erase(it);
    }
    // The session may be on the stack below us (a host handler hanging up from inside a
    // media or path event): it is destroyed once the loop is back at the top.
    if (c.session) {
      retired_.push_back(std::move(c.session));
      loop_.post([this] { retired_.clear(); });
    }
  }
  Event e(EventType::kCallState);
  e.call = c.id;
  e.peer = c.peer;
  e.call_state = s;
  e.error = error;
  e.text = origin == Origin::kLocal ? text : printable(text);
  e.origin = origin;
  emit(e);
}

void Context::on_relay_message(const signal::Message &m) {
  using signal::Type;
  if (!m.call_id && m.room_id &&
      (m.type == Type::kQualityDirective || m.type == Type::kUpgradePropose ||
       m.type == Type::kUpgradeConfirm)) {
    on_room_quality(m);
    return;
  }
  if (m.type == Type::kRoomUpdate) {
    // Only rooms we joined and have not left: an update that crossed our leave on the way
    // must not bring the room back.
    auto joined = rooms_.find(*m.room_id);
    if (joined == rooms_.end()) return;
    Room &r = joined->second;
    drop_room_routes(joined->first, r);
    r.stream = m.stream_id.value_or(0);
    r.members = m.members;
    std::map<uint32_t, Room::Stream> streams;  // members that stay keep their loss history
    for (const auto &mb : r.members) {
      if (mb.stream_id == r.stream) continue;  // our own frames are never sent back to us
      auto old = r.streams.find(mb.stream_id);
      Room::Stream &s = streams[mb.stream_id];
      if (old != r.streams.end()) s = old->second;
      media_routes_[mb.stream_id] = {false, *m.room_id, 0, mb.fingerprint};
    }
    r.streams = std::move(streams);
    Event e(EventType::kRoomUpdate);
    e.room = *m.room_id;
    e.is_room = true;
    e.members = m.members;
    e.stream_id = r.stream;
    emit(e);
    return;
  }
  auto it = m.call_id ? calls_.find(*m.call_id) : calls_.end();
  if (m.type == Type::kCallInvite) {
    if (it != calls_.end() || !m.stream_id) return;  // a duplicate, or a relay bug
    Call c;
    c.serial = next_call_serial_++;
    c.id = *m.call_id;
    c.peer = *m.from;
    c.state = CallState::kIncoming;
    c.stream = *m.stream_id;
    if (VoiceChannel::create(config_.audio, &c.voice) != kOk) {
      PARLEY_LOG(kLogError, "call", "no voice channel for an incoming call: %s",
                 last_error_message());
      signal::Message rej = call_message(Type::kCallReject, c);
      rej.error_code = kErrNoMemory;
      rej.text = "callee out of resources";
      relay_->send(rej);
      return;
    }
    if (take_peer_offer(c, m) != kOk) {
      // A key the caller did not sign, or a stale or replayed invite: the relay (or someone)
      // forged or recorded it. The host hears of it: whoever sent it learns from the reject
      // that we are online, so that must not go unnoticed here.
      const std::string why = last_error_message();
      PARLEY_LOG(kLogWarn, "call", "refusing an invite from %s: %s", c.peer.display().c_str(),
                 why.c_str());
      signal::Message rej = call_message(Type::kCallReject, c);
      rej.error_code = kErrMediaKey;
      rej.text = "media key refused";
      relay_->send(rej);
      Event e(EventType::kError);
      e.call = c.id;
      e.peer = c.peer;
      e.error = kErrMediaKey;
      e.text = "refused an invite: " + why;
      emit(e);
      return;
    }
    auto &stored = calls_.emplace(c.id, std::move(c)).first->second;
    relay_->send(call_message(Type::kCallRinging, stored));
    Event e(EventType::kIncomingCall);
    e.call = stored.id;
    e.peer = stored.peer;
    e.voice = stored.voice;
    emit(e);
    return;
  }
  if (m.type == Type::kCallResume) {
    // Parties resume calls at the relay; a relay (or anyone) announcing one to us creates,
    // revives and changes nothing.
    ++stats_.resumes_ignored;
    return;
  }
  if (m.type == Type::kError) {
    if (it != calls_.end() && it->second.state == CallState::kActive) {
      // A relay's word never ends a call that its parties hold (docs/protocol.md "What ends a
      // call"): "no such call" means it lost the call, and gets the call back.
      Call &c = it->second;
      const int code = m.error_code.value_or(kErrInternal);
      ++stats_.relay_errors_kept;
      PARLEY_LOG(kLogInfo, "call", "relay error %d for an active call (kept): %s", code,
                 m.text.c_str());
      if (code == kErrCallNotFound) {
        if (c.resumed_in != relay_->registrations()) send_resume(c);
        return;
      }
      Event e(EventType::kError);
      e.call = c.id;
      e.peer = c.peer;
      e.error = code;
      e.text = printable(m.text);
      e.origin = Origin::kRelay;
      emit(e);
      return;
    }
    if (it != calls_.end()) {
      Call &c = it->second;
      set_call_state(c, CallState::kEnded, m.error_code.value_or(kErrInternal), m.text,
                     Origin::kRelay);
      calls_.erase(it);
      return;
    }
    if (!m.call_id && m.room_id) {
      // A refused join (room full, too many rooms): the membership never began.
      auto room = rooms_.find(*m.room_id);
      if (room == rooms_.end()) return;  // left meanwhile: nothing to tell
      drop_room_routes(room->first, room->second);
      rooms_.erase(room);
      Event e(EventType::kError);
      e.room = *m.room_id;
      e.is_room = true;
      e.error = m.error_code.value_or(kErrInternal);
      e.text = printable(m.text);
      e.origin = Origin::kRelay;
      emit(e);
      return;
    }
    if (m.call_id) {
      // About a call that is already over here (a message of ours crossed its end at the
      // relay): nothing the host could act on.
      PARLEY_LOG(kLogDebug, "call", "relay error for a call already gone: %s", m.text.c_str());
      return;
    }
    Event e(EventType::kError);
    e.error = m.error_code.value_or(kErrInternal);
    e.text = printable(m.text);
    e.origin = Origin::kRelay;
    emit(e);
    return;
  }
  if (it == calls_.end()) return;  // late message of a call already gone
  Call &c = it->second;
  if (m.from && *m.from != c.peer) return;
  switch (m.type) {
    case Type::kCallRinging:
      // Only an outgoing call being set up: an active call's stream id keys its media route.
      if (!c.outgoing || (c.state != CallState::kInviting && c.state != CallState::kRinging)) {
        break;
      }
      if (m.stream_id) c.stream = *m.stream_id;
      if (c.state == CallState::kInviting) set_call_state(c, CallState::kRinging, kOk, "");
      break;
    case Type::kCallAccept: {
      if (!c.outgoing || (c.state != CallState::kInviting && c.state != CallState::kRinging)) {
        break;
      }
      if (m.stream_id) c.stream = *m.stream_id;
      int r = take_peer_offer(c, m);
      if (r == kOk) r = start_session(c);
      if (r != kOk) {
        signal::Message h = call_message(Type::kCallHangup, c);
        h.error_code = r;
        h.text = r == kErrMediaKey ? "media key not signed by the callee"
                                   : "cannot start the call's media";
        relay_->send(h);
        set_call_state(c, CallState::kEnded, r, h.text);
        calls_.erase(it);
        break;
      }
      set_call_state(c, CallState::kActive, kOk, "");
      break;
    }
    case Type::kCandidate:
    case Type::kEndOfCandidates:
      if (c.session) {
        c.session->on_signal(m);
      } else if (m.type == Type::kCandidate) {
        for (const auto &cand : m.candidates) {
          if (c.peer_candidates.size() < signal::kMaxCandidates) c.peer_candidates.push_back(cand);
        }
        if (m.nat) c.peer_nat = *m.nat;
      } else {
        c.peer_candidates_done = true;
      }
      break;
    case Type::kPathSwitchPropose:
    case Type::kPathSwitchAck:
    case Type::kIceRestart:
      if (c.session) c.session->on_signal(m);
      break;
    case Type::kQualityReport:
    case Type::kQualityDirective:
    case Type::kUpgradePropose:
    case Type::kUpgradeAck:
    case Type::kUpgradeConfirm:
      if (c.quality) c.quality->on_message(m, int64_t(monotonic_now() / kNanosPerMilli));
      break;
    case Type::kCallReject:
      set_call_state(c, CallState::kEnded, kErrCallRejected, m.text, Origin::kPeer);
      calls_.erase(it);
      break;
    case Type::kCallHangup:
      // The relay ending a call whose peer left it (and did not come back): a direct path
      // that still carries the peer's media says the peer is alive. The call goes on; should
      // the direct path go too, the relay no longer counts as a path to the peer.
      if (m.error_code.value_or(kOk) == kErrPeerUnavailable && c.state == CallState::kActive &&
          c.session && c.session->path() == PathKind::kDirect) {
        PARLEY_LOG(kLogInfo, "call", "the relay says %s left it; the direct path still carries "
                   "the call", c.peer.display().c_str());
        c.peer_left_relay = true;
        break;
      }
      set_call_state(c, CallState::kEnded, m.error_code.value_or(kOk), m.text, Origin::kPeer);
      calls_.erase(it);
      break;
    default:
      break;  // candidates, path and quality messages: the ICE/path/quality layers
  }
}

void Context::on_datagram(const uint8_t *data, size_t len) {
  media::FrameHeader h;
  if (media::parse_frame_header(data, len, &h) != kOk) {
    ++stats_.media_unknown_stream;
    return;
  }
  auto route = media_routes_.find(h.stream_id);
  if (route == media_routes_.end()) {
    ++stats_.media_unknown_stream;
    return;
  }
  const MediaRoute r = route->second;  // a copy: the handlers below may change the routes
  if (r.is_call) {
    Call *c = route_call(r);
    if (!c) {
      ++stats_.media_unknown_stream;
      return;
    }
    c->session->on_relay_frame(data, len);
    return;
  }
  auto room = rooms_.find(r.id);
  if (room == rooms_.end()) {
    ++stats_.media_unknown_stream;
    return;
  }
  auto stream = room->second.streams.find(h.stream_id);
  if (stream != room->second.streams.end()) {
    stream->second.loss.on_frame(stream->second.seq.extend(h.sequence),
                                 int64_t(monotonic_now() / kNanosPerMilli));
  }
  Event e(EventType::kMedia);
  e.room = r.id;
  e.is_room = true;
  e.peer = r.peer;
  ++stats_.media_received;
  e.stream_id = h.stream_id;
  e.sequence = h.sequence;
  e.timestamp = h.timestamp;
  e.payload = data + media::kFrameHeaderSize;
  e.len = len - media::kFrameHeaderSize;
  emit(e);
}

Context::Call *Context::route_call(const MediaRoute &r) {
  auto it = calls_.find(r.id);
  if (it == calls_.end()) return nullptr;
  Call &c = it->second;
  if (c.serial != r.serial || c.state != CallState::kActive || !c.session) return nullptr;
  return &c;
}

void Context::drop_room_routes(const signal::RoomId &id, const Room &r) {
  for (const auto &mb : r.members) {
    auto it = media_routes_.find(mb.stream_id);
    if (it != media_routes_.end() && !it->second.is_call && it->second.id == id) {
      media_routes_.erase(it);
    }
  }
}

int Context::send_frame(uint32_t stream, uint32_t sequence, uint32_t timestamp, uint8_t profile,
                        const uint8_t *sealed, size_t len) {
  if (len > sizeof frame_ - media::kFrameHeaderSize) {
    return fail(kErrMessageTooLarge, "media payload of %zu bytes", len);
  }
  media::FrameHeader h;
  h.profile = profile;
  h.stream_id = stream;
  h.sequence = sequence;
  h.timestamp = timestamp;
  media::write_frame_header(h, frame_);
  std::memcpy(frame_ + media::kFrameHeaderSize, sealed, len);
  const int r = relay_->send_datagram(frame_, media::kFrameHeaderSize + len);
  if (r == kOk) {
    ++stats_.media_sent;
  } else {
    ++stats_.media_send_failed;
  }
  return r;
}

int Context::send_media(const signal::CallId &id, uint32_t timestamp, uint8_t profile,
                        const uint8_t *payload, size_t len) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    if (!it->second.session) return fail(kErrCallNotActive, "the call is not active yet");
    const int r = it->second.session->send(0, timestamp, profile, payload, len);
    if (r == kOk) {
      ++stats_.media_sent;
    } else {
      ++stats_.media_send_failed;
    }
    return r;
  });
}

int Context::call_stats(const signal::CallId &id, CallStats *out) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    if (!it->second.session) return fail(kErrCallNotActive, "the call is not active yet");
    *out = it->second.session->stats();
    out->voice = it->second.voice->stats();
    return kOk;
  });
}

int Context::voice(const signal::CallId &id, std::shared_ptr<VoiceChannel> *out) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    *out = it->second.voice;
    return kOk;
  });
}

int Context::call_quality(const signal::CallId &id, QualityStats *out) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    if (!it->second.quality) return fail(kErrCallNotActive, "the call is not active yet");
    *out = it->second.quality->stats();
    return kOk;
  });
}

void Context::on_room_quality(const signal::Message &m) {
  auto it = rooms_.find(*m.room_id);
  if (it == rooms_.end()) return;
  Room &r = it->second;
  const int64_t now_ms = int64_t(monotonic_now() / kNanosPerMilli);
  auto changed = [&](uint8_t to, quality::Reason why, uint32_t ts) {
    Event e(EventType::kQualityChanged);
    e.room = *m.room_id;
    e.is_room = true;
    e.profile_from = r.profile;
    e.profile = to;
    e.reason = why;
    e.text = quality::reason_name(why);
    e.timestamp = ts;
    r.profile = to;
    emit(e);
  };
  switch (m.type) {
    case signal::Type::kQualityDirective:
      if (m.sequence && r.pending && r.pending_sequence == *m.sequence) {
        r.pending = false;
        ++stats_.room_rounds_cancelled;
      }
      if (*m.profile > r.profile) {
        r.pending = false;
        changed(*m.profile, quality::Reason::kDirective, 0);
      }
      break;
    case signal::Type::kUpgradePropose: {
      quality::LinkReport local;
      for (auto &kv : r.streams) {
        local.loss_permille = std::max(local.loss_permille, kv.second.loss.permille(now_ms));
      }
      const uint8_t allowed =
          std::max(config_.audio.best_profile, quality::best_to_enter(local));
      signal::Message a;
      a.type = signal::Type::kUpgradeAck;
      a.room_id = *m.room_id;
      a.sequence = *m.sequence;
      a.profile = allowed;
      relay_->send(a);
      r.pending = allowed <= *m.profile;
      r.pending_sequence = *m.sequence;
      if (!r.pending) ++stats_.room_refusals_sent;
      break;
    }
    case signal::Type::kUpgradeConfirm:
      if (r.pending && r.pending_sequence == *m.sequence) {
        r.pending = false;
        changed(*m.profile, quality::Reason::kRecovered, *m.media_timestamp);
      }
      break;
    default:
      break;
  }
}

void Context::on_quality_tick() {
  if (!relay_) return;
  const int64_t now_ms = int64_t(monotonic_now() / kNanosPerMilli);
  const quic::PathStats relay_ps = relay_->path_stats();
  const uint32_t signal_rtt = uint32_t(relay_ps.smoothed_rtt / kNanosPerMilli);
  for (auto &kv : rooms_) {
    Room &r = kv.second;
    if (r.stream == 0) continue;
    uint16_t loss = 0;
    for (auto &s : r.streams) loss = std::max(loss, s.second.loss.permille(now_ms));
    signal::Message q;
    q.type = signal::Type::kQualityReport;
    q.room_id = kv.first;
    q.loss_permille = loss;
    q.rtt_ms = signal_rtt;
    q.jitter_ms = 0;  // no jitter buffer here: room audio is the host's
    q.queue_ms = quality::queue_ms(signal_rtt, uint32_t(relay_ps.min_rtt / kNanosPerMilli));
    relay_->send(q);
  }
  std::vector<signal::CallId> lost;
  if (relay_ps.packets_received != relay_rx_packets_) {
    relay_rx_packets_ = relay_ps.packets_received;
    relay_rx_at_ms_ = now_ms;
  }
  // A relay that died says nothing: its connection lingers until the QUIC idle timeout.
  // Every active call sends it a quality report per tick, which it acknowledges within the
  // RTT, so silence this long means it is gone (no connection at all: a test's sink).
  const bool relay_up =
      relay_->state() == RelayState::kRegistered &&
      (now_ms - relay_rx_at_ms_ <= kRelaySilentMs || relay_ps.packets_sent == 0);
  for (auto &kv : calls_) {
    Call &c = kv.second;
    if (!c.quality || !c.session) continue;
    if (config_.no_path_timeout_ms != 0) {
      if ((relay_up && !c.peer_left_relay) || c.session->path() == PathKind::kDirect) {
        c.no_path_since_ms = -1;
      } else if (c.no_path_since_ms < 0) {
        c.no_path_since_ms = now_ms;
      } else if (now_ms - c.no_path_since_ms >= int64_t(config_.no_path_timeout_ms)) {
        lost.push_back(kv.first);
        continue;
      }
    }
    const quic::PathStats ps = c.session->path_stats();
    QualityInputs in;
    in.path = c.session->path();
    const media::JitterStats js = c.voice->stats().jitter;
    in.jitter_ms = js.jitter_ms;
    in.jitter_window_ms = js.jitter_window_ms;
    in.rtt_ms = uint32_t(ps.smoothed_rtt / kNanosPerMilli);
    // The base RTT of the path in use, over the last 10 s (one window per path: falling back
    // to a longer relay path is not a queue).
    quality::MinRttWindow &base = c.base_rtt[in.path == PathKind::kDirect ? 1 : 0];
    base.sample(uint32_t(ps.latest_rtt / kNanosPerMilli), now_ms);
    in.queue_ms = quality::queue_ms(in.rtt_ms, base.min(now_ms));
    in.signal_rtt_ms = signal_rtt;
    c.quality->tick(in, now_ms);
  }
  for (const auto &id : lost) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;  // a handler above ended it
    Call &c = it->second;
    char why[96];
    std::snprintf(why, sizeof why, "no path to the peer for %u ms", config_.no_path_timeout_ms);
    PARLEY_LOG(kLogWarn, "call", "call with %s ends: %s", c.peer.display().c_str(), why);
    signal::Message h = call_message(signal::Type::kCallHangup, c);
    h.error_code = kErrNoPath;
    h.text = why;
    send_or_queue_hangup(h);
    set_call_state(c, CallState::kEnded, kErrNoPath, why);
    calls_.erase(it);
  }
}

void Context::on_audio_tick() {
  const int64_t now = int64_t(monotonic_now() / 1000);
  for (auto &kv : calls_) {
    if (kv.second.voice_started) kv.second.voice->encode_ready(now);
  }
}

int Context::media_stream(const signal::CallId &id, uint32_t *stream_id) {
  return run([&]() -> int {
    auto it = calls_.find(id);
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    if (it->second.state != CallState::kActive) {
      return fail(kErrCallNotActive, "the call is not active yet");
    }
    *stream_id = it->second.stream;
    return kOk;
  });
}

int Context::send_room_media(const signal::RoomId &id, uint32_t sequence, uint32_t timestamp,
                             uint8_t profile, const uint8_t *sealed, size_t len) {
  return run([&]() -> int {
    auto it = rooms_.find(id);
    if (it == rooms_.end() || it->second.stream == 0) {
      return fail(kErrNotAMember, "not a member of that room (yet)");
    }
    return send_frame(it->second.stream, sequence, timestamp, profile, sealed, len);
  });
}

int Context::join_room(const signal::RoomId &room) {
  return run([&]() -> int {
    signal::Message m;
    m.type = signal::Type::kRoomJoin;
    m.room_id = room;
    const int r = relay_->send(m);
    if (r == kOk) rooms_.emplace(room, Room{});  // stream 0 until the first update
    return r;
  });
}

int Context::leave_room(const signal::RoomId &room) {
  return run([&]() -> int {
    signal::Message m;
    m.type = signal::Type::kRoomLeave;
    m.room_id = room;
    auto it = rooms_.find(room);
    if (it == rooms_.end()) return fail(kErrNotAMember, "not in that room");
    drop_room_routes(it->first, it->second);
    rooms_.erase(it);
    // Left here whatever the relay heard (it drops the members of a client that vanishes).
    const int r = relay_->send(m);
    if (r != kOk) {
      PARLEY_LOG(kLogWarn, "call", "room leave could not reach the relay: %s",
                 error_description(r));
    }
    return kOk;
  });
}

}  // namespace parley::call

// The context's set-up and lifetime (create/init: sockets, QUIC endpoint, relay link; the
// teardown) and the timers that drive every call and room. Each other job of the one Context
// class has a file of its own, so it can be read without the rest: context_calls.cc (call
// signaling), context_rooms.cc, context_media.cc (frame routing) and context_network.cc (our
// addresses, network changes).
#include "call/context.h"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <future>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/resolver.h"
#include "call/context_internal.h"

namespace parley::call {

namespace {

// How long a closing context waits for the relay to acknowledge its last messages (hangups):
// several retransmissions at any RTT a relay can serve, yet a bounded wait for the host.
constexpr uint32_t kCloseLingerMs = 1000;
constexpr int64_t kRelaySilentMs = 2000;

}  // namespace

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

}  // namespace parley::call

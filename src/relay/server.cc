#include "relay/server.h"

#include <cinttypes>
#include <cstdio>

#include "base/clock.h"
#include "base/demux.h"
#include "base/error.h"
#include "base/log.h"
#include "relay/http3.h"
#include "stun/message.h"

namespace parley::relay {

namespace {
constexpr uint64_t kTickMs = 250;  // ring timeouts and shutdown progress are checked this often
}

Server::Server(Loop &loop, const identity::Identity &id, const RelayConfig &config)
    : loop_(loop),
      id_(id),
      config_(config),
      router_(config.limits),
      sock_(loop),
      alt_sock_(loop),
      other_sock_(loop),
      tick_timer_(loop),
      shutdown_timer_(loop) {}

Server::~Server() = default;

int Server::create(Loop &loop, const identity::Identity &id, const RelayConfig &config,
                   std::unique_ptr<Server> *out) {
  if (!config.listen.is_set()) return fail(kErrInvalidArgument, "relay: no listen address");
  if (config.listen_other.is_set() && config.listen_other.family() == config.listen.family()) {
    return fail(kErrInvalidArgument, "relay: the second listen address must be of the other family");
  }
  std::unique_ptr<Server> s(new Server(loop, id, config));
  Server *self = s.get();
  int r = s->sock_.bind(config.listen, [self](const uint8_t *d, size_t n,
                                              const SocketAddress &from) {
    self->on_main_datagram(d, n, from);
  });
  if (r != kOk) return r;
  s->sock_.set_buffer_sizes(config.socket_buffer_bytes, config.socket_buffer_bytes);
  const SocketAddress local = s->sock_.local_address();

  stun::ResponderConfig rc;
  rc.primary = local;
  rc.software = "parley-relay";
  if (config.stun_alt_enabled) {
    SocketAddress alt = config.stun_alt;
    if (!alt.is_set()) {
      alt = local;
      alt.set_port(config.listen.port() == 0 ? 0 : uint16_t(local.port() + 1));
    }
    r = s->alt_sock_.bind(alt, [self](const uint8_t *d, size_t n, const SocketAddress &from) {
      self->on_alt_datagram(d, n, from);
    });
    if (r != kOk) return r;
    s->alt_bound_ = true;
  }
  // Each port answers for itself: a change of port or IP (RFC 5780 CHANGE-REQUEST) would need
  // the four sockets of two IPs, which a relay on one address does not have.
  s->responder_ = std::make_unique<stun::Responder>(rc);
  if (config.listen_other.is_set()) {
    r = s->other_sock_.bind(config.listen_other,
                            [self](const uint8_t *d, size_t n, const SocketAddress &from) {
                              self->on_other_datagram(d, n, from);
                            });
    if (r != kOk) return r;
    s->other_sock_.set_buffer_sizes(config.socket_buffer_bytes, config.socket_buffer_bytes);
    s->other_bound_ = true;
    stun::ResponderConfig oc = rc;
    oc.primary = s->other_sock_.local_address();
    s->other_responder_ = std::make_unique<stun::Responder>(oc);
  }
  if (s->alt_bound_) {
    stun::ResponderConfig ac = rc;
    ac.primary = s->alt_sock_.local_address();
    s->alt_responder_ = std::make_unique<stun::Responder>(ac);
  }

  quic::EndpointConfig ec;
  ec.max_connections = config.max_connections;
  ec.max_connections_per_address = config.max_connections_per_address;
  ec.max_connections_per_network = config.max_connections_per_network;
  ec.retry_when_connections_over = config.max_connections * config.retry_percent / 100;
  ec.h3_max_connections = config.h3_max_connections;
  ec.h3_idle_timeout_ms = config.h3_idle_timeout_ms;
  ec.connection.max_queued_bytes = config.signal_queue_bytes;
  ec.connection.idle_timeout_ms = config.idle_timeout_ms;
  ec.connection.keepalive_ms = 0;  // clients keep their connection (and NAT binding) alive
  ec.connection.datagram_queue = 128;  // a room fans one frame out to every member
  if (config.http3) {
    enable_http3(&ec, [self](const std::string &method, const std::string &path) {
      ++self->stats_.http_requests;
      HttpResponse res;
      if (method != "GET" && method != "HEAD") {
        res.status = 405;
        res.content_type = "text/plain";
        res.body = "method not allowed\n";
      } else if (path == "/health") {
        const bool up = self->router_.accepting();
        res.status = up ? 200 : 503;
        res.content_type = "text/plain";
        res.body = up ? "ok\n" : "shutting down\n";
      } else if (path == "/metrics") {
        res.status = 200;
        res.content_type = "text/plain; version=0.0.4";
        res.body = self->metrics();
      } else if (path == "/v1/identity") {
        res.status = 200;
        res.content_type = "application/json";
        res.body = "{\"fingerprint\":\"" + self->id_.fingerprint().hex() + "\"}\n";
      } else {
        res.status = 404;
        res.content_type = "text/plain";
        res.body = "not found\n";
      }
      return res;
    });
  }
  r = quic::Endpoint::create(
      id, ec,
      [self](const SocketAddress &to, const uint8_t *d, size_t n) {
        self->socket_for(to).send(to, d, n);
      },
      &s->endpoint_);
  if (r != kOk) return r;
  s->endpoint_->set_batch_sender([self](const quic::TxPacket *p, size_t n) {
    // One system call per family present in the batch (almost always just one).
    OutDatagram batch[quic::kTxBatch];
    for (UdpSocket *sock : {&self->sock_, &self->other_sock_}) {
      size_t k = 0;
      for (size_t i = 0; i < n; ++i) {
        if (&self->socket_for(p[i].to) == sock) batch[k++] = {p[i].data, p[i].len, &p[i].to};
      }
      if (k) sock->send_batch(batch, k);
    }
  });
  s->endpoint_->set_local_address(local);
  if (s->other_bound_) s->endpoint_->set_local_address(s->other_sock_.local_address());
  s->endpoint_->set_accept([self](const SocketAddress &) { return self->router_.accept(); });
  s->driver_ = std::make_unique<quic::EndpointDriver>(loop, *s->endpoint_);
  s->started_ = monotonic_now();
  s->tick_timer_.start(kTickMs, kTickMs, [self] { self->tick(); });
  *out = std::move(s);
  return kOk;
}

SocketAddress Server::address() const { return sock_.local_address(); }

SocketAddress Server::other_address() const {
  return other_bound_ ? other_sock_.local_address() : SocketAddress();
}

SocketAddress Server::stun_alt_address() const {
  return alt_bound_ ? alt_sock_.local_address() : SocketAddress();
}

void Server::on_main_datagram(const uint8_t *data, size_t len, const SocketAddress &from) {
  on_quic_port_datagram(sock_, *responder_, data, len, from);
}

void Server::on_other_datagram(const uint8_t *data, size_t len, const SocketAddress &from) {
  on_quic_port_datagram(other_sock_, *other_responder_, data, len, from);
}

void Server::on_quic_port_datagram(UdpSocket &sock, stun::Responder &responder,
                                   const uint8_t *data, size_t len, const SocketAddress &from) {
  switch (classify_datagram(data, len)) {
    case DatagramKind::kQuic:
      router_.advance(monotonic_now());
      driver_->on_datagram(data, len, from);
      break;
    case DatagramKind::kStun:
      answer_stun(sock, responder, data, len, from);
      break;
    case DatagramKind::kUnknown:
      ++stats_.dropped_unknown_protocol;
      break;
  }
}

void Server::on_alt_datagram(const uint8_t *data, size_t len, const SocketAddress &from) {
  if (classify_datagram(data, len) == DatagramKind::kStun) {
    answer_stun(alt_sock_, *alt_responder_, data, len, from);
  } else {
    ++stats_.dropped_unknown_protocol;
  }
}

void Server::answer_stun(UdpSocket &sock, stun::Responder &responder, const uint8_t *data,
                         size_t len, const SocketAddress &from) {
  ++stats_.stun_requests;
  uint8_t out[stun::kMaxMessageLen];
  stun::Responder::Reply reply;
  if (responder.handle(data, len, from, sock.local_address(), out, sizeof out, &reply)) {
    if (sock.send(reply.to, out, reply.len) == kOk) ++stats_.stun_responses;
  }
}

void Server::tick() {
  router_.advance(monotonic_now());
  if (router_.handle_timeouts()) driver_->kick();
  if (router_.judge_tick()) driver_->kick();
  if (shutdown_done_) check_shutdown();
}

void Server::shutdown(std::function<void()> done) {
  if (shutdown_done_ || !router_.accepting()) return;
  PARLEY_LOG(kLogInfo, "relay", "shutting down: %zu connections to close",
             endpoint_->connection_count());
  router_.stop_accepting();
  shutdown_done_ = std::move(done);
  shutdown_deadline_ = monotonic_now() + Timestamp(config_.shutdown_timeout_ms) * kNanosPerMilli;
  router_.advance(monotonic_now());
  endpoint_->close_all(signal::kCloseShuttingDown, "relay shutting down", monotonic_now());
  driver_->kick();
  check_shutdown();
}

void Server::check_shutdown() {
  const bool timed_out = monotonic_now() >= shutdown_deadline_;
  if (endpoint_->connection_count() != 0 && !timed_out) return;
  if (timed_out && endpoint_->connection_count() != 0) {
    PARLEY_LOG(kLogWarn, "relay", "shutdown timeout: %zu connections still closing",
               endpoint_->connection_count());
  }
  tick_timer_.stop();
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  if (done) done();
}

std::string Server::metrics() const {
  std::string out;
  char line[256];
  auto metric = [&](const char *name, const char *type, const char *help, uint64_t v) {
    std::snprintf(line, sizeof line, "# HELP parley_relay_%s %s\n# TYPE parley_relay_%s %s\n",
                  name, help, name, type);
    out += line;
    std::snprintf(line, sizeof line, "parley_relay_%s %" PRIu64 "\n", name, v);
    out += line;
  };
  auto labelled = [&](const char *name, const char *label, uint64_t v) {
    std::snprintf(line, sizeof line, "parley_relay_%s{%s} %" PRIu64 "\n", name, label, v);
    out += line;
  };
  const RouterGauges g = router_.gauges();
  const RouterStats &s = router_.stats();
  const quic::EndpointStats &e = endpoint_->stats();
  metric("connections", "gauge", "QUIC connections of registered or registering clients.",
         g.connections);
  metric("quic_connections", "gauge", "All QUIC connections, HTTP/3 and closing ones included.",
         endpoint_->connection_count());
  metric("registered_identities", "gauge", "Identities registered for calls.", g.registered);
  metric("calls", "gauge", "Calls ringing or active.", g.calls);
  metric("calls_active", "gauge", "Calls accepted and not yet ended.", g.calls_active);
  metric("rooms", "gauge", "Rooms with at least one member.", g.rooms);
  metric("room_members", "gauge", "Members over all rooms.", g.room_members);
  metric("registrations_total", "counter", "Registrations accepted.", s.registrations);
  metric("registrations_replaced_total", "counter",
         "Registrations taken over by a newer connection of the same identity.",
         s.registrations_replaced);
  metric("calls_started_total", "counter", "Invites routed to a registered callee.",
         s.calls_started);
  metric("calls_answered_total", "counter", "Calls accepted.", s.calls_answered);
  metric("calls_rejected_total", "counter", "Calls rejected by the callee.", s.calls_rejected);
  metric("calls_resumed_total", "counter", "Calls rebuilt from a party's resume (a restart lost them).",
         s.calls_resumed);
  metric("calls_reattached_total", "counter", "Resumes of calls the relay still had.",
         s.calls_reattached);
  metric("resumes_refused_total", "counter", "Resumes refused (bad proof, stream id taken, limits).",
         s.resumes_refused);
  metric("calls_timed_out_total", "counter", "Invites not answered in time.", s.calls_timed_out);
  metric("calls_ended_party_gone_total", "counter",
         "Answered calls ended because a party left the relay and did not come back.",
         s.calls_ended_party_gone);
  metric("calls_refused_total", "counter", "Invites refused (offline callee or limits).",
         s.calls_refused_offline + s.calls_refused_limit);
  metric("identity_spoof_attempts_total", "counter",
         "Messages claiming an identity other than the connection's.", s.spoof_attempts);
  metric("signal_messages_received_total", "counter", "Signaling messages received.",
         s.signal_in);
  metric("signal_messages_sent_total", "counter", "Signaling messages sent.", s.signal_out);
  metric("signal_errors_sent_total", "counter", "Error messages sent to clients.",
         s.signal_errors_sent);
  metric("signal_malformed_total", "counter", "Signaling messages that failed to decode.",
         s.signal_malformed);
  metric("signal_rate_limited_total", "counter", "Signaling messages dropped by rate limit.",
         s.signal_rate_limited);
  metric("signal_ignored_replaced_total", "counter",
         "Signaling messages ignored: their connection was replaced or is being closed.",
         s.signal_ignored_replaced);
  metric("slow_consumers_closed_total", "counter",
         "Connections closed because their signaling queue was full.", s.closed_slow_consumers);
  metric("accepts_refused_total", "counter",
         "Call accepts refused by the callee's call limit.", s.accepts_refused_limit);
  metric("relayed_packets_total", "counter", "Media datagrams forwarded.", s.relayed_packets);
  metric("relayed_bytes_total", "counter", "Media bytes forwarded.", s.relayed_bytes);
  out += "# HELP parley_relay_dropped_packets_total Media datagrams not forwarded, by reason.\n"
         "# TYPE parley_relay_dropped_packets_total counter\n";
  labelled("dropped_packets_total", "reason=\"malformed\"", s.dropped_malformed);
  labelled("dropped_packets_total", "reason=\"unknown_stream\"", s.dropped_unknown_stream);
  labelled("dropped_packets_total", "reason=\"not_owner\"", s.dropped_not_owner);
  labelled("dropped_packets_total", "reason=\"rate_limited\"", s.dropped_rate_limited);
  labelled("dropped_packets_total", "reason=\"queue_full\"", s.dropped_queue_full);
  metric("stun_requests_total", "counter", "STUN messages received (both ports).",
         stats_.stun_requests);
  metric("stun_responses_total", "counter", "STUN responses sent.", stats_.stun_responses);
  metric("http_requests_total", "counter", "HTTP/3 requests served.", stats_.http_requests);
  metric("quic_packets_received_total", "counter", "QUIC packets received.", e.packets_in);
  metric("quic_packets_sent_total", "counter", "QUIC packets sent.", e.packets_out);
  metric("quic_connections_refused_total", "counter", "Connections refused (max-connections).",
         e.refused_full);
  out += "# HELP parley_relay_quic_connections_refused_source_total Connections refused by "
         "a per-source limit.\n"
         "# TYPE parley_relay_quic_connections_refused_source_total counter\n";
  labelled("quic_connections_refused_source_total", "limit=\"address\"", e.refused_address);
  labelled("quic_connections_refused_source_total", "limit=\"network\"", e.refused_network);
  labelled("quic_connections_refused_source_total", "limit=\"h3\"", e.refused_h3);
  metric("quic_retries_sent_total", "counter", "QUIC Retry packets sent (address validation).",
         e.retries_sent);
  metric("h3_connections", "gauge", "HTTP/3 connections.", endpoint_->h3_connection_count());
  metric("udp_send_errors_total", "counter", "Datagrams the kernel refused to send.",
         sock_.stats().send_errors);
  metric("uptime_seconds", "gauge", "Seconds since the relay started.",
         (monotonic_now() - started_) / kNanosPerSecond);
  return out;
}

}  // namespace parley::relay

// Why this file is long: it adapts one ngtcp2_conn to parley. ngtcp2's callbacks, the write
// loop (parley/1 messages and DATAGRAMs, or a StreamApp's streams) and the close path share the
// connection's state and one rule: nothing is written from inside a callback, so API calls only
// queue work. That rule is easiest to keep where all three are seen together.

#include "quic/connection.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "quic/endpoint.h"

namespace parley::quic {

namespace {

// Application error codes parley itself uses in CONNECTION_CLOSE.
constexpr uint64_t kAppMessageTooLarge = 0x101;


Connection *self(void *user) { return static_cast<Connection *>(user); }

}  // namespace

ngtcp2_path make_path(const SocketAddress &local, const SocketAddress &remote) {
  ngtcp2_path p;
  p.local.addr = const_cast<ngtcp2_sockaddr *>(
      reinterpret_cast<const ngtcp2_sockaddr *>(local.sockaddr_ptr()));
  p.local.addrlen = local.sockaddr_len();
  p.remote.addr = const_cast<ngtcp2_sockaddr *>(
      reinterpret_cast<const ngtcp2_sockaddr *>(remote.sockaddr_ptr()));
  p.remote.addrlen = remote.sockaddr_len();
  p.user_data = nullptr;
  return p;
}

Connection::Connection(Endpoint &ep, Role role, const SocketAddress &local,
                       const SocketAddress &remote, const ConnectionConfig &config)
    : ep_(ep), role_(role), local_(local), remote_(remote), config_(config) {}

Connection::~Connection() {
  app_.reset();  // may hold state that refers to conn_ (and to this)
  if (conn_) ngtcp2_conn_del(conn_);
}

void Connection::set_state(State s) {
  if (state_ == State::kHandshake && s != State::kHandshake) ep_.left_handshake();
  state_ = s;
}

ngtcp2_conn *Connection::get_conn(void *user_data) {
  return static_cast<Connection *>(user_data)->conn_;
}

void Connection::setup_callbacks(ngtcp2_callbacks *cb) {
  std::memset(cb, 0, sizeof *cb);
  crypto::set_callbacks(cb, role_ == Role::kServer);
  cb->handshake_completed = on_handshake_completed;
  cb->recv_stream_data = on_recv_stream_data;
  cb->acked_stream_data_offset = on_acked_stream_data;
  cb->stream_open = on_stream_open;
  cb->stream_close = on_stream_close;
  cb->stream_reset = on_stream_reset;
  cb->stream_stop_sending = on_stream_stop_sending;
  cb->extend_max_stream_data = on_extend_max_stream_data;
  cb->extend_max_remote_streams_bidi = on_extend_max_remote_streams_bidi;
  cb->recv_datagram = on_recv_datagram;
  cb->ack_datagram = on_ack_datagram;
  cb->lost_datagram = on_lost_datagram;
  cb->get_new_connection_id = on_get_new_connection_id;
  cb->remove_connection_id = on_remove_connection_id;
  cb->recv_stateless_reset = on_recv_stateless_reset;
  cb->rand = on_rand;
}

void Connection::setup_settings(ngtcp2_settings *s, ngtcp2_transport_params *p, Timestamp now) {
  ngtcp2_settings_default(s);
  s->initial_ts = now;
  s->handshake_timeout = uint64_t(config_.handshake_timeout_ms) * NGTCP2_MILLISECONDS;
  s->max_window = config_.connection_window * 4;
  s->max_stream_window =
      std::max<uint64_t>(config_.stream_window, config_.max_message_size + kMessageHeaderLen) * 4;
  s->no_pmtud = config_.path_mtu_discovery ? 0 : 1;
  ngtcp2_transport_params_default(p);
  p->initial_max_streams_bidi = 16;
  p->initial_max_streams_uni = 0;
  // A message is only credited once complete, so the window must hold one whole message.
  const uint64_t window = std::max<uint64_t>(config_.stream_window,
                                             config_.max_message_size + kMessageHeaderLen);
  p->initial_max_stream_data_bidi_local = window;
  p->initial_max_stream_data_bidi_remote = window;
  p->initial_max_data = config_.connection_window;
  p->max_idle_timeout = uint64_t(config_.idle_timeout_ms) * NGTCP2_MILLISECONDS;
  p->max_datagram_frame_size = 65535;
  p->active_connection_id_limit = 4;
}

int Connection::prepare(TlsSession::Role role, PeerVerifier verifier, Timestamp now,
                        ngtcp2_callbacks *cb, ngtcp2_settings *settings,
                        ngtcp2_transport_params *params) {
  TlsSessionOptions options;
  if (role == TlsSession::Role::kServer && ep_.config_.h3_app) {
    options.offer_h3 = true;
    options.on_alpn = [this](Alpn alpn) { return on_alpn(alpn); };
  }
  const int r =
      TlsSession::create(role, *ep_.creds_, std::move(verifier), options, get_conn, this, &tls_);
  if (r != kOk) return r;
  setup_callbacks(cb);
  setup_settings(settings, params, now);
  return kOk;
}

void Connection::attach(const ngtcp2_cid &scid) {
  ngtcp2_conn_set_tls_native_handle(conn_, tls_->native_handle());
  ngtcp2_conn_set_keep_alive_timeout(conn_, uint64_t(config_.keepalive_ms) * NGTCP2_MILLISECONDS);
  cids_.push_back(scid);
  ep_.register_cid(scid, this);
}

bool Connection::on_alpn(Alpn alpn) {
  if (alpn != Alpn::kH3) return true;  // parley/1 keeps the parameters it was created with
  if (!app_) {
    app_ = ep_.config_.h3_app(*this);
    if (!app_) return false;
  }
  // HTTP/3 (RFC 9114 6.2): the client opens three unidirectional streams (control, QPACK
  // encoder, decoder) and one bidirectional stream per request; the peer's concurrent requests
  // are bounded here, by QUIC. No DATAGRAMs, and no keep-alive: an HTTP client that goes
  // quiet is let go at the idle timeout rather than held open by our PINGs.
  ngtcp2_transport_params p = *ngtcp2_conn_get_local_transport_params(conn_);
  p.initial_max_streams_bidi = ep_.config_.h3_max_requests;
  p.initial_max_streams_uni = 3;
  p.initial_max_stream_data_bidi_remote = config_.stream_window;
  p.initial_max_stream_data_uni = config_.stream_window;
  p.max_datagram_frame_size = 0;
  if (ngtcp2_conn_set_local_transport_params(conn_, &p) != 0) return false;
  ngtcp2_conn_set_keep_alive_timeout(conn_, UINT64_MAX);
  return true;
}

int Connection::init_client(const ngtcp2_cid &dcid, const ngtcp2_cid &scid,
                            PeerVerifier verifier, Timestamp now) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  int r = prepare(TlsSession::Role::kClient, std::move(verifier), now, &cb, &settings, &params);
  if (r != kOk) return r;
  const ngtcp2_path path = make_path(local_, remote_);
  r = ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                             &params, nullptr, this);
  if (r != 0) return fail(kErrTransport, "ngtcp2_conn_client_new: %s", ngtcp2_strerror(r));
  attach(scid);
  return kOk;
}

int Connection::init_server(const ngtcp2_pkt_hd &hd, const ngtcp2_cid &scid,
                            const ngtcp2_cid *odcid, const uint8_t *token, size_t tokenlen,
                            PeerVerifier verifier, Timestamp now) {
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  int r = prepare(TlsSession::Role::kServer, std::move(verifier), now, &cb, &settings, &params);
  if (r != kOk) return r;
  if (odcid) {
    params.original_dcid = *odcid;
    params.retry_scid = hd.dcid;
    params.retry_scid_present = 1;
    settings.token = token;
    settings.tokenlen = tokenlen;
    settings.token_type = NGTCP2_TOKEN_TYPE_RETRY;
  } else {
    params.original_dcid = hd.dcid;
  }
  params.original_dcid_present = 1;
  params.stateless_reset_token_present = 1;
  if (ep_.stateless_reset_token(scid, params.stateless_reset_token) != kOk) return kErrCrypto;
  const ngtcp2_path path = make_path(local_, remote_);
  r = ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &path, hd.version, &cb, &settings,
                             &params, nullptr, this);
  if (r != 0) return fail(kErrTransport, "ngtcp2_conn_server_new: %s", ngtcp2_strerror(r));
  attach(scid);
  // Retransmitted Initials still carry the client's original DCID: route those here too.
  cids_.push_back(hd.dcid);
  ep_.register_cid(hd.dcid, this);
  return kOk;
}

// --- API ---------------------------------------------------------------------------------

int Connection::open_stream(int64_t *stream_id) {
  if (app_) return fail(kErrInvalidArgument, "not a parley/1 connection");
  if (state_ == State::kHandshake) {
    return fail(kErrInvalidArgument, "streams open once the handshake completed");
  }
  if (state_ != State::kConnected || close_requested_) return fail(kErrClosed, "connection closed");
  const int r = ngtcp2_conn_open_bidi_stream(conn_, stream_id, nullptr);
  if (r == NGTCP2_ERR_STREAM_ID_BLOCKED) return fail(kErrQueueFull, "peer's stream limit reached");
  if (r != 0) return fail(kErrTransport, "open stream: %s", ngtcp2_strerror(r));
  streams_.emplace(*stream_id, Stream(config_.max_message_size));
  ep_.mark_dirty(this);
  return kOk;
}

int Connection::send_message(int64_t stream_id, const uint8_t *data, size_t len) {
  if (app_) return fail(kErrInvalidArgument, "not a parley/1 connection");
  if (state_ != State::kConnected || close_requested_) return fail(kErrClosed, "connection closed");
  if (len > config_.max_message_size) {
    return fail(kErrMessageTooLarge, "message of %zu bytes exceeds the maximum %zu", len,
                config_.max_message_size);
  }
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || it->second.fin_pending) {
    return fail(kErrInvalidArgument, "no open stream %lld", (long long)stream_id);
  }
  if (config_.max_queued_bytes != 0 &&
      queued_bytes() + kMessageHeaderLen + len > config_.max_queued_bytes) {
    return fail(kErrQueueFull, "%llu bytes of signaling already queued (max %zu)",
                (unsigned long long)queued_bytes(), config_.max_queued_bytes);
  }
  it->second.tx.append_message(data, len);
  ep_.mark_dirty(this);
  return kOk;
}

uint64_t Connection::queued_bytes() const {
  uint64_t n = 0;
  for (const auto &kv : streams_) n += kv.second.tx.unacked();
  return n;
}

int Connection::end_stream(int64_t stream_id) {
  if (app_) return fail(kErrInvalidArgument, "not a parley/1 connection");
  if (state_ != State::kConnected || close_requested_) return fail(kErrClosed, "connection closed");
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return fail(kErrInvalidArgument, "no stream %lld", (long long)stream_id);
  it->second.fin_pending = true;
  ep_.mark_dirty(this);
  return kOk;
}

size_t Connection::max_datagram_payload() const {
  if (!conn_ || state_ != State::kConnected) return 0;
  const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(conn_);
  if (rp == nullptr || rp->max_datagram_frame_size == 0) return 0;
  // Packet overhead on a 1-RTT packet: header (1 + CID + up to 4 pn) + AEAD tag 16 + DATAGRAM
  // frame type and length (up to 1 + 8). Stay below the path's UDP payload size.
  const size_t udp = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  const size_t overhead = 1 + kCidLen + 4 + 16 + 1 + 8;
  size_t n = udp > overhead ? udp - overhead : 0;
  if (n > rp->max_datagram_frame_size) n = size_t(rp->max_datagram_frame_size);
  return n < kMaxDatagramPayload ? n : kMaxDatagramPayload;
}

int Connection::send_datagram(const uint8_t *data, size_t len) {
  if (app_) return fail(kErrInvalidArgument, "not a parley/1 connection");
  if (state_ != State::kConnected || close_requested_) return fail(kErrClosed, "connection closed");
  const size_t max = max_datagram_payload();
  if (len > max) {
    ++stats_.datagrams_refused;
    return fail(kErrMessageTooLarge, "datagram of %zu bytes exceeds %zu", len, max);
  }
  if (dgram_count_ == config_.datagram_queue) {
    ++stats_.datagrams_refused;
    return fail(kErrQueueFull, "datagram queue full");
  }
  if (!dgram_slots_) {
    dgram_slots_.reset(new uint8_t[config_.datagram_queue * kMaxDatagramPayload]);
    dgram_lens_.reset(new uint16_t[config_.datagram_queue]);
  }
  const size_t slot = (dgram_head_ + dgram_count_) % config_.datagram_queue;
  if (len != 0) std::memcpy(dgram_slot(slot), data, len);  // an empty one may come as NULL
  dgram_lens_[slot] = uint16_t(len);
  ++dgram_count_;
  ep_.mark_dirty(this);
  return kOk;
}

void Connection::close(uint64_t app_code, const std::string &reason) {
  if (close_requested_ || state_ == State::kClosing || state_ == State::kDraining ||
      state_ == State::kClosed) {
    return;
  }
  // Deferred to the next write: ngtcp2 must not write from inside its own callbacks, where a
  // handler may well call this.
  close_requested_ = true;
  close_info_.error = kOk;
  close_info_.by_peer = false;
  close_info_.app_code = app_code;
  close_info_.reason = reason;
  ep_.mark_dirty(this);
}

PathStats Connection::stats() const {
  PathStats s = stats_;
  if (conn_) {
    ngtcp2_conn_info ci;
    ngtcp2_conn_get_conn_info(conn_, &ci);
    s.smoothed_rtt = ci.smoothed_rtt;
    s.rtt_variance = ci.rttvar;
    s.min_rtt = ci.min_rtt == UINT64_MAX ? 0 : ci.min_rtt;
    s.latest_rtt = ci.latest_rtt;
    s.cwnd = ci.cwnd;
    s.bytes_in_flight = ci.bytes_in_flight;
  }
  s.max_datagram_payload = max_datagram_payload();
  return s;
}

const char *Connection::alpn() const {
  switch (tls_ ? tls_->alpn() : Alpn::kNone) {
    case Alpn::kParley: return kAlpn;
    case Alpn::kH3: return kAlpnH3;
    case Alpn::kNone: break;
  }
  return "";
}

// --- StreamApp support -----------------------------------------------------------------------

int Connection::open_uni_stream(int64_t *stream_id) {
  if (state_ != State::kConnected || close_requested_) return fail(kErrClosed, "connection closed");
  const int r = ngtcp2_conn_open_uni_stream(conn_, stream_id, nullptr);
  if (r == NGTCP2_ERR_STREAM_ID_BLOCKED) return fail(kErrQueueFull, "peer's stream limit reached");
  if (r != 0) return fail(kErrTransport, "open stream: %s", ngtcp2_strerror(r));
  ep_.mark_dirty(this);
  return kOk;
}

void Connection::consume(int64_t stream_id, size_t n) {
  if (!conn_ || n == 0) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
  ep_.mark_dirty(this);  // the new credit goes out with the next write
}

void Connection::shutdown_stream_read(int64_t stream_id, uint64_t app_error_code) {
  if (conn_) ngtcp2_conn_shutdown_stream_read(conn_, 0, stream_id, app_error_code);
  ep_.mark_dirty(this);
}

void Connection::shutdown_stream_write(int64_t stream_id, uint64_t app_error_code) {
  if (conn_) ngtcp2_conn_shutdown_stream_write(conn_, 0, stream_id, app_error_code);
  ep_.mark_dirty(this);
}

uint64_t Connection::max_peer_bidi_streams() const {
  return conn_ ? ngtcp2_conn_get_local_transport_params(conn_)->initial_max_streams_bidi : 0;
}

void Connection::resume() { ep_.mark_dirty(this); }

int Connection::app_failed() {
  app_error_ = true;
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

// --- packets in, packets out -----------------------------------------------------------------

void Connection::on_packet(const SocketAddress &local, const SocketAddress &from,
                           const uint8_t *data, size_t len, Timestamp now) {
  ++stats_.packets_received;
  ep_.mark_dirty(this);
  if (state_ == State::kClosing) {
    // Answer the peer (not any address) that keeps talking with our CONNECTION_CLOSE,
    // exponentially less often, and never more than 3x what it sent (anti-amplification).
    ++close_resends_;
    if ((close_resends_ & (close_resends_ - 1)) == 0 && !close_packet_.empty() &&
        from == remote_ && close_packet_.size() <= 3 * len) {
      ep_.send(from, close_packet_.data(), close_packet_.size());
    }
    return;
  }
  if (state_ == State::kDraining || state_ == State::kClosed) return;
  const ngtcp2_path path = make_path(local, from);
  ngtcp2_pkt_info pi{};
  const int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, data, len, now);
  if (rv == 0) {
    if (ngtcp2_conn_get_path(conn_)->remote.addrlen != 0) {
      remote_ = SocketAddress::from_sockaddr(
          reinterpret_cast<const struct sockaddr *>(ngtcp2_conn_get_path(conn_)->remote.addr));
    }
    if (message_too_large_ && !close_requested_) {
      close(kAppMessageTooLarge, "signaling message too large");
      close_info_.error = kErrMessageTooLarge;
    }
    return;
  }
  if (rv == NGTCP2_ERR_DRAINING) {
    // The peer closed: report why, then stay silent for the draining period.
    const ngtcp2_ccerr *cc = ngtcp2_conn_get_ccerr(conn_);
    CloseInfo info;
    info.by_peer = true;
    if (cc->reason && cc->reasonlen) info.reason.assign(reinterpret_cast<const char *>(cc->reason), cc->reasonlen);
    if (got_stateless_reset_) {
      info.error = kErrTransport;
      info.reason = "stateless reset";
    } else if (cc->type == NGTCP2_CCERR_TYPE_APPLICATION) {
      info.error = kOk;
      info.app_code = cc->error_code;
      if (cc->error_code == kAppMessageTooLarge) info.error = kErrMessageTooLarge;
    } else if (cc->type == NGTCP2_CCERR_TYPE_TRANSPORT &&
               (cc->error_code & ~uint64_t(0xff)) == NGTCP2_CRYPTO_ERROR &&
               is_identity_alert(uint8_t(cc->error_code & 0xff))) {
      info.error = kErrPeerIdentity;
      if (info.reason.empty()) info.reason = "the peer refused this identity";
    } else if (cc->type == NGTCP2_CCERR_TYPE_TRANSPORT && cc->error_code == NGTCP2_NO_ERROR) {
      info.error = kOk;
    } else {
      info.error = kErrTransport;
    }
    set_state(State::kDraining);
    close_deadline_ = now + 3 * ngtcp2_conn_get_pto(conn_);
    close_info_ = info;
    emit_close_event();
    return;
  }
  if (rv == NGTCP2_ERR_DROP_CONN || rv == NGTCP2_ERR_RETRY) {
    // RETRY: the client's first flight arrived out of order; it retransmits, and the next
    // attempt starts afresh.
    CloseInfo info;
    info.error = kErrTransport;
    info.reason = "connection dropped";
    enter_closed(info);
    return;
  }
  fail_with(rv, now);
}

void Connection::fail_with(int rv, Timestamp now) {
  ngtcp2_ccerr ccerr;
  ngtcp2_ccerr_default(&ccerr);
  if (app_error_ && app_) {
    ngtcp2_ccerr_set_application_error(&ccerr, app_->error_code(), nullptr, 0);
  } else if (rv == NGTCP2_ERR_CRYPTO) {
    ngtcp2_ccerr_set_tls_alert(&ccerr, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
  } else {
    ngtcp2_ccerr_set_liberr(&ccerr, rv, nullptr, 0);
  }
  CloseInfo info;
  info.by_peer = false;
  if (tls_ && tls_->identity_rejected()) {
    info.error = kErrPeerIdentity;
    info.reason = tls_->rejection_reason();
  } else if (tls_ && tls_->alpn_rejected()) {
    info.error = kErrTransport;
    info.reason = tls_->rejection_reason();
  } else if (rv == NGTCP2_ERR_CRYPTO && is_identity_alert(ngtcp2_conn_get_tls_alert(conn_))) {
    // GnuTLS refused the peer's certificate before our verify callback saw it, e.g. none at
    // all where one is required: still an identity refusal, as the peer will report it.
    const uint8_t alert = ngtcp2_conn_get_tls_alert(conn_);
    info.error = kErrPeerIdentity;
    info.reason = alert == 116 /* certificate_required */
                      ? "peer presented no certificate"
                      : "peer certificate refused (TLS alert " + std::to_string(alert) + ")";
  } else if (rv == NGTCP2_ERR_CRYPTO && ngtcp2_conn_get_tls_alert(conn_) == 120) {
    // no_application_protocol: GnuTLS found no ALPN in common (before our own checks ran).
    info.error = kErrTransport;
    info.reason = "peer offered no ALPN this endpoint serves";
  } else if (app_error_) {
    info.error = kErrTransport;
    info.reason = std::string(alpn()) + " protocol error";
  } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT || rv == NGTCP2_ERR_IDLE_CLOSE) {
    info.error = kErrTimeout;
    info.reason = rv == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : "handshake timeout";
  } else {
    info.error = kErrTransport;
    info.reason = ngtcp2_strerror(rv);
  }
  PARLEY_LOG(kLogInfo, "quic", "connection with %s failed: %s", remote_.to_string().c_str(),
             info.reason.c_str());
  if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    enter_closed(info);  // silent close: the peer is gone or never came
    return;
  }
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  const ngtcp2_ssize n =
      ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, ep_.tx(), kMaxUdpPayload, &ccerr, now);
  if (n > 0) {
    close_packet_.assign(ep_.tx(), ep_.tx() + n);
    send_packet(ps.path, ep_.tx(), size_t(n));
  }
  set_state(State::kClosing);
  close_deadline_ = now + 3 * ngtcp2_conn_get_pto(conn_);
  close_info_ = info;
  emit_close_event();
}

void Connection::enter_closed(const CloseInfo &info) {
  close_info_ = info;
  emit_close_event();
  set_state(State::kClosed);
}

void Connection::emit_close_event() {
  if (close_event_sent_) return;
  close_event_sent_ = true;
  Event e{EventType::kClosed};
  e.close = &close_info_;
  if (handler_) handler_(*this, e);
}

void Connection::send_packet(const ngtcp2_path &path, const uint8_t *data, size_t len) {
  ++stats_.packets_sent;
  ep_.send(SocketAddress::from_sockaddr(reinterpret_cast<const struct sockaddr *>(path.remote.addr)),
           data, len);
}

void Connection::write(Timestamp now) {
  if (state_ != State::kHandshake && state_ != State::kConnected) return;
  if (close_requested_) {
    ngtcp2_ccerr ccerr;
    ngtcp2_ccerr_default(&ccerr);
    ngtcp2_ccerr_set_application_error(
        &ccerr, close_info_.app_code,
        reinterpret_cast<const uint8_t *>(close_info_.reason.data()), close_info_.reason.size());
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, ep_.tx(),
                                                              kMaxUdpPayload, &ccerr, now);
    if (n > 0) {
      close_packet_.assign(ep_.tx(), ep_.tx() + n);
      send_packet(ps.path, ep_.tx(), size_t(n));
    }
    set_state(State::kClosing);
    close_deadline_ = now + 3 * ngtcp2_conn_get_pto(conn_);
    emit_close_event();
    return;
  }
  if (app_) {
    write_app(now);
    return;
  }
  std::vector<int64_t> blocked;  // streams that cannot send more this round
  for (int packets = 0; packets < 64; ++packets) {
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    const size_t cap = kMaxUdpPayload;
    ngtcp2_ssize n;
    if (dgram_count_ > 0 && state_ == State::kConnected) {
      ngtcp2_vec v = {dgram_slot(dgram_head_), dgram_lens_[dgram_head_]};
      int accepted = 0;
      // An empty DATAGRAM goes as no vector at all: ngtcp2 asserts on a zero-length one.
      n = ngtcp2_conn_writev_datagram(conn_, &ps.path, &pi, ep_.tx(), cap, &accepted,
                                      NGTCP2_WRITE_DATAGRAM_FLAG_NONE, next_dgram_id_, &v,
                                      v.len != 0 ? 1 : 0, now);
      bool pop = accepted != 0;
      if (n < 0 && !ngtcp2_err_is_fatal(int(n))) {
        // Cannot be sent on this connection/path (e.g. too large after a path change).
        ++stats_.datagrams_dropped;
        pop = true;
        n = 0;
      } else if (accepted) {
        ++stats_.datagrams_sent;
        ++next_dgram_id_;
      }
      if (pop) {
        dgram_head_ = (dgram_head_ + 1) % config_.datagram_queue;
        --dgram_count_;
      }
      if (n < 0) {
        fail_with(int(n), now);
        return;
      }
      if (n == 0) {
        if (pop) continue;
        if (dgram_lens_[dgram_head_] > max_datagram_payload()) {
          // The path shrank under it (e.g. a new path restarts at 1200 bytes): it will never
          // fit, and it must not hold up everything queued behind it.
          ++stats_.datagrams_dropped;
          dgram_head_ = (dgram_head_ + 1) % config_.datagram_queue;
          --dgram_count_;
          continue;
        }
        break;  // congestion or pacing limited: try again at the next expiry
      }
      send_packet(ps.path, ep_.tx(), size_t(n));
      continue;
    }
    int64_t sid = -1;
    const uint8_t *sdata = nullptr;
    size_t slen = 0;
    bool fin = false;
    for (auto &kv : streams_) {
      if (std::find(blocked.begin(), blocked.end(), kv.first) != blocked.end()) continue;
      Stream &st = kv.second;
      const bool has_data = st.tx.peek(&sdata, &slen);
      if (has_data || (st.fin_pending && !st.fin_sent)) {
        sid = kv.first;
        if (!has_data) slen = 0;
        // FIN rides with the last bytes (peek returns one chunk: the last if nothing follows).
        fin = st.fin_pending && !st.fin_sent && st.tx.unsent() == slen;
        break;
      }
    }
    if (sid >= 0) {
      ngtcp2_vec v = {const_cast<uint8_t *>(sdata), slen};
      ngtcp2_ssize written = -1;
      n = ngtcp2_conn_writev_stream(
          conn_, &ps.path, &pi, ep_.tx(), cap, &written,
          fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : NGTCP2_WRITE_STREAM_FLAG_NONE, sid, &v,
          slen ? 1 : 0, now);
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
          n == NGTCP2_ERR_STREAM_NOT_FOUND) {
        blocked.push_back(sid);
        continue;
      }
      if (n < 0) {
        fail_with(int(n), now);
        return;
      }
      if (written >= 0) {
        Stream &st = streams_.at(sid);
        st.tx.advance(size_t(written));
        if (fin && size_t(written) == slen) st.fin_sent = true;
      }
      if (n == 0) break;
      send_packet(ps.path, ep_.tx(), size_t(n));
      continue;
    }
    n = ngtcp2_conn_write_pkt(conn_, &ps.path, &pi, ep_.tx(), cap, now);
    if (n < 0) {
      fail_with(int(n), now);
      return;
    }
    if (n == 0) break;
    send_packet(ps.path, ep_.tx(), size_t(n));
  }
  ngtcp2_conn_update_pkt_tx_time(conn_, now);
}

// The nghttp3 way of feeding ngtcp2 (as in ngtcp2's own example server): ask the app for
// stream data, let ngtcp2 pack it, tell the app what was taken; NGTCP2_WRITE_STREAM_FLAG_MORE
// lets several streams share one packet (ngtcp2 then returns NGTCP2_ERR_WRITE_MORE and keeps
// the packet open in the same buffer).
void Connection::write_app(Timestamp now) {
  int packets = 0;
  // Every round either fills a packet or changes the app's state (data taken, a stream
  // blocked or shut); the cap only guards against an app that keeps offering the impossible.
  for (int round = 0; round < 4096 && packets < 64; ++round) {
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    StreamApp::Outgoing out;
    if (state_ == State::kConnected && ngtcp2_conn_get_max_data_left(conn_) > 0) {
      if (app_->next_outgoing(&out) < 0) {
        app_error_ = true;
        fail_with(NGTCP2_ERR_CALLBACK_FAILURE, now);
        return;
      }
    }
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    if (out.fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    ngtcp2_ssize taken = -1;
    const ngtcp2_ssize n =
        ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, ep_.tx(), kMaxUdpPayload, &taken, flags,
                                  out.stream_id, out.vecs, out.count, now);
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
      app_->on_blocked(out.stream_id);
      continue;
    }
    if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
      app_->on_write_shut(out.stream_id);
      continue;
    }
    if (taken >= 0 && out.stream_id >= 0 && app_->on_sent(out.stream_id, size_t(taken)) < 0) {
      app_error_ = true;
      fail_with(NGTCP2_ERR_CALLBACK_FAILURE, now);
      return;
    }
    if (n == NGTCP2_ERR_WRITE_MORE) continue;  // room left in this packet
    if (n < 0) {
      fail_with(int(n), now);
      return;
    }
    if (n == 0) break;  // nothing more, or congestion / pacing limited
    send_packet(ps.path, ep_.tx(), size_t(n));
    ++packets;
  }
  ngtcp2_conn_update_pkt_tx_time(conn_, now);
}

Timestamp Connection::expiry() const {
  if (state_ == State::kClosing || state_ == State::kDraining) return close_deadline_;
  if (state_ == State::kClosed || !conn_) return 0;
  const ngtcp2_tstamp t = ngtcp2_conn_get_expiry(conn_);
  return t == UINT64_MAX ? 0 : t;
}

void Connection::on_expiry(Timestamp now) {
  if (state_ == State::kClosing || state_ == State::kDraining) {
    if (now >= close_deadline_) set_state(State::kClosed);
    return;
  }
  if (state_ == State::kClosed) return;
  const int rv = ngtcp2_conn_handle_expiry(conn_, now);
  if (rv != 0) fail_with(rv, now);
}

// --- ngtcp2 callbacks ----------------------------------------------------------------------

int Connection::on_handshake_completed(ngtcp2_conn *, void *user) {
  Connection *c = self(user);
  c->set_state(State::kConnected);
  if (c->app_ && c->app_->on_connected() < 0) return c->app_failed();
  Event e{EventType::kConnected};
  if (c->handler_) c->handler_(*c, e);
  return 0;
}

int Connection::on_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                                    uint64_t, const uint8_t *data, size_t len, void *user,
                                    void *) {
  Connection *c = self(user);
  if (c->app_) {
    const int64_t credit = c->app_->on_stream_data(
        stream_id, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
    if (credit < 0) return c->app_failed();
    if (credit > 0) {
      ngtcp2_conn_extend_max_stream_offset(conn, stream_id, uint64_t(credit));
      ngtcp2_conn_extend_max_offset(conn, uint64_t(credit));
    }
    return 0;
  }
  auto it = c->streams_.find(stream_id);
  if (it == c->streams_.end()) {
    it = c->streams_.emplace(stream_id, Stream(c->config_.max_message_size)).first;
  }
  const size_t held_before = it->second.rx.buffered();
  const int r = it->second.rx.feed(data, len, [&](const uint8_t *m, size_t n) {
    Event e{EventType::kMessage};
    e.stream_id = stream_id;
    e.data = m;
    e.len = n;
    if (c->handler_) c->handler_(*c, e);
  });
  if (r != kOk) {
    c->message_too_large_ = true;  // closed after read_pkt returns
    return 0;
  }
  // Credit back only what left the reassembler as whole messages: bytes of a partial message
  // stay charged to the peer's window.
  auto again = c->streams_.find(stream_id);  // a handler may have touched the map
  const size_t held_after = again == c->streams_.end() ? 0 : again->second.rx.buffered();
  const size_t consumed = held_before + len - held_after;
  if (consumed) {
    ngtcp2_conn_extend_max_stream_offset(conn, stream_id, consumed);
    ngtcp2_conn_extend_max_offset(conn, consumed);
  }
  if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && again != c->streams_.end() &&
      !again->second.fin_pending) {
    again->second.fin_pending = true;  // the peer ended it: end ours too, freeing the slot
  }
  return 0;
}

int Connection::on_acked_stream_data(ngtcp2_conn *, int64_t stream_id, uint64_t offset,
                                     uint64_t len, void *user, void *) {
  Connection *c = self(user);
  if (c->app_) return c->app_->on_acked(stream_id, len) < 0 ? c->app_failed() : 0;
  auto it = c->streams_.find(stream_id);
  if (it != c->streams_.end()) it->second.tx.acked_to(offset + len);
  return 0;
}

int Connection::on_stream_open(ngtcp2_conn *, int64_t stream_id, void *user) {
  Connection *c = self(user);
  if (c->app_) return 0;  // the app learns of streams from their data
  c->streams_.emplace(stream_id, Stream(c->config_.max_message_size));
  return 0;
}

int Connection::on_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                                uint64_t app_error_code, void *user, void *) {
  Connection *c = self(user);
  if (c->app_) {
    const bool has_code = (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0;
    if (c->app_->on_stream_close(stream_id, has_code, app_error_code) < 0) {
      return c->app_failed();
    }
  } else {
    c->streams_.erase(stream_id);
  }
  // A closed peer-opened stream gives the peer its slot back (MAX_STREAMS). Only
  // bidirectional ones: an h3 peer's three unidirectional streams live as long as the
  // connection, and parley/1 allows the peer none.
  if (!ngtcp2_conn_is_local_stream(conn, stream_id) && ngtcp2_is_bidi_stream(stream_id)) {
    ngtcp2_conn_extend_max_streams_bidi(conn, 1);
  }
  return 0;
}

int Connection::on_stream_reset(ngtcp2_conn *, int64_t stream_id, uint64_t, uint64_t app_error_code,
                                void *user, void *) {
  Connection *c = self(user);
  if (c->app_ && c->app_->on_stream_reset(stream_id, app_error_code) < 0) return c->app_failed();
  return 0;
}

int Connection::on_stream_stop_sending(ngtcp2_conn *, int64_t stream_id, uint64_t app_error_code,
                                       void *user, void *) {
  Connection *c = self(user);
  if (c->app_ && c->app_->on_stop_sending(stream_id, app_error_code) < 0) return c->app_failed();
  return 0;
}

int Connection::on_extend_max_stream_data(ngtcp2_conn *, int64_t stream_id, uint64_t, void *user,
                                          void *) {
  Connection *c = self(user);
  if (c->app_ && c->app_->on_stream_credit(stream_id) < 0) return c->app_failed();
  return 0;
}

int Connection::on_extend_max_remote_streams_bidi(ngtcp2_conn *, uint64_t max_streams,
                                                  void *user) {
  Connection *c = self(user);
  if (c->app_) c->app_->on_max_remote_bidi_streams(max_streams);
  return 0;
}

int Connection::on_recv_datagram(ngtcp2_conn *, uint32_t, const uint8_t *data, size_t len,
                                 void *user) {
  Connection *c = self(user);
  ++c->stats_.datagrams_received;
  Event e{EventType::kDatagram};
  e.data = data;
  e.len = len;
  if (c->handler_) c->handler_(*c, e);
  return 0;
}

int Connection::on_ack_datagram(ngtcp2_conn *, uint64_t, void *user) {
  ++self(user)->stats_.datagrams_acked;
  return 0;
}

int Connection::on_lost_datagram(ngtcp2_conn *, uint64_t, void *user) {
  ++self(user)->stats_.datagrams_lost;
  return 0;
}

int Connection::on_get_new_connection_id(ngtcp2_conn *, ngtcp2_cid *cid, uint8_t *token,
                                         size_t cidlen, void *user) {
  Connection *c = self(user);
  cid->datalen = cidlen;
  randombytes_buf(cid->data, cidlen);
  if (c->ep_.stateless_reset_token(*cid, token) != kOk) return NGTCP2_ERR_CALLBACK_FAILURE;
  c->cids_.push_back(*cid);
  c->ep_.register_cid(*cid, c);
  return 0;
}

int Connection::on_remove_connection_id(ngtcp2_conn *, const ngtcp2_cid *cid, void *user) {
  Connection *c = self(user);
  c->ep_.unregister_cid(*cid);
  for (auto it = c->cids_.begin(); it != c->cids_.end(); ++it) {
    if (ngtcp2_cid_eq(&*it, cid)) {
      c->cids_.erase(it);
      break;
    }
  }
  return 0;
}

int Connection::on_recv_stateless_reset(ngtcp2_conn *, const ngtcp2_pkt_stateless_reset *,
                                        void *user) {
  self(user)->got_stateless_reset_ = true;
  return 0;
}

void Connection::on_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *) {
  randombytes_buf(dest, len);
}

}  // namespace parley::quic

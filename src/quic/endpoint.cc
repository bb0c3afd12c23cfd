#include "quic/endpoint.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "quic/tls.h"

namespace parley::quic {

namespace {

ngtcp2_cid random_cid() {
  ngtcp2_cid c;
  c.datalen = kCidLen;
  randombytes_buf(c.data, kCidLen);
  return c;
}

// Endpoint secrets derive from the identity seed with domain separation, so they survive a
// restart (stateless resets for connections of the previous process keep working).
int derive(const identity::Identity &id, const char *label, identity::SecretBuffer *out) {
  int r = out->allocate(32);
  if (r != kOk) return r;
  if (crypto_generichash(out->data(), 32, reinterpret_cast<const uint8_t *>(label),
                         std::strlen(label), id.seed(), 32) != 0) {
    return fail(kErrCrypto, "secret derivation failed");
  }
  return kOk;
}

}  // namespace

Endpoint::CidKey Endpoint::cid_key(const uint8_t *data, size_t len) {
  CidKey k;
  k.len = uint8_t(len > NGTCP2_MAX_CIDLEN ? NGTCP2_MAX_CIDLEN : len);
  std::memcpy(k.data, data, k.len);
  return k;
}

Endpoint::Endpoint(const identity::Identity &id, EndpointConfig config, SendFn send)
    : id_(id), config_(std::move(config)), send_(std::move(send)) {
  if (config_.h3_app) {
    // The ALPN is known only mid-handshake: h3 connections are counted (and capped) here, as
    // their app is made, and uncounted when reaped.
    config_.h3_app = [this, inner = std::move(config_.h3_app)](
                         Connection &c) -> std::unique_ptr<StreamApp> {
      if (config_.h3_max_connections != 0 && h3_live_ >= config_.h3_max_connections) {
        ++stats_.refused_h3;
        return nullptr;
      }
      std::unique_ptr<StreamApp> app = inner(c);
      if (!app) return nullptr;
      if (config_.h3_idle_timeout_ms != 0) {
        // The transport parameters are not sent yet (on_alpn runs on the ClientHello).
        ngtcp2_transport_params p = *ngtcp2_conn_get_local_transport_params(c.conn_);
        p.max_idle_timeout = uint64_t(config_.h3_idle_timeout_ms) * NGTCP2_MILLISECONDS;
        if (ngtcp2_conn_set_local_transport_params(c.conn_, &p) != 0) return nullptr;
      }
      ++h3_live_;
      return app;
    };
  }
}

Endpoint::~Endpoint() = default;

int Endpoint::create(const identity::Identity &id, EndpointConfig config, SendFn send,
                     std::unique_ptr<Endpoint> *out) {
  std::unique_ptr<Endpoint> ep(new Endpoint(id, std::move(config), std::move(send)));
  int r = TlsCredentials::create(id, &ep->creds_);
  if (r == kOk) r = derive(id, "parley quic stateless reset v1", &ep->reset_secret_);
  // Retry tokens live seconds: a secret random per process is enough, and one that no
  // restart or seed leak can reproduce.
  if (r == kOk) r = ep->token_secret_.allocate(32);
  if (r != kOk) return r;
  randombytes_buf(ep->token_secret_.data(), ep->token_secret_.size());
  *out = std::move(ep);
  return kOk;
}

void Endpoint::send(const SocketAddress &to, const uint8_t *data, size_t len) {
  ++stats_.packets_out;
  TxPacket &p = tx_batch_[tx_count_];
  if (data != p.data) std::memcpy(p.data, data, std::min(len, kMaxUdpPayload));
  p.to = to;
  p.len = std::min(len, kMaxUdpPayload);
  if (++tx_count_ == kTxBatch) flush_tx();
}

void Endpoint::flush_tx() {
  if (tx_count_ == 0) return;
  if (batch_send_) {
    batch_send_(tx_batch_.get(), tx_count_);
  } else {
    for (size_t i = 0; i < tx_count_; ++i) {
      send_(tx_batch_[i].to, tx_batch_[i].data, tx_batch_[i].len);
    }
  }
  tx_count_ = 0;
}

void Endpoint::register_cid(const ngtcp2_cid &cid, Connection *c) {
  by_cid_[cid_key(cid.data, cid.datalen)] = c;
}

void Endpoint::unregister_cid(const ngtcp2_cid &cid) {
  by_cid_.erase(cid_key(cid.data, cid.datalen));
}

int Endpoint::stateless_reset_token(const ngtcp2_cid &cid, uint8_t *token) const {
  if (crypto::generate_stateless_reset_token(token, reset_secret_.data(),
                                                   reset_secret_.size(), &cid) != 0) {
    return fail(kErrCrypto, "stateless reset token derivation failed");
  }
  return kOk;
}

void Endpoint::adopt(std::unique_ptr<Connection> c) {
  Connection *raw = c.get();
  ++handshaking_;
  conns_.emplace(raw, std::move(c));
  mark_dirty(raw);
}

void Endpoint::mark_dirty(Connection *c) {
  if (c->dirty_) return;
  c->dirty_ = true;
  dirty_.push_back(c);
}

void Endpoint::update_timer(Connection *c) {
  const Timestamp t = c->expiry();
  if (t == c->timer_key_) return;
  // Expiries move with nearly every packet: the set's node is re-keyed (extract + insert),
  // never freed and allocated again, so steady-state traffic does not allocate here.
  if (c->timer_key_ != 0) spare_timers_.push_back(timers_.extract({c->timer_key_, c}));
  c->timer_key_ = t;
  if (t == 0) return;
  if (spare_timers_.empty()) {
    timers_.insert({t, c});
  } else {
    spare_timers_.back().value() = {t, c};
    timers_.insert(std::move(spare_timers_.back()));
    spare_timers_.pop_back();
  }
}

int Endpoint::connect(const SocketAddress &remote, PeerVerifier verify, EventHandler handler,
                      Timestamp now, Connection **out) {
  if (!remote.is_set() || !verify) {
    return fail(kErrInvalidArgument, "connect needs a remote address and a peer verifier");
  }
  if (conns_.size() >= config_.max_connections) {
    return fail(kErrQueueFull, "endpoint has %zu connections already", conns_.size());
  }
  std::unique_ptr<Connection> c(
      new Connection(*this, Connection::Role::kClient, local_for(remote), remote, config_.connection));
  c->set_handler(std::move(handler));
  ngtcp2_cid dcid = random_cid(), scid = random_cid();
  const int r = c->init_client(dcid, scid, std::move(verify), now);
  if (r != kOk) {
    for (const auto &cid : c->cids_) unregister_cid(cid);
    return r;
  }
  *out = c.get();
  adopt(std::move(c));
  return kOk;
}

void Endpoint::handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                               Timestamp now) {
  ++stats_.packets_in;
  ++in_dispatch_;
  dispatch(data, len, from, now);
  --in_dispatch_;
  flush_tx();  // Retry, version negotiation, resets, close re-sends
}

void Endpoint::dispatch(const uint8_t *data, size_t len, const SocketAddress &from,
                        Timestamp now) {
  if (len == 0) {  // ngtcp2 asserts on it (the socket demultiplexers never pass one)
    ++stats_.dropped_malformed;
    return;
  }
  ngtcp2_version_cid vc;
  const int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, kCidLen);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (len >= 1200) send_version_negotiation(vc.dcid, vc.dcidlen, vc.scid, vc.scidlen, from);
    return;
  }
  if (rv != 0) {
    ++stats_.dropped_malformed;
    return;
  }
  auto it = by_cid_.find(cid_key(vc.dcid, vc.dcidlen));
  if (it != by_cid_.end()) {
    it->second->on_packet(local_for(from), from, data, len, now);
    return;
  }
  if (data[0] & 0x80) {
    accept_initial(data, len, from, now);
    return;
  }
  // A short-header packet for no CID of ours: a stateless reset from a peer that lost our
  // connection carries random bytes where the CID would be, so offer it to every connection
  // with that peer (route by remote address; with both roles on one socket there can be
  // two), each of which checks its reset token.
  bool offered = false;
  for (auto &kv : conns_) {
    if (kv.first->remote() == from) {
      kv.first->on_packet(local_for(from), from, data, len, now);
      offered = true;
    }
  }
  if (!offered) send_stateless_reset(vc.dcid, vc.dcidlen, len, from, now);
}

void Endpoint::accept_initial(const uint8_t *data, size_t len, const SocketAddress &from,
                              Timestamp now) {
  if (!config_.accept_incoming || !accept_) {
    ++stats_.dropped_unroutable;
    return;
  }
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0) {
    ++stats_.dropped_malformed;  // not an acceptable Initial (or a stray long header packet)
    return;
  }
  if (conns_.size() - h3_live_ >= config_.max_connections) {
    ++stats_.refused_full;
    refuse(hd, from, kRefusedFull);
    return;
  }
  const SourceKey addr_key = source_key(from, false), net_key = source_key(from, true);
  const size_t per_addr = source_count(addr_key), per_net = source_count(net_key);
  const size_t max_addr = config_.max_connections_per_address;
  const size_t max_net = config_.max_connections_per_network;
  if (max_addr != 0 && per_addr >= max_addr) {
    ++stats_.refused_address;
    refuse(hd, from, kRefusedAddress);
    return;
  }
  if (max_net != 0 && per_net >= max_net) {
    ++stats_.refused_network;
    refuse(hd, from, kRefusedNetwork);
    return;
  }
  ngtcp2_cid odcid;
  bool validated = false;
  if (hd.type == NGTCP2_PKT_INITIAL && hd.tokenlen > 0) {
    const int r = crypto::verify_retry_token(
        &odcid, hd.token, hd.tokenlen, token_secret_.data(), token_secret_.size(), hd.version,
        reinterpret_cast<const ngtcp2_sockaddr *>(from.sockaddr_ptr()), from.sockaddr_len(),
        &hd.dcid, uint64_t(config_.retry_token_lifetime_ms) * NGTCP2_MILLISECONDS, now);
    if (r == 0) {
      validated = true;
    } else {
      // Not a token of ours (or expired): RFC 9000 8.1.3 — treat it as absent.
      ++stats_.invalid_tokens;
    }
  }
  const bool busy_source =
      (max_addr != 0 && per_addr * 2 >= max_addr) || (max_net != 0 && per_net * 2 >= max_net);
  if (!validated && (handshaking_count() >= config_.retry_when_handshaking_over ||
                     conns_.size() >= config_.retry_when_connections_over || busy_source)) {
    const ngtcp2_cid retry_scid = random_cid();
    uint8_t token[crypto::kMaxRetryTokenLen];
    const ngtcp2_ssize tl = crypto::generate_retry_token(
        token, token_secret_.data(), token_secret_.size(), hd.version,
        reinterpret_cast<const ngtcp2_sockaddr *>(from.sockaddr_ptr()), from.sockaddr_len(),
        &retry_scid, &hd.dcid, now);
    if (tl < 0) return;
    const ngtcp2_ssize n = crypto::write_retry(tx(), kMaxUdpPayload, hd.version, &hd.scid,
                                                     &retry_scid, &hd.dcid, token, size_t(tl));
    if (n > 0) {
      ++stats_.retries_sent;
      send(from, tx(), size_t(n));
    }
    return;
  }
  Incoming inc = accept_(from);
  if (!inc.verify) {
    ++stats_.dropped_unroutable;
    return;
  }
  std::unique_ptr<Connection> c(
      new Connection(*this, Connection::Role::kServer, local_for(from), from, config_.connection));
  c->set_handler(std::move(inc.handler));
  const int r = c->init_server(hd, random_cid(), validated ? &odcid : nullptr,
                               validated ? hd.token : nullptr, validated ? hd.tokenlen : 0,
                               std::move(inc.verify), now);
  if (r != kOk) {
    for (const auto &cid : c->cids_) unregister_cid(cid);
    PARLEY_LOG(kLogWarn, "quic", "cannot accept connection from %s: %s",
               from.to_string().c_str(), last_error_message());
    return;
  }
  ++stats_.accepted;
  Connection *raw = c.get();
  origin_.emplace(raw, from);
  ++per_source_[addr_key];
  ++per_source_[net_key];
  adopt(std::move(c));
  raw->on_packet(local_for(from), from, data, len, now);
}

Endpoint::SourceKey Endpoint::source_key(const SocketAddress &a, bool network) {
  SourceKey k{};
  const size_t len = a.ip_len();
  const size_t take = !network ? len : len == 4 ? 3 : len == 16 ? 8 : 0;  // /24, /64
  k[0] = network ? 2 : 1;
  k[1] = uint8_t(take);
  if (take) std::memcpy(k.data() + 2, a.ip_bytes(), take);
  return k;
}

size_t Endpoint::source_count(const SourceKey &k) const {
  auto it = per_source_.find(k);
  return it == per_source_.end() ? 0 : it->second;
}

void Endpoint::refuse(const ngtcp2_pkt_hd &hd, const SocketAddress &to, const char *reason) {
  // Smaller than the Initial it answers (>= 1200 bytes): no amplification.
  const ngtcp2_ssize n = crypto::write_connection_close(
      tx(), kMaxUdpPayload, hd.version, &hd.scid, &hd.dcid, NGTCP2_CONNECTION_REFUSED,
      reinterpret_cast<const uint8_t *>(reason), std::strlen(reason));
  if (n > 0) send(to, tx(), size_t(n));
}

void Endpoint::send_stateless_reset(const uint8_t *dcid, size_t dcidlen, size_t trigger_len,
                                    const SocketAddress &to, Timestamp now) {
  // RFC 9000 10.3: smaller than the packet that triggered it (no loops, no amplification),
  // and at least 21 bytes plus the token so it looks like a short-header packet.
  constexpr size_t kMinReset = NGTCP2_MIN_STATELESS_RESET_RANDLEN + 1 + NGTCP2_STATELESS_RESET_TOKENLEN;
  if (trigger_len <= kMinReset + 1 || dcidlen != kCidLen) {
    ++stats_.dropped_unroutable;
    return;
  }
  if (now - reset_window_start_ >= kNanosPerSecond) {
    reset_window_start_ = now;
    resets_in_window_ = 0;
  }
  if (resets_in_window_ >= config_.max_stateless_resets_per_second) {
    ++stats_.dropped_unroutable;
    return;
  }
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  if (stateless_reset_token(cid, token) != kOk) return;
  const size_t total = std::min<size_t>(trigger_len - 1, 64);
  uint8_t rand[64];
  const size_t randlen = total - NGTCP2_STATELESS_RESET_TOKENLEN;
  randombytes_buf(rand, randlen);
  const ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(tx(), kMaxUdpPayload, token, rand, randlen);
  if (n > 0) {
    ++resets_in_window_;
    ++stats_.stateless_resets_sent;
    send(to, tx(), size_t(n));
  }
}

void Endpoint::send_version_negotiation(const uint8_t *dcid, size_t dcidlen, const uint8_t *scid,
                                        size_t scidlen, const SocketAddress &to) {
  const uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
  uint8_t unused;
  randombytes_buf(&unused, 1);
  const ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
      tx(), kMaxUdpPayload, unused, scid, scidlen, dcid, dcidlen, versions, 1);
  if (n > 0) {
    ++stats_.version_negotiations_sent;
    send(to, tx(), size_t(n));
  }
}

void Endpoint::flush(Timestamp now) {
  if (in_dispatch_ > 0) return;  // inside ngtcp2: the outer call flushes
  // A handler run by write() (a close event) may kick the endpoint again: the outer loop
  // below picks up whatever it made dirty.
  if (flushing_) return;
  flushing_ = true;
  // Writing may make more connections dirty (a handler acting on another connection).
  while (!dirty_.empty()) {
    // Swapped with a member, not a local, so both vectors keep their capacity and steady-state
    // traffic allocates nothing here.
    std::vector<Connection *> &batch = dirty_batch_;
    batch.clear();
    batch.swap(dirty_);
    for (Connection *c : batch) {
      c->dirty_ = false;
      c->write(now);
      if (c->finished()) {
        reap(c);
      } else {
        update_timer(c);
      }
    }
  }
  flushing_ = false;
  flush_tx();
}

Timestamp Endpoint::next_expiry() const { return timers_.empty() ? 0 : timers_.begin()->first; }

void Endpoint::handle_expiry(Timestamp now) {
  if (in_dispatch_ > 0) return;  // inside ngtcp2: the outer call handles it
  ++in_dispatch_;
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Connection *c = timers_.begin()->second;
    spare_timers_.push_back(timers_.extract(timers_.begin()));  // reused by update_timer
    c->timer_key_ = 0;
    c->on_expiry(now);
    mark_dirty(c);
  }
  --in_dispatch_;
  flush(now);
}

void Endpoint::close_all(uint64_t app_code, const std::string &reason, Timestamp now) {
  for (auto &kv : conns_) kv.first->close(app_code, reason);
  flush(now);
}

void Endpoint::reap(Connection *c) {
  for (const auto &cid : c->cids_) {
    auto it = by_cid_.find(cid_key(cid.data, cid.datalen));
    if (it != by_cid_.end() && it->second == c) by_cid_.erase(it);
  }
  if (c->timer_key_ != 0) timers_.erase({c->timer_key_, c});
  if (c->dirty_) dirty_.erase(std::find(dirty_.begin(), dirty_.end(), c));
  if (c->is_h3()) --h3_live_;
  auto o = origin_.find(c);
  if (o != origin_.end()) {
    for (bool network : {false, true}) {
      auto s = per_source_.find(source_key(o->second, network));
      if (s != per_source_.end() && --s->second == 0) per_source_.erase(s);
    }
    origin_.erase(o);
  }
  conns_.erase(c);
}

}  // namespace parley::quic

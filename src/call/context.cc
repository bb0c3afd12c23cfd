#include "call/context.h"

#include <sodium.h>

#include <cstring>
#include <future>

#include "base/clock.h"
#include "base/demux.h"
#include "base/error.h"
#include "base/log.h"
#include "media/frame_header.h"

namespace parley::call {

namespace {

constexpr uint16_t kCodecOpus = 1;

std::vector<uint8_t> key_of(const signal::Id16 &id) {
  return std::vector<uint8_t>(id.bytes, id.bytes + sizeof id.bytes);
}

// ICE credentials: ufrag 8 and password 24 ice-chars (RFC 8445 minimums are 4 and 22).
std::string ice_string(size_t n) {
  static const char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s(n, 'x');
  for (auto &c : s) c = kChars[randombytes_uniform(64)];
  return s;
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
  if (!config.relay.relay.is_set()) return fail(kErrInvalidArgument, "no relay address");
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

int Context::init() {
  SocketAddress bind = config_.bind;
  if (!bind.is_set()) SocketAddress::parse("0.0.0.0:0", &bind);
  socket_ = std::make_unique<UdpSocket>(loop_);
  int r = socket_->bind(bind, [this](const uint8_t *d, size_t n, const SocketAddress &from) {
    // STUN on this socket belongs to the ICE agent (direct path); until then only QUIC.
    if (classify_datagram(d, n) == DatagramKind::kQuic) driver_->on_datagram(d, n, from);
  });
  if (r != kOk) return r;
  socket_->set_buffer_sizes(1 << 20, 1 << 20);
  quic::EndpointConfig ec;
  ec.accept_incoming = false;  // direct-path accepts come with the ICE layer
  ec.connection.keepalive_ms = config_.relay.keepalive_ms;
  ec.connection.idle_timeout_ms = config_.relay.idle_timeout_ms;
  ec.connection.datagram_queue = 64;
  UdpSocket *sock = socket_.get();
  r = quic::Endpoint::create(
      id_, ec,
      [sock](const SocketAddress &to, const uint8_t *d, size_t n) { sock->send(to, d, n); },
      &endpoint_);
  if (r != kOk) return r;
  endpoint_->set_batch_sender([sock](const quic::TxPacket *p, size_t n) {
    OutDatagram batch[quic::kTxBatch];
    for (size_t i = 0; i < n; ++i) batch[i] = {p[i].data, p[i].len, &p[i].to};
    sock->send_batch(batch, n);
  });
  endpoint_->set_local_address(socket_->local_address());
  driver_ = std::make_unique<quic::EndpointDriver>(loop_, *endpoint_);
  RelayClient::Listener l;
  l.on_state = [this](RelayState s, int error) {
    Event e(EventType::kRelayState);
    e.relay_state = s;
    e.error = error;
    emit(e);
  };
  l.on_message = [this](const signal::Message &m) { on_relay_message(m); };
  l.on_datagram = [this](const uint8_t *d, size_t n) { on_datagram(d, n); };
  relay_ = std::make_unique<RelayClient>(loop_, *endpoint_, *driver_, fp_, config_.relay, l);
  relay_->start();
  return kOk;
}

Context::~Context() {
  run([this] {
    closing_ = true;
    if (relay_) {
      for (auto &kv : calls_) {
        if (kv.second.state != CallState::kEnded) {
          relay_->send(call_message(signal::Type::kCallHangup, kv.second));
        }
      }
      relay_->stop();
    }
    media_routes_.clear();
    calls_.clear();
    relay_.reset();
    if (endpoint_) endpoint_->close_all(0, "context closed", monotonic_now());
    if (driver_) driver_->kick();
    driver_.reset();
    endpoint_.reset();
    socket_.reset();
    return kOk;
  });
  loop_.stop();
}

void Context::emit(const Event &e) {
  if (!closing_ && handler_) handler_(e);
}

RelayState Context::relay_state() { return read([&] { return relay_->state(); }); }
SocketAddress Context::local_address() { return read([&] { return socket_->local_address(); }); }
SocketAddress Context::observed_address() {
  return read([&] { return relay_->observed_address(); });
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

int Context::send_offer(signal::Type type, Call &c) {
  // The ephemeral X25519 key whose signed public half lets the peer derive the call's media
  // keys; the relay carries it but cannot substitute its own (it cannot sign as us). The
  // signature covers a context string, the call id and the key, so it cannot be replayed
  // into another call.
  if (c.media_secret.allocate(crypto_scalarmult_SCALARBYTES) != kOk) return kErrNoMemory;
  randombytes_buf(c.media_secret.data(), crypto_scalarmult_SCALARBYTES);
  if (crypto_scalarmult_base(c.media_key.public_key, c.media_secret.data()) != 0) {
    return fail(kErrCrypto, "X25519 key generation failed");
  }
  static const char kContext[] = "parley media key v1";
  uint8_t msg[sizeof kContext - 1 + 16 + 32];
  std::memcpy(msg, kContext, sizeof kContext - 1);
  std::memcpy(msg + sizeof kContext - 1, c.id.bytes, 16);
  std::memcpy(msg + sizeof kContext - 1 + 16, c.media_key.public_key, 32);
  crypto_sign_detached(c.media_key.signature, nullptr, msg, sizeof msg, id_.secret_key());
  c.ufrag = ice_string(8);
  c.pwd = ice_string(24);
  signal::Message m = call_message(type, c);
  m.ice_ufrag = c.ufrag;
  m.ice_pwd = c.pwd;
  m.media_key = c.media_key;
  m.identity_key.emplace();
  std::memcpy(m.identity_key->data(), id_.public_key(), identity::kPublicKeyLen);
  m.codecs = {kCodecOpus};
  return relay_->send(m);
}

int Context::start_call(const identity::Fingerprint &to, signal::CallId *out) {
  return run([&]() -> int {
    if (to == fp_) return fail(kErrInvalidArgument, "cannot call yourself");
    Call c;
    c.id = signal::CallId::random();
    c.peer = to;
    c.outgoing = true;
    const int r = send_offer(signal::Type::kCallInvite, c);
    if (r != kOk) return r;
    *out = c.id;
    calls_.emplace(key_of(c.id), std::move(c));
    return kOk;
  });
}

int Context::accept(const signal::CallId &id) {
  return run([&]() -> int {
    auto it = calls_.find(key_of(id));
    if (it == calls_.end() || it->second.state != CallState::kIncoming) {
      return fail(kErrCallNotFound, "no incoming call with that id");
    }
    Call &c = it->second;
    const int r = send_offer(signal::Type::kCallAccept, c);
    if (r != kOk) return r;
    set_call_state(c, CallState::kActive, kOk, "");
    return kOk;
  });
}

int Context::reject(const signal::CallId &id) {
  return run([&]() -> int {
    auto it = calls_.find(key_of(id));
    if (it == calls_.end() || it->second.state != CallState::kIncoming) {
      return fail(kErrCallNotFound, "no incoming call with that id");
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
    auto it = calls_.find(key_of(id));
    if (it == calls_.end()) return fail(kErrCallNotFound, "no call with that id");
    const int r = relay_->send(call_message(signal::Type::kCallHangup, it->second));
    set_call_state(it->second, CallState::kEnded, kOk, "hung up here");
    calls_.erase(it);
    return r;
  });
}

void Context::set_call_state(Call &c, CallState s, int error, const std::string &text) {
  if (c.state == s) return;
  c.state = s;
  // Incoming frames find their call through its stream id while it is active.
  if (s == CallState::kActive) media_routes_[c.stream] = {&c, {}, c.peer};
  if (s == CallState::kEnded) {
    auto it = media_routes_.find(c.stream);
    if (it != media_routes_.end() && it->second.call == &c) media_routes_.erase(it);
  }
  Event e(EventType::kCallState);
  e.call = c.id;
  e.peer = c.peer;
  e.call_state = s;
  e.error = error;
  e.text = text;
  emit(e);
}

void Context::on_relay_message(const signal::Message &m) {
  using signal::Type;
  if (m.type == Type::kRoomUpdate) {
    Room &r = rooms_[key_of(*m.room_id)];
    for (const auto &mb : r.members) media_routes_.erase(mb.stream_id);
    r.stream = m.stream_id.value_or(0);
    r.members = m.members;
    for (const auto &mb : r.members) {
      if (mb.stream_id == r.stream) continue;  // our own frames are never sent back to us
      media_routes_[mb.stream_id] = {nullptr, *m.room_id, mb.fingerprint};
    }
    Event e(EventType::kRoomUpdate);
    e.room = *m.room_id;
    e.is_room = true;
    e.members = m.members;
    e.stream_id = r.stream;
    emit(e);
    return;
  }
  auto it = m.call_id ? calls_.find(key_of(*m.call_id)) : calls_.end();
  if (m.type == Type::kCallInvite) {
    if (it != calls_.end() || !m.stream_id) return;  // a duplicate, or a relay bug
    Call c;
    c.id = *m.call_id;
    c.peer = *m.from;
    c.state = CallState::kIncoming;
    c.stream = *m.stream_id;
    auto &stored = calls_.emplace(key_of(c.id), std::move(c)).first->second;
    relay_->send(call_message(Type::kCallRinging, stored));
    Event e(EventType::kIncomingCall);
    e.call = stored.id;
    e.peer = stored.peer;
    emit(e);
    return;
  }
  if (m.type == Type::kError) {
    if (it != calls_.end()) {
      Call &c = it->second;
      set_call_state(c, CallState::kEnded, m.error_code.value_or(kErrInternal), m.text);
      calls_.erase(it);
      return;
    }
    Event e(EventType::kError);
    e.error = m.error_code.value_or(kErrInternal);
    e.text = m.text;
    emit(e);
    return;
  }
  if (it == calls_.end()) return;  // late message of a call already gone
  Call &c = it->second;
  if (m.from && *m.from != c.peer) return;
  switch (m.type) {
    case Type::kCallRinging:
      if (m.stream_id) c.stream = *m.stream_id;
      if (c.state == CallState::kInviting) set_call_state(c, CallState::kRinging, kOk, "");
      break;
    case Type::kCallAccept:
      if (m.stream_id) c.stream = *m.stream_id;
      set_call_state(c, CallState::kActive, kOk, "");
      break;
    case Type::kCallReject:
      set_call_state(c, CallState::kEnded, kErrCallRejected, m.text);
      calls_.erase(it);
      break;
    case Type::kCallHangup:
      set_call_state(c, CallState::kEnded, m.error_code.value_or(kOk), m.text);
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
  Event e(EventType::kMedia);
  const MediaRoute &r = route->second;
  if (r.call) {
    e.call = r.call->id;
  } else {
    e.room = r.room;
    e.is_room = true;
  }
  e.peer = r.peer;
  ++stats_.media_received;
  e.stream_id = h.stream_id;
  e.sequence = h.sequence;
  e.timestamp = h.timestamp;
  e.payload = data + media::kFrameHeaderSize;
  e.len = len - media::kFrameHeaderSize;
  emit(e);
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

int Context::send_media(const signal::CallId &id, uint32_t sequence, uint32_t timestamp,
                        uint8_t profile, const uint8_t *sealed, size_t len) {
  return run([&]() -> int {
    auto it = calls_.find(key_of(id));
    if (it == calls_.end() || it->second.state != CallState::kActive) {
      return fail(kErrCallNotFound, "no active call with that id");
    }
    return send_frame(it->second.stream, sequence, timestamp, profile, sealed, len);
  });
}

int Context::media_stream(const signal::CallId &id, uint32_t *stream_id) {
  return run([&]() -> int {
    auto it = calls_.find(key_of(id));
    if (it == calls_.end() || it->second.state != CallState::kActive) {
      return fail(kErrCallNotFound, "no active call with that id");
    }
    *stream_id = it->second.stream;
    return kOk;
  });
}

int Context::send_room_media(const signal::RoomId &id, uint32_t sequence, uint32_t timestamp,
                             uint8_t profile, const uint8_t *sealed, size_t len) {
  return run([&]() -> int {
    auto it = rooms_.find(key_of(id));
    if (it == rooms_.end() || it->second.stream == 0) {
      return fail(kErrCallNotFound, "not a member of that room");
    }
    return send_frame(it->second.stream, sequence, timestamp, profile, sealed, len);
  });
}

int Context::join_room(const signal::RoomId &room) {
  return run([&]() -> int {
    signal::Message m;
    m.type = signal::Type::kRoomJoin;
    m.room_id = room;
    return relay_->send(m);
  });
}

int Context::leave_room(const signal::RoomId &room) {
  return run([&]() -> int {
    signal::Message m;
    m.type = signal::Type::kRoomLeave;
    m.room_id = room;
    const int r = relay_->send(m);
    auto it = rooms_.find(key_of(room));
    if (it != rooms_.end()) {
      for (const auto &mb : it->second.members) media_routes_.erase(mb.stream_id);
      rooms_.erase(it);
    }
    return r;
  });
}

}  // namespace parley::call

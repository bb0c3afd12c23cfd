// Media routing: where each datagram goes (our sockets' STUN and QUIC, the relay's frames to a
// call's session or to the host for a room, the sessions' frames to the host) and our frames
// out. Kept together because the stream-id routes are where the relay, which picks the ids,
// meets frames: every lookup that relies on them is here to be read side by side.
#include "call/context.h"

#include <algorithm>
#include <cstring>

#include "base/clock.h"
#include "base/demux.h"
#include "base/error.h"
#include "call/context_internal.h"
#include "media/frame_header.h"

namespace parley::call {

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
  routes_.erase(
      std::remove_if(routes_.begin(), routes_.end(), [&](const auto &r) { return r.first == to; }),
      routes_.end());
  if (via) routes_.emplace_back(to, via);
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
  const int r = Session::create(std::move(env), std::move(p), c.media_key, c.peer_key, &c.session);
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
  if (probe_runner_ &&
      (from == other_server_ || from == relay_->relay_address() ||
       std::find(stun_addresses_.begin(), stun_addresses_.end(), from) != stun_addresses_.end())) {
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

}  // namespace parley::call

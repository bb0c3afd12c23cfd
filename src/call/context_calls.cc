// Call signaling: what the host's start/accept/reject/hangup and the relay's call messages do
// to a call's state, and the signed offers (media key, ICE credentials, candidates) they
// carry. Apart from media routing because what the relay says here is unauthenticated but for
// what the peer signed, and is checked before it counts. on_relay_message dispatches every
// relay message: room updates and room quality go on to context_rooms.cc (a refused join
// stays here, among the relay's errors).
#include "call/context.h"

#include <cstring>
#include <string>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "call/context_internal.h"
#include "media/frame_header.h"

namespace parley::call {

namespace {

constexpr uint16_t kCodecOpus = 1;
// The encoder tick: a frame pushed by the host waits at most this long for its encode.
constexpr uint64_t kAudioTickMs = 2;

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
    case CallState::kInviting:
      return "inviting";
    case CallState::kRinging:
      return "ringing";
    case CallState::kIncoming:
      return "incoming";
    case CallState::kActive:
      return "active";
    case CallState::kEnded:
      return "ended";
  }
  return "?";
}

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
  // keys; the relay carries it but cannot substitute its own (it cannot sign as us).
  const media::KeyRole role =
      type == signal::Type::kCallInvite ? media::KeyRole::kCaller : media::KeyRole::kCallee;
  int r = media::make_local_media_key(id_, c.id, c.peer, role, wall_clock_ms(), &c.media_key);
  if (r != kOk) return r;
  // ICE credentials: ufrag 8 and password 24 ice-chars (RFC 8445 minimums are 4 and 22).
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

int Context::take_peer_offer(Call &c, const signal::Message &m) {
  const bool invite = m.type == signal::Type::kCallInvite;
  const uint64_t now_ms = wall_clock_ms();
  int r = media::verify_peer_media_key(m.identity_key->data(), c.peer, fp_, c.id,
                                       invite ? media::KeyRole::kCaller : media::KeyRole::kCallee,
                                       now_ms, *m.media_key);
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
    c.quality = std::make_unique<CallQuality>(c.outgoing, c.voice.get(), config_.audio.best_profile,
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
    on_room_update(m);
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
        PARLEY_LOG(kLogInfo, "call",
                   "the relay says %s left it; the direct path still carries "
                   "the call",
                   c.peer.display().c_str());
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

}  // namespace parley::call

// Why this file is long: the switchboard's tables (clients, calls, rooms, stream routes) are
// one state. A client that leaves ends its ringing calls, keeps its answered ones for the peer
// and leaves its rooms; a resume rebuilds a call and its route; every forwarded frame checks
// its route's owner. Split by message kind, every part would still need every table and its
// invariants.

#include "relay/router.h"

#include <sodium.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "identity/secret.h"
#include "media/e2e_keys.h"
#include "media/frame_header.h"
#include "media/voice_profile.h"
#include "quality/min_rtt.h"
#include "relay/judge.h"

namespace parley::relay {

using signal::Message;
using signal::Type;

namespace {

enum LimitKind { kLimitSignal, kLimitMedia, kLimitCalls, kLimitRooms, kLimitQueue };

bool carries_call_parties(Type t) {
  return t == Type::kCallRinging || t == Type::kCallAccept || t == Type::kCallReject ||
         t == Type::kCallHangup;
}

}  // namespace

class Router::QuicLink final : public Link {
 public:
  explicit QuicLink(quic::Connection &c) : c_(c) {}
  const identity::Fingerprint &peer() const override { return c_.peer(); }
  SocketAddress remote() const override { return c_.remote(); }
  int send_message(int64_t stream, const uint8_t *data, size_t len) override {
    return c_.send_message(stream, data, len);
  }
  int send_datagram(const uint8_t *data, size_t len) override {
    return c_.send_datagram(data, len);
  }
  void close(uint64_t app_code, const std::string &reason) override { c_.close(app_code, reason); }
  quic::PathStats stats() const override { return c_.stats(); }

 private:
  quic::Connection &c_;
};

struct Router::Client {
  Link *conn = nullptr;
  std::unique_ptr<Link> owned;  // a QuicLink made by accept()'s handler
  identity::Fingerprint fp;
  int64_t stream = -1;  // the stream the client registered on; the relay answers there
  bool registered = false;
  // Closed by the relay (replaced by a newer connection, or not reading): its kClosed is on
  // the way, and nothing it still sends is acted on.
  bool replaced = false;
  bool closing = false;
  TokenBucket signal_bucket, signal_byte_bucket, packet_bucket, byte_bucket;
  Timestamp rate_error_at = 0;
  std::vector<Call *> calls;
  std::vector<Room *> rooms;
};

struct Router::Call {
  signal::CallId id;
  identity::Fingerprint party[2];  // caller, callee
  // Both parties stamp this stream id on their frames (each direction has its own media key,
  // so they share no nonce space); the relay tells them apart by their connections.
  uint32_t stream = 0;
  Timestamp ring_deadline = 0;  // while ringing (never 0 then: the timeout is >= 1 s)
  Timestamp left_deadline = 0;  // a party left the relay: the call ends then (0: none did)
  std::unique_ptr<Judge> judge;  // once answered; links 0 (caller) and 1 (callee)
  bool answered() const { return ring_deadline == 0; }
  int side(const identity::Fingerprint &fp) const {
    return party[0] == fp ? 0 : party[1] == fp ? 1 : -1;
  }
};

struct Router::Room {
  signal::RoomId id;
  std::vector<signal::Member> members;
  std::vector<int> links;  // the judge's link of each member (same order)
  Judge judge{media::kDefaultProfile, 0};
  int link_of(const identity::Fingerprint &fp) const {
    for (size_t i = 0; i < members.size(); ++i) {
      if (members[i].fingerprint == fp) return links[i];
    }
    return -1;
  }
};

struct Router::Route {
  identity::Fingerprint owner;
  Call *call = nullptr;
  Room *room = nullptr;
};

size_t Router::KeyHash::hash(const uint8_t *data, size_t len) const {
  // Fingerprints are SHA-256 outputs, but call and room ids are chosen by clients: both go
  // through keyed SipHash so nobody can aim many keys at one bucket.
  uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, data, len, key);
  size_t h;
  std::memcpy(&h, out, sizeof h);
  return h;
}

Router::Router(RouterLimits limits) : limits_(limits) {
  if (limits_.max_room_size > signal::kMaxParticipants) {
    limits_.max_room_size = signal::kMaxParticipants;
  }
  if (identity::sodium_ready() == kOk) {
    randombytes_buf(hash_key_, sizeof hash_key_);
    // Stream ids of calls a previous run of this relay handed out come back with their
    // parties' resumes: a restarted relay counts on from somewhere else, so the new calls'
    // ids seldom take one of them (a taken id refuses that resume; docs/protocol.md).
    next_stream_ = randombytes_random();
  }
  const KeyHash h{hash_key_};
  registry_ = decltype(registry_)(16, h);
  calls_ = decltype(calls_)(16, h);
  rooms_ = decltype(rooms_)(16, h);
}

Router::~Router() = default;

quic::Endpoint::Incoming Router::accept() {
  if (!accepting_) return {};
  return {[](const identity::Fingerprint &) { return true; },
          [this](quic::Connection &c, const quic::Event &e) { on_event(c, e); }};
}

void Router::limit_hit(int kind, const char *fmt, ...) {
  if (limit_log_at_[kind] != 0 && now_ - limit_log_at_[kind] < kNanosPerSecond) return;
  limit_log_at_[kind] = now_ == 0 ? 1 : now_;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  PARLEY_LOG(kLogWarn, "relay", "limit hit: %s", line);
}

void Router::on_event(quic::Connection &c, const quic::Event &e) {
  // user_data: the connection's QuicLink (owned by its Client), set once it connected.
  Link *link = static_cast<QuicLink *>(c.user_data);
  switch (e.type) {
    case quic::EventType::kConnected: {
      if (c.is_h3() || link) return;  // an HTTP/3 status client, not a parley client
      auto owned = std::make_unique<QuicLink>(c);
      link = owned.get();
      on_link_connected(link);
      clients_[link]->owned = std::move(owned);
      c.user_data = link;
      break;
    }
    case quic::EventType::kMessage:
      if (link) on_link_message(link, e.stream_id, e.data, e.len);
      break;
    case quic::EventType::kDatagram:
      if (link) on_link_datagram(link, e.data, e.len);
      break;
    case quic::EventType::kClosed:
      if (link) {
        c.user_data = nullptr;
        on_link_closed(link);
      }
      break;
  }
}

void Router::on_link_connected(Link *link) {
  auto cl = std::make_unique<Client>();
  cl->conn = link;
  cl->fp = link->peer();
  cl->signal_bucket = TokenBucket(limits_.signal_rate, limits_.signal_burst);
  cl->signal_byte_bucket = TokenBucket(limits_.signal_byte_rate, limits_.signal_byte_burst);
  cl->packet_bucket = TokenBucket(limits_.media_packet_rate, limits_.media_packet_burst);
  cl->byte_bucket = TokenBucket(limits_.media_byte_rate, limits_.media_byte_burst);
  clients_[link] = std::move(cl);
}

void Router::on_link_message(Link *link, int64_t stream, const uint8_t *data, size_t len) {
  auto it = clients_.find(link);
  if (it != clients_.end()) on_message(it->second.get(), stream, data, len);
}

void Router::on_link_datagram(Link *link, const uint8_t *data, size_t len) {
  auto it = clients_.find(link);
  if (it != clients_.end()) on_datagram(it->second.get(), data, len);
}

void Router::on_link_closed(Link *link) {
  auto it = clients_.find(link);
  if (it == clients_.end()) return;
  on_closed(it->second.get());
  clients_.erase(it);
}

Router::Client *Router::registered(const identity::Fingerprint &fp) const {
  auto it = registry_.find(fp);
  return it == registry_.end() ? nullptr : it->second;
}

void Router::on_closed(Client *cl) {
  if (!cl->registered || cl->replaced) return;
  registry_.erase(cl->fp);
  PARLEY_LOG(kLogInfo, "relay", "%s went away", cl->fp.display().c_str());
  // A call belongs to its parties: one that loses the relay (an outage, its network moving)
  // keeps talking on the direct path and resumes here when it is back. Only calls still
  // ringing end; an answered one is forgotten once neither party is here.
  while (!cl->calls.empty()) {
    Call *call = cl->calls.back();
    if (!call->answered()) {
      end_call(call, cl, kErrPeerUnavailable, "the peer disconnected from the relay");
      continue;
    }
    cl->calls.pop_back();
    // The other party keeps it (and lists it: one that registered again without resuming
    // yet would otherwise leave it behind when it goes too), for left_call_timeout_ms.
    const int side = call->side(cl->fp);
    if (Client *other = side < 0 ? nullptr : registered(call->party[1 - side])) {
      attach(other, call);
      forget_left(call);
      call->left_deadline = now_ + Timestamp(limits_.left_call_timeout_ms) * kNanosPerMilli;
      left_.emplace(call->left_deadline, call);
    } else {
      forget_left(call);
      streams_.erase(call->stream);
      calls_.erase(call->id);
    }
  }
  while (!cl->rooms.empty()) leave_room(cl, cl->rooms.back());
}

void Router::send(Client *cl, const Message &m) {
  if (cl->stream < 0) return;
  if (signal::encode(m, &scratch_) != kOk) {
    PARLEY_LOG(kLogError, "relay", "cannot encode %s: %s", signal::type_name(m.type),
               last_error_message());
    return;
  }
  const int r = cl->conn->send_message(cl->stream, scratch_.data(), scratch_.size());
  if (r == kOk) {
    ++stats_.signal_out;
  } else if (r == kErrQueueFull && !cl->closing) {
    // The client does not read what it is sent (or cannot keep up): rather than buffer for
    // it without bound, let it go. It reconnects and gets the current state afresh.
    cl->closing = true;
    ++stats_.closed_slow_consumers;
    limit_hit(kLimitQueue, "closing %s: its signaling queue is full (not reading)",
              cl->fp.display().c_str());
    cl->conn->close(kCloseSlowConsumer, "signaling queue full: the client is not reading");
  }
}

void Router::send_error(Client *cl, int code, const std::string &text,
                        const signal::CallId *call, const signal::RoomId *room) {
  Message m;
  m.type = Type::kError;
  m.error_code = code;
  m.text = text.substr(0, signal::kMaxText);
  if (call) m.call_id = *call;
  if (room) m.room_id = *room;
  ++stats_.signal_errors_sent;
  send(cl, m);
}

void Router::on_message(Client *cl, int64_t stream, const uint8_t *data, size_t len) {
  ++stats_.signal_in;
  if (cl->replaced || cl->closing) {
    // Its registration, calls and rooms are gone or moved to the newer connection: acting
    // on this (a room join, say) would bring back a phantom member no close ever removes.
    ++stats_.signal_ignored_replaced;
    return;
  }
  if (cl->stream < 0) cl->stream = stream;
  // Messages and bytes: many small messages and few large ones are both bounded.
  if (!cl->signal_bucket.take(now_) || !cl->signal_byte_bucket.take(now_, len)) {
    ++stats_.signal_rate_limited;
    limit_hit(kLimitSignal, "signaling rate of %s above %u messages/s or %u bytes/s",
              cl->fp.display().c_str(), limits_.signal_rate, limits_.signal_byte_rate);
    if (cl->rate_error_at == 0 || now_ - cl->rate_error_at >= kNanosPerSecond) {
      cl->rate_error_at = now_ == 0 ? 1 : now_;
      send_error(cl, kErrRateLimited, "signaling rate limit exceeded; message dropped");
    }
    return;
  }
  Message m;
  const int r = signal::decode(data, len, &m);
  if (r != kOk) {
    ++stats_.signal_malformed;
    send_error(cl, r, last_error_message());
    return;
  }
  if (m.type != Type::kRegister && !cl->registered) {
    send_error(cl, kErrNotRegistered, "register first");
    return;
  }
  switch (m.type) {
    case Type::kRegister:
      on_register(cl, m);
      break;
    case Type::kCallInvite:
      on_invite(cl, m);
      break;
    case Type::kCallResume:
      on_resume(cl, m);
      break;
    case Type::kRoomJoin:
      on_room_join(cl, m);
      break;
    case Type::kRoomLeave:
      on_room_leave(cl, m);
      break;
    case Type::kError:
      PARLEY_LOG(kLogDebug, "relay", "%s reports error %d: %s", cl->fp.display().c_str(),
                 m.error_code.value_or(0), m.text.c_str());
      break;
    case Type::kRegisterAck:
    case Type::kRoomUpdate:
      send_error(cl, kErrInvalidArgument,
                 std::string(signal::type_name(m.type)) + " is sent by the relay only");
      break;
    default:
      if (m.call_id) {
        on_call_message(cl, m);
      } else if (m.room_id) {
        on_room_quality(cl, m);
      }
      break;
  }
}

void Router::on_register(Client *cl, const Message &m) {
  if (!cl->registered) {
    if (Client *old = registered(cl->fp)) {
      // Same identity, newer connection (the app restarted or its network changed): the new
      // one takes over the registration, its calls and rooms; the old one is closed.
      old->replaced = true;
      cl->calls = std::move(old->calls);
      cl->rooms = std::move(old->rooms);
      old->conn->close(signal::kCloseReplaced, "replaced by a newer connection of the same identity");
      ++stats_.registrations_replaced;
      PARLEY_LOG(kLogInfo, "relay", "%s re-registered from a new connection",
                 cl->fp.display().c_str());
    }
    registry_[cl->fp] = cl;
    cl->registered = true;
    ++stats_.registrations;
    PARLEY_LOG(kLogInfo, "relay", "%s registered (%s)", cl->fp.display().c_str(),
               m.software.empty() ? "no software given" : m.software.c_str());
  }
  Message ack;
  ack.type = Type::kRegisterAck;
  ack.observed_address = cl->conn->remote();
  ack.to = cl->fp;
  ack.software = "parley-relay";
  send(cl, ack);
}

uint32_t Router::new_stream(const Route &r) {
  // Sequential with wrap-around; 0 is never used and live ids are skipped. Bounded: the
  // number of live streams is far below 2^32.
  for (;;) {
    const uint32_t id = next_stream_++;
    if (id == 0 || streams_.count(id)) continue;
    streams_.emplace(id, r);
    return id;
  }
}

void Router::on_invite(Client *cl, Message &m) {
  const signal::CallId id = *m.call_id;
  if (!accepting_) {
    send_error(cl, kErrClosed, "the relay is shutting down", &id);
    return;
  }
  if (*m.from != cl->fp) {
    ++stats_.spoof_attempts;
    PARLEY_LOG(kLogWarn, "relay", "%s sent an invite claiming to be %s",
               cl->fp.display().c_str(), m.from->display().c_str());
    send_error(cl, kErrPeerIdentity, "'from' is not the identity this connection proved", &id);
    return;
  }
  if (*m.to == cl->fp) {
    send_error(cl, kErrInvalidArgument, "cannot call yourself", &id);
    return;
  }
  Client *callee = registered(*m.to);
  if (!callee) {
    ++stats_.calls_refused_offline;
    send_error(cl, kErrPeerUnavailable, m.to->hex() + " is not registered", &id);
    return;
  }
  if (calls_.count(id)) {
    send_error(cl, kErrInvalidArgument, "call id already in use", &id);
    return;
  }
  size_t incoming = 0, pair = 0;
  for (const Call *c : callee->calls) {
    if (c->answered() || c->party[1] != callee->fp) continue;
    ++incoming;
    if (c->party[0] == cl->fp) ++pair;
  }
  const char *refused = nullptr;
  if (calls_.size() >= limits_.max_calls) {
    refused = "call limit of the relay reached";
  } else if (own_calls(cl) >= limits_.max_calls_per_client) {
    refused = "call limit reached: too many calls of yours";
  } else if (pair >= limits_.max_invites_per_pair) {
    refused = "call limit reached: you already ring this peer";
  } else if (incoming >= limits_.max_incoming_invites) {
    refused = "call limit reached: too many calls ringing at this peer";
  }
  if (refused) {
    ++stats_.calls_refused_limit;
    limit_hit(kLimitCalls, "call refused (%s): %zu calls relay-wide (max %zu)", refused,
              calls_.size(), limits_.max_calls);
    send_error(cl, kErrLimitReached, refused, &id);
    return;
  }
  auto call = std::make_unique<Call>();
  call->id = id;
  call->party[0] = cl->fp;
  call->party[1] = callee->fp;
  call->ring_deadline = now_ + Timestamp(limits_.ring_timeout_ms) * kNanosPerMilli;
  ringing_.emplace(call->ring_deadline, call.get());
  Call *c = call.get();
  calls_.emplace(id, std::move(call));
  c->stream = new_stream(Route{c->party[0], c, nullptr});
  cl->calls.push_back(c);
  callee->calls.push_back(c);
  ++stats_.calls_started;
  m.stream_id = c->stream;
  if (tamper_) tamper_(m);
  send(callee, m);
}

void Router::attach(Client *cl, Call *call) {
  if (std::find(cl->calls.begin(), cl->calls.end(), call) == cl->calls.end()) {
    cl->calls.push_back(call);
  }
}

void Router::on_resume(Client *cl, const Message &m) {
  const signal::CallId id = *m.call_id;
  auto refuse = [&](int code, const char *why) {
    ++stats_.resumes_refused;
    PARLEY_LOG(kLogInfo, "relay", "resume of a call by %s refused: %s",
               cl->fp.display().c_str(), why);
    send_error(cl, code, why, &id);
  };
  if (*m.from != cl->fp) {
    ++stats_.spoof_attempts;
    refuse(kErrPeerIdentity, "'from' is not the identity this connection proved");
    return;
  }
  if (*m.to == cl->fp) {
    refuse(kErrInvalidArgument, "a call with yourself");
    return;
  }
  auto it = calls_.find(id);
  if (it != calls_.end()) {
    Call *call = it->second.get();
    const int side = call->side(cl->fp);
    if (side < 0 || call->party[1 - side] != *m.to || !call->answered()) {
      refuse(kErrCallNotFound, "no such call of yours");
      return;
    }
    attach(cl, call);
    forget_left(call);  // back in time
    ++stats_.calls_reattached;
    return;
  }
  if (!accepting_) {
    refuse(kErrClosed, "the relay is shutting down");
    return;
  }
  // The proof: the peer's media key for this call, signed to us, in either role (the
  // signature covers the role, so it also says who called).
  int caller_side = -1;
  if (media::verify_call_proof(m.identity_key->data(), *m.to, cl->fp, id, media::KeyRole::kCaller,
                               *m.media_key) == kOk) {
    caller_side = 1;
  } else if (media::verify_call_proof(m.identity_key->data(), *m.to, cl->fp, id,
                                      media::KeyRole::kCallee, *m.media_key) == kOk) {
    caller_side = 0;
  }
  if (caller_side < 0) {
    refuse(kErrMediaKey, "the proof is not the peer's signed key for this call with you");
    return;
  }
  const uint32_t stream = *m.stream_id;
  if (stream == 0 || streams_.count(stream)) {
    refuse(kErrLimitReached, "the call's stream id is taken here");
    return;
  }
  if (calls_.size() >= limits_.max_calls || own_calls(cl) >= limits_.max_calls_per_client) {
    refuse(kErrLimitReached, "call limit reached");
    return;
  }
  auto call = std::make_unique<Call>();
  call->id = id;
  call->party[caller_side == 0 ? 0 : 1] = cl->fp;
  call->party[caller_side == 0 ? 1 : 0] = *m.to;
  call->stream = stream;
  call->judge = std::make_unique<Judge>(media::kDefaultProfile, 2);
  Call *c = call.get();
  calls_.emplace(id, std::move(call));
  streams_.emplace(stream, Route{c->party[0], c, nullptr});
  attach(cl, c);
  if (Client *peer = registered(*m.to)) attach(peer, c);
  ++stats_.calls_resumed;
  PARLEY_LOG(kLogInfo, "relay", "call resumed by %s with %s", cl->fp.display().c_str(),
             m.to->display().c_str());
}

void Router::on_call_message(Client *cl, Message &m) {
  const signal::CallId id = *m.call_id;
  auto it = calls_.find(id);
  const int side = it == calls_.end() ? -1 : it->second->side(cl->fp);
  if (side < 0) {
    send_error(cl, kErrCallNotFound, "no such call", &id);
    return;
  }
  Call *call = it->second.get();
  if (carries_call_parties(m.type) && (*m.from != cl->fp || *m.to != call->party[1 - side])) {
    ++stats_.spoof_attempts;
    send_error(cl, kErrPeerIdentity, "'from'/'to' do not match this call's parties", &id);
    return;
  }
  const bool callee_only = m.type == Type::kCallRinging || m.type == Type::kCallAccept ||
                           m.type == Type::kCallReject;
  if (callee_only && side != 1) {
    send_error(cl, kErrInvalidArgument,
               std::string(signal::type_name(m.type)) + " comes from the callee", &id);
    return;
  }
  if (m.type == Type::kCallAccept) {
    if (call->answered()) {
      send_error(cl, kErrInvalidArgument, "call already accepted", &id);
      return;
    }
    if (own_calls(cl) >= limits_.max_calls_per_client) {
      // Ringing did not count against the callee; accepting does. The call keeps ringing
      // (the callee may hang up another call and accept again, or reject).
      ++stats_.accepts_refused_limit;
      send_error(cl, kErrLimitReached, "call limit reached: too many calls of yours", &id);
      return;
    }
    ringing_.erase({call->ring_deadline, call});
    call->ring_deadline = 0;
    call->judge = std::make_unique<Judge>(media::kDefaultProfile, 2);
    ++stats_.calls_answered;
  }
  // The relay judges relayed calls: what participants report feeds it (and still goes to the
  // peer, who judges while the call is direct); acks of the relay's own rounds stop here.
  if (call->judge) {
    const int64_t now_ms = int64_t(now_ / kNanosPerMilli);
    if (m.type == Type::kQualityReport) call->judge->on_report(side, m, now_ms);
    if (m.type == Type::kUpgradeAck && m.sequence && (*m.sequence >> 63)) {
      call->judge->on_ack(side, m);
      return;
    }
  }
  Client *other = registered(call->party[1 - side]);
  if (other) {
    m.stream_id = call->stream;
    if (tamper_) tamper_(m);
    send(other, m);
  }
  if (m.type == Type::kCallReject || m.type == Type::kCallHangup) {
    if (m.type == Type::kCallReject) ++stats_.calls_rejected;
    end_call(call, nullptr, kOk, nullptr);
  }
}

void Router::end_call(Call *call, Client *notify_except, int error, const char *why) {
  for (int s = 0; s < 2; ++s) {
    Client *cl = registered(call->party[s]);
    if (!cl) continue;
    auto &v = cl->calls;
    v.erase(std::remove(v.begin(), v.end(), call), v.end());
    if (why && cl != notify_except) {
      Message h;
      h.type = Type::kCallHangup;
      h.call_id = call->id;
      h.from = call->party[1 - s];
      h.to = call->party[s];
      h.error_code = error;
      h.text = why;
      send(cl, h);
    }
  }
  // A client that went away is no longer registered but still lists the call.
  if (notify_except) {
    auto &v = notify_except->calls;
    v.erase(std::remove(v.begin(), v.end(), call), v.end());
  }
  if (!call->answered()) ringing_.erase({call->ring_deadline, call});
  forget_left(call);
  streams_.erase(call->stream);
  calls_.erase(call->id);
}

void Router::forget_left(Call *call) {
  if (call->left_deadline == 0) return;
  left_.erase({call->left_deadline, call});
  call->left_deadline = 0;
}

bool Router::handle_timeouts() {
  bool ended = false;
  while (!ringing_.empty() && ringing_.begin()->first <= now_) {
    ++stats_.calls_timed_out;
    end_call(ringing_.begin()->second, nullptr, kErrTimeout, "the call was not answered in time");
    ended = true;
  }
  while (!left_.empty() && left_.begin()->first <= now_) {
    ++stats_.calls_ended_party_gone;
    Call *call = left_.begin()->second;
    PARLEY_LOG(kLogInfo, "relay", "call of %s and %s ends: a party left the relay %u ms ago "
               "and did not come back", call->party[0].display().c_str(),
               call->party[1].display().c_str(), unsigned(limits_.left_call_timeout_ms));
    end_call(call, nullptr, kErrPeerUnavailable, "the peer left the relay and did not come back");
    ended = true;
  }
  return ended;
}

void Router::on_room_join(Client *cl, const Message &m) {
  const signal::RoomId id = *m.room_id;
  auto it = rooms_.find(id);
  Room *room = it == rooms_.end() ? nullptr : it->second.get();
  if (room) {
    for (const auto &mb : room->members) {
      if (mb.fingerprint == cl->fp) {
        // Already in: the state goes again to the asker only. Nothing changed for the
        // others, and a broadcast would let one member's messages multiply into everyone's
        // queues.
        send_room_update(cl, room, mb.stream_id);
        return;
      }
    }
  }
  if (!accepting_) {
    send_error(cl, kErrClosed, "the relay is shutting down", nullptr, &id);
    return;
  }
  const bool full = room ? room->members.size() >= limits_.max_room_size
                         : rooms_.size() >= limits_.max_rooms;
  if (full || cl->rooms.size() >= limits_.max_rooms_per_client) {
    ++stats_.room_joins_refused;
    limit_hit(kLimitRooms, "room join refused (%zu rooms of max %zu, room size max %zu)",
              rooms_.size(), limits_.max_rooms, limits_.max_room_size);
    send_error(cl, kErrLimitReached,
               full ? "room (or room count) limit reached" : "too many rooms for this client",
               nullptr, &id);
    return;
  }
  if (!room) {
    auto r = std::make_unique<Room>();
    r->id = id;
    room = r.get();
    rooms_.emplace(id, std::move(r));
    ++stats_.rooms_created;
  }
  signal::Member mb;
  mb.fingerprint = cl->fp;
  mb.stream_id = new_stream(Route{cl->fp, nullptr, room});
  room->members.push_back(mb);
  int link = 0;  // the lowest free one (room size <= kMaxParticipants <= quality::kMaxLinks)
  while (std::find(room->links.begin(), room->links.end(), link) != room->links.end()) ++link;
  room->links.push_back(link);
  room->judge.add_link(link);
  cl->rooms.push_back(room);
  broadcast_room(room);
}

void Router::on_room_leave(Client *cl, const Message &m) {
  auto it = rooms_.find(*m.room_id);
  if (it == rooms_.end() ||
      std::find(cl->rooms.begin(), cl->rooms.end(), it->second.get()) == cl->rooms.end()) {
    send_error(cl, kErrCallNotFound, "not in that room", nullptr, &*m.room_id);
    return;
  }
  leave_room(cl, it->second.get());
}

void Router::leave_room(Client *cl, Room *room) {
  auto &v = cl->rooms;
  v.erase(std::remove(v.begin(), v.end(), room), v.end());
  auto &ms = room->members;
  for (size_t i = 0; i < ms.size(); ++i) {
    if (ms[i].fingerprint == cl->fp) {
      streams_.erase(ms[i].stream_id);
      room->judge.remove(room->links[i]);
      ms.erase(ms.begin() + ptrdiff_t(i));
      room->links.erase(room->links.begin() + ptrdiff_t(i));
      break;
    }
  }
  if (ms.empty()) {
    rooms_.erase(room->id);
    return;
  }
  broadcast_room(room);
}

size_t Router::own_calls(const Client *cl) const {
  size_t n = 0;
  for (const Call *c : cl->calls) {
    if (c->party[0] == cl->fp || c->answered()) ++n;
  }
  return n;
}

void Router::send_room_update(Client *cl, Room *room, uint32_t stream) {
  Message u;
  u.type = Type::kRoomUpdate;
  u.room_id = room->id;
  u.members = room->members;
  u.stream_id = stream;  // each member learns which stream id is its own
  send(cl, u);
}

void Router::broadcast_room(Room *room) {
  Message u;
  u.type = Type::kRoomUpdate;
  u.room_id = room->id;
  u.members = room->members;
  for (const auto &mb : room->members) {
    if (Client *cl = registered(mb.fingerprint)) {
      u.stream_id = mb.stream_id;
      send(cl, u);
    }
  }
}

void Router::on_datagram(Client *cl, const uint8_t *data, size_t len) {
  if (!cl->registered || cl->replaced || cl->closing) {
    ++stats_.dropped_not_owner;
    return;
  }
  if (!cl->packet_bucket.take(now_) || !cl->byte_bucket.take(now_, len)) {
    ++stats_.dropped_rate_limited;
    limit_hit(kLimitMedia, "media rate of %s above %u packets/s or %u bytes/s",
              cl->fp.display().c_str(), limits_.media_packet_rate, limits_.media_byte_rate);
    return;
  }
  uint32_t sid;
  if (!media::peek_stream_id(data, len, &sid)) {
    ++stats_.dropped_malformed;
    return;
  }
  auto it = streams_.find(sid);
  if (it == streams_.end()) {
    ++stats_.dropped_unknown_stream;
    return;
  }
  const Route &r = it->second;
  // Nobody may inject frames into a stream that is not theirs.
  const int side = r.call ? r.call->side(cl->fp) : r.owner == cl->fp ? 0 : -1;
  if (side < 0) {
    ++stats_.dropped_not_owner;
    return;
  }
  auto forward = [&](const identity::Fingerprint &to) {
    Client *dst = registered(to);
    if (!dst || dst->conn->send_datagram(data, len) != kOk) {
      ++stats_.dropped_queue_full;
      return;
    }
    ++stats_.relayed_packets;
    stats_.relayed_bytes += len;
  };
  media::FrameHeader h;
  const bool parsed = media::parse_frame_header(data, len, &h) == kOk;
  const int64_t now_ms = int64_t(now_ / kNanosPerMilli);
  if (r.call) {
    if (!r.call->answered()) {
      ++stats_.dropped_unknown_stream;  // media flows once the call is accepted
      return;
    }
    if (parsed) r.call->judge->on_frame(side, h.sequence, h.timestamp, h.profile, now_ms);
    forward(r.call->party[1 - side]);
  } else {
    if (parsed) {
      r.room->judge.on_frame(r.room->link_of(cl->fp), h.sequence, h.timestamp, h.profile, now_ms);
    }
    for (const auto &mb : r.room->members) {
      if (mb.fingerprint != cl->fp) forward(mb.fingerprint);
    }
  }
}

void Router::on_room_quality(Client *cl, const Message &m) {
  auto it = rooms_.find(*m.room_id);
  if (it == rooms_.end()) return;
  Room *room = it->second.get();
  const int link = room->link_of(cl->fp);
  if (link < 0) return;
  if (m.type == Type::kQualityReport) {
    room->judge.on_report(link, m, int64_t(now_ / kNanosPerMilli));
  } else if (m.type == Type::kUpgradeAck) {
    room->judge.on_ack(link, m);
  }
}

bool Router::judge_tick() {
  const int64_t now_ms = int64_t(now_ / kNanosPerMilli);
  bool sent = false;
  auto transport = [&](Judge &j, int link, const identity::Fingerprint &fp) {
    Client *c = registered(fp);
    if (!c) return;
    const quic::PathStats ps = c->conn->stats();
    const uint32_t rtt = uint32_t(ps.smoothed_rtt / kNanosPerMilli);
    const uint32_t queue = quality::queue_ms(rtt, uint32_t(ps.min_rtt / kNanosPerMilli));
    j.on_transport(link, rtt, queue, ps.datagrams_acked, ps.datagrams_lost, now_ms);
  };
  for (auto &kv : calls_) {
    Call *call = kv.second.get();
    if (!call->judge) continue;
    for (int s = 0; s < 2; ++s) transport(*call->judge, s, call->party[s]);
    judge_out_.clear();
    call->judge->tick(now_ms, &judge_out_);
    for (Judge::Out &o : judge_out_) {
      if (Client *c = registered(call->party[o.link])) {
        o.m.call_id = call->id;
        o.m.stream_id = call->stream;
        send(c, o.m);
        sent = true;
      }
    }
  }
  for (auto &kv : rooms_) {
    Room *room = kv.second.get();
    for (size_t i = 0; i < room->members.size(); ++i) {
      transport(room->judge, room->links[i], room->members[i].fingerprint);
    }
    judge_out_.clear();
    room->judge.tick(now_ms, &judge_out_);
    for (Judge::Out &o : judge_out_) {
      for (size_t i = 0; i < room->members.size(); ++i) {
        if (room->links[i] != o.link) continue;
        if (Client *c = registered(room->members[i].fingerprint)) {
          o.m.room_id = room->id;
          o.m.stream_id = room->members[i].stream_id;
          send(c, o.m);
          sent = true;
        }
      }
    }
  }
  return sent;
}

RouterGauges Router::gauges() const {
  RouterGauges g;
  g.connections = clients_.size();
  g.registered = registry_.size();
  g.calls = calls_.size();
  g.calls_active = calls_.size() - ringing_.size();
  g.rooms = rooms_.size();
  for (const auto &kv : rooms_) g.room_members += kv.second->members.size();
  return g;
}

}  // namespace parley::relay

// Rooms: membership (join, leave, the relay's updates), the routes of the members' streams,
// and the quality of what we send, which the relay judges. Apart from calls because a room
// has no session or end-to-end key here: the relay hands out its streams and the host seals
// its frames, so none of the call machinery applies.
#include "call/context.h"

#include <algorithm>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "call/context_internal.h"

namespace parley::call {

void Context::on_room_update(const signal::Message &m) {
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
      const uint8_t allowed = std::max(config_.audio.best_profile, quality::best_to_enter(local));
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

void Context::drop_room_routes(const signal::RoomId &id, const Room &r) {
  for (const auto &mb : r.members) {
    auto it = media_routes_.find(mb.stream_id);
    if (it != media_routes_.end() && !it->second.is_call && it->second.id == id) {
      media_routes_.erase(it);
    }
  }
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

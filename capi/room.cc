// Rooms through the C ABI: membership handles over pc::Context's room requests, and the
// translation of room events. Room frames are opaque here: the host seals them.
#include <sodium.h>

#include <cstdio>
#include <cstring>

#include "base/log.h"
#include "capi_internal.h"
#include "context_internal.h"
#include "parley/parley.h"

using parley::capi::guarded;
using parley::capi::HandleKind;
using parley::capi::key_of;
namespace pc = parley::call;

void parley_context::on_room_event(const pc::Event &e) {
  parley_event ev;
  std::memset(&ev, 0, sizeof ev);
  const uint8_t *data = nullptr;
  size_t len = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = rooms.find(key_of(e.room));
    // Released by the host, or left: nothing names it any more.
    if (it == rooms.end() || it->second->left) return;
    ev.room = it->second;
    switch (e.type) {
      case pc::EventType::kRoomUpdate:
        ev.type = PARLEY_EVENT_ROOM_UPDATE;
        {
          std::lock_guard<std::mutex> room_lock(ev.room->mu);
          ev.room->members = e.members;
        }
        ev.stream_id = e.stream_id;
        ev.member_count = uint32_t(e.members.size());
        break;
      case pc::EventType::kMedia:
        ev.type = PARLEY_EVENT_ROOM_FRAME;
        ev.stream_id = e.stream_id;
        ev.sequence = e.sequence;
        ev.timestamp = e.timestamp;
        std::snprintf(ev.peer, sizeof ev.peer, "%s", e.peer.hex().c_str());
        data = e.payload;
        len = e.len;
        break;
      case pc::EventType::kError:
        // The relay refused the membership: the handle now counts as left, and the id may
        // be joined again.
        ev.type = PARLEY_EVENT_ERROR;
        ev.room->left = true;
        rooms.erase(it);
        break;
      case pc::EventType::kQualityChanged:
        parley::capi::fill_quality_changed(e, &ev);
        break;
      default:
        return;
    }
  }
  ev.error = e.error;
  deliver(ev, e.text, data, len);
}

int parley_room_id_generate(char *out, size_t out_len) {
  PARLEY_REQUIRE_ARG(out);
  if (out_len < PARLEY_ROOM_ID_BUF_LEN) {
    return parley::fail(parley::kErrBufferTooSmall, "%s: needs %d bytes, got %zu", __func__,
                        PARLEY_ROOM_ID_BUF_LEN, out_len);
  }
  const parley::signal::RoomId id = parley::signal::RoomId::random();
  sodium_bin2hex(out, out_len, id.bytes, sizeof id.bytes);
  return parley::kOk;
}

int parley_room_join(parley_context *ctx, const char *room_id, parley_room **out) {
  PARLEY_REQUIRE_ARG(out);
  *out = nullptr;
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  PARLEY_REQUIRE_ARG(room_id);
  return guarded(__func__, [&]() -> int {
    parley::signal::RoomId id;
    size_t n = 0;
    if (std::strlen(room_id) != PARLEY_ROOM_ID_HEX_LEN ||
        sodium_hex2bin(id.bytes, sizeof id.bytes, room_id, PARLEY_ROOM_ID_HEX_LEN, nullptr, &n,
                       nullptr) != 0 ||
        n != sizeof id.bytes) {
      return parley::fail(parley::kErrInvalidArgument,
                          "parley_room_join: room_id is not %d hex characters",
                          PARLEY_ROOM_ID_HEX_LEN);
    }
    std::unique_ptr<parley_room> h(new parley_room);
    h->core = ctx->core;
    h->id = id;
    {
      // Live and mapped before the join goes out: the first update may reach a callback
      // (which may use the handle) before this function returns.
      std::lock_guard<std::mutex> lock(ctx->mu);
      if (!ctx->rooms.emplace(key_of(id), h.get()).second) {
        return parley::fail(parley::kErrInvalidArgument,
                            "parley_room_join: this context already joined room %s", room_id);
      }
      parley::capi::handle_add(HandleKind::kRoom, h.get());
    }
    const int r = parley::capi::on_core("parley_room_join", *ctx->core,
                                        [&](pc::Context &c) -> int { return c.join_room(id); });
    if (r != parley::kOk) {
      {
        std::lock_guard<std::mutex> lock(ctx->mu);
        ctx->rooms.erase(key_of(id));
      }
      parley::capi::handle_remove(HandleKind::kRoom, h.get());
      return r;
    }
    *out = h.release();
    return parley::kOk;
  });
}

namespace {
// Takes `room` out of its context's map (so the id may be joined again, and no event finds
// it); with `drop_events`, also drops queued events naming it.
void unlink(parley_room *room, bool drop_events) {
  std::lock_guard<std::mutex> core_lock(room->core->mu);
  parley_context *owner = room->core->owner;
  if (!owner) return;
  std::lock_guard<std::mutex> lock(owner->mu);
  auto it = owner->rooms.find(key_of(room->id));
  if (it != owner->rooms.end() && it->second == room) owner->rooms.erase(it);
  if (!drop_events) return;
  owner->drop_events([room](const parley_event &ev) { return ev.room == room; });
  if (owner->current.ev.room == room) owner->current.ev.room = nullptr;
}

// Runs `f` on the room's context: kErrClosed once the context is gone.
template <typename F>
int with_room(const char *function, parley_room *room, F &&f) {
  const int h = parley::capi::check_handle(function, "room", HandleKind::kRoom, room);
  if (h != parley::kOk) return h;
  return guarded(function, [&]() -> int {
    return parley::capi::on_core(function, *room->core, [&](pc::Context &c) -> int {
      if (room->left) {
        return parley::fail(parley::kErrNotAMember, "%s: the room was left", function);
      }
      return f(c);
    });
  });
}
}  // namespace

int parley_room_leave(parley_room *room) {
  const int r = with_room(__func__, room, [&](pc::Context &c) -> int {
    room->left = true;
    return c.leave_room(room->id);
  });
  if (r == parley::kOk) unlink(room, false);
  return r;
}

int parley_room_destroy(parley_room *room) {
  if (!room) return parley::kOk;
  if (!parley::capi::handle_remove(HandleKind::kRoom, room)) {
    parley::fail(parley::kErrInvalidHandle,
                 "parley_room_destroy: not a live parley_room (destroyed twice?); ignored");
    PARLEY_LOG(parley::kLogWarn, "capi", "%s", parley::last_error_message());
    return parley::kErrInvalidHandle;
  }
  const std::string saved = parley::last_error_message();
  unlink(room, true);
  // Either way through the loop: an event naming the room that the context's thread is
  // delivering right now is over before the handle is freed. kErrClosed once the context
  // is gone: fine.
  parley::capi::on_core(__func__, *room->core, [&](pc::Context &ctx) -> int {
    if (room->left) {
      ctx.sync();
      return parley::kOk;
    }
    return ctx.leave_room(room->id);
  });
  parley::restore_last_error_message(saved);
  delete room;
  return parley::kOk;
}

int parley_room_set_user_data(parley_room *room, void *user_data) {
  PARLEY_REQUIRE_HANDLE(kRoom, room);
  room->user_data.store(user_data, std::memory_order_release);
  return parley::kOk;
}

void *parley_room_user_data(const parley_room *room) {
  if (!room || parley::capi::check_handle(__func__, "room", HandleKind::kRoom, room) != 0) {
    return nullptr;
  }
  return room->user_data.load(std::memory_order_acquire);
}

int parley_room_members(parley_room *room, parley_room_member *out, size_t *count) {
  PARLEY_REQUIRE_HANDLE(kRoom, room);
  PARLEY_REQUIRE_ARG(count);
  return guarded(__func__, [&]() -> int {
    std::vector<parley::signal::Member> members;
    {
      std::lock_guard<std::mutex> lock(room->mu);
      members = room->members;
    }
    const size_t capacity = *count;
    *count = members.size();
    if (!out) return parley::kOk;
    if (capacity < members.size()) {
      return parley::fail(parley::kErrBufferTooSmall, "%s: %zu members, room for %zu",
                          "parley_room_members", members.size(), capacity);
    }
    for (size_t i = 0; i < members.size(); ++i) {
      std::memset(&out[i], 0, sizeof out[i]);
      std::snprintf(out[i].fingerprint, sizeof out[i].fingerprint, "%s",
                    members[i].fingerprint.hex().c_str());
      out[i].stream_id = members[i].stream_id;
    }
    return parley::kOk;
  });
}

int parley_room_send(parley_room *room, uint32_t sequence, uint32_t timestamp, int profile,
                     const void *payload, size_t len) {
  PARLEY_REQUIRE_HANDLE(kRoom, room);
  if (!payload && len > 0) return parley::capi::null_argument(__func__, "payload");
  if (profile < 0 || profile > 4) {
    return parley::fail(parley::kErrInvalidArgument, "%s: profile %d (0..4)", __func__, profile);
  }
  if (len > PARLEY_DATAGRAM_MAX) {
    return parley::fail(parley::kErrMessageTooLarge, "%s: %zu bytes (at most %d)", __func__,
                        len, PARLEY_DATAGRAM_MAX);
  }
  return with_room(__func__, room, [&](pc::Context &c) -> int {
    return c.send_room_media(room->id, sequence, timestamp, uint8_t(profile),
                             static_cast<const uint8_t *>(payload), len);
  });
}

// The C API's handle structs for contexts, calls and rooms, shared by context.cc, events.cc,
// call.cc and room.cc.
#ifndef PARLEY_CAPI_CONTEXT_INTERNAL_H
#define PARLEY_CAPI_CONTEXT_INTERNAL_H

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"
#include "call/context.h"
#include "capi_internal.h"
#include "identity/fingerprint.h"
#include "identity/identity.h"
#include "parley/parley.h"

struct parley_context;

namespace parley::capi {

// The part of a context that its call and room handles share: they may outlive the context.
// `users` counts requests running on the context through a handle, so that destroy waits for
// them instead of freeing the context under them. `owner` lets a destroyed handle unlink
// itself from the context's maps and queues until destroy has emptied them.
struct Core {
  std::mutex mu;  // taken before parley_context::mu, never after
  std::condition_variable idle;
  call::Context *ctx = nullptr;    // NULL once destroy began
  parley_context *owner = nullptr; // NULL once destroy emptied the handle maps
  int users = 0;

  // Closes the core: no new request starts; returns once running ones are done.
  void close() {
    std::unique_lock<std::mutex> lock(mu);
    ctx = nullptr;
    idle.wait(lock, [this] { return users == 0; });
  }
};

// Runs `f(context)` for a request made through a call or room handle: kErrClosed once the
// context is destroyed (or being destroyed).
template <typename F>
int on_core(const char *function, Core &core, F &&f) {
  call::Context *ctx;
  {
    std::lock_guard<std::mutex> lock(core.mu);
    ctx = core.ctx;
    if (ctx) ++core.users;
  }
  if (!ctx) return fail(kErrClosed, "%s: the context was destroyed", function);
  struct Release {
    Core &c;
    ~Release() {
      std::lock_guard<std::mutex> lock(c.mu);
      if (--c.users == 0) c.idle.notify_all();
    }
  } release{core};
  return f(*ctx);
}

// Call and room ids as map keys: a fixed array, so the per-event lookups (a room frame, a
// datagram) allocate nothing.
using Key = std::array<uint8_t, sizeof(signal::Id16::bytes)>;
inline Key key_of(const signal::Id16 &id) {
  Key k;
  std::memcpy(k.data(), id.bytes, k.size());
  return k;
}

// The fields of PARLEY_EVENT_QUALITY_CHANGED, alike for a call and a room.
inline void fill_quality_changed(const call::Event &e, parley_event *ev) {
  ev->type = PARLEY_EVENT_QUALITY_CHANGED;
  ev->profile = e.profile;
  ev->profile_from = e.profile_from;
  ev->quality_reason = int(e.reason);
  ev->timestamp = e.timestamp;
}

// Poll mode: an event with copies of what its pointers refer to.
struct Queued {
  parley_event ev;
  std::string text;
  std::vector<uint8_t> data;
};

}  // namespace parley::capi

struct parley_call {
  std::shared_ptr<parley::capi::Core> core;
  parley::signal::CallId id;
  parley::identity::Fingerprint peer;
  std::shared_ptr<parley::call::VoiceChannel> voice;
  std::atomic<bool> ended{false};  // the CALL_STATE ENDED event went out
  std::atomic<void *> user_data{nullptr};  // parley_call_set_user_data
};

struct parley_room {
  std::shared_ptr<parley::capi::Core> core;
  parley::signal::RoomId id;
  std::atomic<bool> left{false};  // parley_room_leave was called
  std::mutex mu;  // members: written on the context's thread, read by the host
  std::vector<parley::signal::Member> members;  // as of the latest PARLEY_EVENT_ROOM_UPDATE
  std::atomic<void *> user_data{nullptr};       // parley_room_set_user_data
};

struct parley_context {
  std::unique_ptr<parley::identity::Identity> identity;
  std::shared_ptr<parley::capi::Core> core = std::make_shared<parley::capi::Core>();
  std::unique_ptr<parley::call::Context> ctx;
  parley_event_fn callback = nullptr;
  void *user = nullptr;
  std::mutex mu;                   // handles, rooms and the queue
  std::condition_variable queued;  // poll mode: an event was queued, or a wake
  std::map<parley::capi::Key, parley_call *> handles;
  std::map<parley::capi::Key, parley_room *> rooms;
  std::deque<parley::capi::Queued> queue;
  // Callback mode: events raised while the callback runs (by a parley call it made), for
  // delivery right after it returns. Only the context's thread adds or takes them.
  std::deque<parley::capi::Queued> nested;
  parley::capi::Queued current;  // the event poll returned last
  uint64_t queue_dropped = 0;
  bool wake_pending = false;  // parley_context_wake: the next wait returns at once
  // parley_context_event_fd (created on first use): readable while the queue holds events.
  int notify_read = -1;
  int notify_write = -1;  // the same eventfd, or a pipe's write end
  bool fd_readable = false;

  // Drops the queued and held events for which `names(event)` is true (a handle being
  // destroyed): never delivered. Under `mu`.
  template <typename F>
  void drop_events(F names) {
    for (auto *list : {&queue, &nested}) {
      for (parley::capi::Queued &q : *list) {
        if (names(q.ev)) q.ev.type = PARLEY_EVENT_NONE;
      }
    }
  }

  void on_event(const parley::call::Event &e);  // translate() behind an exception firewall
  void translate(const parley::call::Event &e);
  void on_room_event(const parley::call::Event &e);  // room.cc
  void deliver(parley_event &ev, const std::string &text, const uint8_t *data, size_t len);
  bool in_own_callback() const;  // this thread is running this context's callback
  // The user data an event carries: its call's, else its room's (read at delivery).
  static void *user_data_of(const parley_event &ev);
  // The notification descriptor, under `mu`: open_fd is kOk or kErrIo; signal_fd makes it
  // readable or not.
  int open_fd();
  void signal_fd(bool readable);
  void close_fd();
};

#endif

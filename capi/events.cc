// Events through the C ABI: translation of the core's events into parley_event, delivery to
// the host's callback or queue, and the queue's notification descriptor and waits.
#include <fcntl.h>
#include <unistd.h>
#if PARLEY_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>

#include "base/log.h"
#include "call/context.h"
#include "capi_internal.h"
#include "context_internal.h"
#include "identity/fingerprint.h"
#include "parley/parley.h"

using parley::capi::HandleKind;
using parley::capi::key_of;
using parley::capi::Queued;
namespace pc = parley::call;
namespace pid = parley::identity;

namespace {
// The context whose callback this thread is running, if any: destroying it from there
// would join the thread we are on.
thread_local const parley_context *t_in_callback = nullptr;
constexpr size_t kMaxQueued = 4096;
}  // namespace

bool parley_context::in_own_callback() const { return t_in_callback == this; }

void *parley_context::user_data_of(const parley_event &ev) {
  if (ev.call) return ev.call->user_data.load(std::memory_order_acquire);
  if (ev.room) return ev.room->user_data.load(std::memory_order_acquire);
  return nullptr;
}

int parley_context::open_fd() {
#if PARLEY_HAVE_EVENTFD
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    return parley::fail(parley::kErrIo, "parley_context_event_fd: eventfd: %s",
                        std::strerror(errno));
  }
  notify_read = notify_write = fd;
#else
  int p[2];
  if (pipe(p) != 0) {
    return parley::fail(parley::kErrIo, "parley_context_event_fd: pipe: %s", std::strerror(errno));
  }
  for (int fd : p) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  notify_read = p[0];
  notify_write = p[1];
#endif
  fd_readable = false;
  signal_fd(!queue.empty());
  return parley::kOk;
}

void parley_context::close_fd() {
  if (notify_read >= 0) close(notify_read);
  if (notify_write >= 0 && notify_write != notify_read) close(notify_write);
  notify_read = notify_write = -1;
}

// Level, not edge: one unit of readiness while anything is queued, so the descriptor's
// state always matches the queue's (a host may poll fewer events than became readable).
void parley_context::signal_fd(bool readable) {
  if (notify_read < 0 || readable == fd_readable) return;
  if (readable) {
#if PARLEY_HAVE_EVENTFD
    const uint64_t one = 1;
    ssize_t n = write(notify_write, &one, sizeof one);
#else
    const char one = 1;
    ssize_t n = write(notify_write, &one, sizeof one);
#endif
    if (n < 0) {
      PARLEY_LOG(parley::kLogWarn, "capi", "event fd: write: %s", std::strerror(errno));
      return;
    }
  } else {
    uint64_t drain;
    while (read(notify_read, &drain, sizeof drain) > 0) {
    }
  }
  fd_readable = readable;
}

void parley_context::deliver(parley_event &ev, const std::string &text, const uint8_t *data,
                             size_t len) {
  if (callback) {
    if (t_in_callback == this) {
      // Raised by a parley call the callback itself made: delivered once it returns, so
      // the callback is never re-entered.
      Queued q;
      q.ev = ev;
      q.text = text;
      if (data) q.data.assign(data, data + len);
      std::lock_guard<std::mutex> lock(mu);
      nested.push_back(std::move(q));
      return;
    }
    const parley_context *outer = t_in_callback;  // another context's callback, or none
    t_in_callback = this;
    ev.text = text.c_str();
    ev.data = data;
    ev.len = len;
    ev.user_data = user_data_of(ev);
    callback(user, &ev);
    for (;;) {
      Queued q;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (nested.empty()) break;
        q = std::move(nested.front());
        nested.pop_front();
      }
      if (q.ev.type == PARLEY_EVENT_NONE) continue;  // it named a handle since destroyed
      q.ev.text = q.text.c_str();
      q.ev.data = q.data.empty() ? nullptr : q.data.data();
      q.ev.len = q.data.size();
      q.ev.user_data = user_data_of(q.ev);
      callback(user, &q.ev);
    }
    t_in_callback = outer;
    return;
  }
  std::lock_guard<std::mutex> lock(mu);
  // An incoming call is never dropped: its handle would leak and the caller ring on.
  if (queue.size() >= kMaxQueued && ev.type != PARLEY_EVENT_INCOMING_CALL) {
    // Logged at 1, 2, 4, 8, ... drops: a host that stopped polling is told, not flooded.
    ++queue_dropped;
    if ((queue_dropped & (queue_dropped - 1)) == 0) {
      PARLEY_LOG(parley::kLogWarn, "capi",
                 "event queue full (%zu events): %llu events dropped; poll more often", kMaxQueued,
                 static_cast<unsigned long long>(queue_dropped));
    }
    return;
  }
  Queued q;
  q.ev = ev;
  q.text = text;
  if (data) q.data.assign(data, data + len);
  queue.push_back(std::move(q));
  signal_fd(true);
  queued.notify_all();
}

void parley_context::on_event(const pc::Event &e) {
  // On the context's thread, inside libuv: nothing may escape.
  try {
    translate(e);
  } catch (const std::exception &x) {
    PARLEY_LOG(parley::kLogError, "capi", "event lost: %s", x.what());
  }
}

void parley_context::translate(const pc::Event &e) {
  parley_event ev;
  std::memset(&ev, 0, sizeof ev);
  parley_call *handle = nullptr;
  if (e.is_room) {
    on_room_event(e);
    return;
  }
  if (e.type != pc::EventType::kRelayState && e.type != pc::EventType::kError &&
      e.type != pc::EventType::kRelayTrusted) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = handles.find(key_of(e.call));
    if (e.type == pc::EventType::kIncomingCall && it == handles.end()) {
      if (!e.voice) return;
      handle = new parley_call{core, e.call, e.peer, e.voice};
      parley::capi::handle_add(HandleKind::kCall, handle);
      handles[key_of(e.call)] = handle;
    } else if (it != handles.end()) {
      handle = it->second;
    } else {
      return;  // destroyed by the host: nothing names it any more
    }
  }
  ev.call = handle;
  ev.error = e.error;
  ev.origin = int(e.origin);
  // A relay's presented identity, or the sender of an invite that was refused.
  const bool peer_named =
      e.type == pc::EventType::kError ||
      (e.type == pc::EventType::kRelayState && e.relay_state == pc::RelayState::kUntrusted);
  if (handle || (peer_named && e.peer != pid::Fingerprint())) {
    const std::string hex = e.peer.hex();
    std::snprintf(ev.peer, sizeof ev.peer, "%s", hex.c_str());
  }
  const uint8_t *data = nullptr;
  size_t len = 0;
  switch (e.type) {
    case pc::EventType::kRelayState:
      ev.type = PARLEY_EVENT_RELAY_STATE;
      ev.relay_state = int(e.relay_state);
      break;
    case pc::EventType::kIncomingCall:
      ev.type = PARLEY_EVENT_INCOMING_CALL;
      ev.call_state = PARLEY_CALL_INCOMING;
      break;
    case pc::EventType::kCallState:
      ev.type = PARLEY_EVENT_CALL_STATE;
      ev.call_state = int(e.call_state);
      if (e.call_state == pc::CallState::kEnded) handle->ended = true;
      break;
    case pc::EventType::kMedia:
      ev.type = PARLEY_EVENT_DATAGRAM;
      data = e.payload;
      len = e.len;
      break;
    case pc::EventType::kPathChanged:
      ev.type = PARLEY_EVENT_PATH_CHANGED;
      ev.path = int(e.path);
      ev.path_from = int(e.path_from);
      break;
    case pc::EventType::kError:
      ev.type = PARLEY_EVENT_ERROR;
      break;
    case pc::EventType::kRelayTrusted: {
      ev.type = PARLEY_EVENT_RELAY_TRUSTED;
      const std::string hex = e.peer.hex();
      std::snprintf(ev.peer, sizeof ev.peer, "%s", hex.c_str());
      break;
    }
    case pc::EventType::kQualityChanged:
      parley::capi::fill_quality_changed(e, &ev);
      break;
    default:
      return;
  }
  deliver(ev, e.text, data, len);
}

static_assert(int(pc::CallState::kActive) == PARLEY_CALL_ACTIVE, "call states");
static_assert(int(pc::CallState::kEnded) == PARLEY_CALL_ENDED, "call states");
static_assert(int(pc::RelayState::kReplaced) == PARLEY_RELAY_REPLACED, "relay states");
static_assert(int(pc::RelayState::kUntrusted) == PARLEY_RELAY_UNTRUSTED, "relay states");
static_assert(int(pc::Origin::kPeer) == PARLEY_ORIGIN_PEER, "origins");
static_assert(int(pc::PathKind::kDirect) == PARLEY_PATH_DIRECT, "paths");
static_assert(int(parley::quality::Reason::kDirective) == PARLEY_QUALITY_REASON_DIRECTIVE,
              "reasons");
namespace {
int poll_event(const char *function, parley_context *ctx, parley_event *event, size_t size,
               bool wait, uint32_t timeout_ms) {
  const int h = parley::capi::check_handle(function, "ctx", HandleKind::kContext, ctx);
  if (h != parley::kOk) return h;
  if (!event) return parley::capi::null_argument(function, "event");
  constexpr size_t kMinEvent = offsetof(parley_event, len) + sizeof(size_t);
  if (size < kMinEvent) {
    return parley::fail(parley::kErrInvalidArgument, "%s: event_size %zu (at least %zu)", function,
                        size, kMinEvent);
  }
  if (ctx->callback) {
    return parley::fail(parley::kErrInvalidArgument, "%s: this context delivers to a callback",
                        function);
  }
  std::unique_lock<std::mutex> lock(ctx->mu);
  auto ready = [ctx] {
    // Events naming a handle destroyed since are dropped (PARLEY_EVENT_NONE).
    while (!ctx->queue.empty() && ctx->queue.front().ev.type == PARLEY_EVENT_NONE) {
      ctx->queue.pop_front();
    }
    return !ctx->queue.empty();
  };
  if (wait && !ctx->wake_pending && !ready() && timeout_ms > 0) {
    auto woken_or_ready = [&] { return ctx->wake_pending || ready(); };
    if (timeout_ms == UINT32_MAX) {
      ctx->queued.wait(lock, woken_or_ready);
    } else {
      ctx->queued.wait_for(lock, std::chrono::milliseconds(timeout_ms), woken_or_ready);
    }
  }
  if (wait) ctx->wake_pending = false;
  if (!ready()) {
    ctx->signal_fd(false);
    return 0;
  }
  ctx->current = std::move(ctx->queue.front());
  ctx->queue.pop_front();
  if (!ready()) ctx->signal_fd(false);
  parley_event ev = ctx->current.ev;
  ev.text = ctx->current.text.c_str();
  ev.data = ctx->current.data.empty() ? nullptr : ctx->current.data.data();
  ev.len = ctx->current.data.size();
  ev.user_data = parley_context::user_data_of(ev);
  std::memcpy(event, &ev, size < sizeof ev ? size : sizeof ev);
  return 1;
}
}  // namespace

int parley_context_poll_event_sized(parley_context *ctx, parley_event *event, size_t event_size) {
  return poll_event(__func__, ctx, event, event_size, false, 0);
}

int parley_context_wait_event_sized(parley_context *ctx, parley_event *event, size_t event_size,
                                    uint32_t timeout_ms) {
  return poll_event(__func__, ctx, event, event_size, true, timeout_ms);
}

int parley_context_wake(parley_context *ctx) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  std::lock_guard<std::mutex> lock(ctx->mu);
  ctx->wake_pending = true;
  ctx->queued.notify_all();
  return parley::kOk;
}

int parley_context_event_fd(parley_context *ctx, int *fd) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  PARLEY_REQUIRE_ARG(fd);
  *fd = -1;
  if (ctx->callback) {
    return parley::fail(parley::kErrInvalidArgument, "%s: this context delivers to a callback",
                        __func__);
  }
  std::lock_guard<std::mutex> lock(ctx->mu);
  if (ctx->notify_read < 0) {
    const int r = ctx->open_fd();
    if (r != parley::kOk) return r;
  }
  *fd = ctx->notify_read;
  return parley::kOk;
}

const char *parley_event_type_name(int type) {
  switch (type) {
    case PARLEY_EVENT_NONE:
      return "PARLEY_EVENT_NONE";
    case PARLEY_EVENT_RELAY_STATE:
      return "PARLEY_EVENT_RELAY_STATE";
    case PARLEY_EVENT_INCOMING_CALL:
      return "PARLEY_EVENT_INCOMING_CALL";
    case PARLEY_EVENT_CALL_STATE:
      return "PARLEY_EVENT_CALL_STATE";
    case PARLEY_EVENT_DATAGRAM:
      return "PARLEY_EVENT_DATAGRAM";
    case PARLEY_EVENT_PATH_CHANGED:
      return "PARLEY_EVENT_PATH_CHANGED";
    case PARLEY_EVENT_ERROR:
      return "PARLEY_EVENT_ERROR";
    case PARLEY_EVENT_QUALITY_CHANGED:
      return "PARLEY_EVENT_QUALITY_CHANGED";
    case PARLEY_EVENT_RELAY_TRUSTED:
      return "PARLEY_EVENT_RELAY_TRUSTED";
    case PARLEY_EVENT_ROOM_UPDATE:
      return "PARLEY_EVENT_ROOM_UPDATE";
    case PARLEY_EVENT_ROOM_FRAME:
      return "PARLEY_EVENT_ROOM_FRAME";
  }
  return "unknown";
}

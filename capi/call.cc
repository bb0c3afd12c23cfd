// Contexts, calls and audio through the C ABI. A thin layer: validation, handle bookkeeping
// and event translation; the work is pc::Context's and pc::VoiceChannel's. Rooms: room.cc.
#include <sodium.h>

#include <cstddef>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/resolver.h"
#include "base/address.h"
#include "base/log.h"
#include "call/context.h"
#include "capi_internal.h"
#include "context_internal.h"
#include "identity/fingerprint.h"
#include "identity/identity.h"
#include "parley/parley.h"

using parley::capi::guarded;
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
    callback(user, &ev);
    for (;;) {
      Queued q;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (nested.empty()) break;
        q = std::move(nested.front());
        nested.pop_front();
      }
      if (q.ev.type == PARLEY_EVENT_NONE) continue;  // it named a handle since released
      q.ev.text = q.text.c_str();
      q.ev.data = q.data.empty() ? nullptr : q.data.data();
      q.ev.len = q.data.size();
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
                 "event queue full (%zu events): %llu events dropped; poll more often",
                 kMaxQueued, static_cast<unsigned long long>(queue_dropped));
    }
    return;
  }
  Queued q;
  q.ev = ev;
  q.text = text;
  if (data) q.data.assign(data, data + len);
  queue.push_back(std::move(q));
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
      return;  // released by the host: nothing names it any more
    }
  }
  ev.call = handle;
  ev.error = e.error;
  ev.origin = int(e.origin);
  // A relay's presented identity, or the sender of an invite that was refused.
  const bool peer_named = e.type == pc::EventType::kError ||
                          (e.type == pc::EventType::kRelayState &&
                           e.relay_state == pc::RelayState::kUntrusted);
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
      ev.type = PARLEY_EVENT_QUALITY_CHANGED;
      ev.profile = e.profile;
      ev.profile_from = e.profile_from;
      ev.quality_reason = int(e.reason);
      ev.timestamp = e.timestamp;
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
static_assert(int(parley::quality::Reason::kDirective) == PARLEY_QUALITY_DIRECTIVE, "reasons");

namespace {
// The layout before quality_mode (0.1.0's first) is still accepted: fields only grow.
constexpr size_t kMinConfig = offsetof(parley_context_config, quality_mode);
}  // namespace

int parley_context_config_init(parley_context_config *config) {
  return parley_context_config_init_v2(config, sizeof *config);
}

int parley_context_config_init_v2(parley_context_config *config, size_t config_size) {
  PARLEY_REQUIRE_ARG(config);
  if (config_size < kMinConfig) {
    return parley::fail(parley::kErrInvalidArgument, "%s: config_size %zu (at least %zu)",
                        __func__, config_size, kMinConfig);
  }
  const size_t n = config_size < sizeof *config ? config_size : sizeof *config;
  std::memset(config, 0, n);
  config->struct_size = n;
  return parley::kOk;
}

int parley_context_create(const parley_identity *id, const parley_context_config *config,
                          parley_context **out) {
  PARLEY_REQUIRE_ARG(out);
  *out = nullptr;
  PARLEY_REQUIRE_HANDLE(kIdentity, id);
  PARLEY_REQUIRE_ARG(config);
  return guarded(__func__, [&]() -> int {
    using parley::fail;
    if (config->struct_size < kMinConfig || config->struct_size > sizeof(parley_context_config)) {
      return fail(parley::kErrInvalidArgument,
                  "parley_context_create: config.struct_size %zu, expected %zu (call "
                  "parley_context_config_init)",
                  config->struct_size, sizeof(parley_context_config));
    }
    const bool has_quality =
        config->struct_size >= offsetof(parley_context_config, quality_profile) + sizeof(int);
    pc::ContextConfig cc;
    if (!config->relay_address) {
      return fail(parley::kErrInvalidArgument, "parley_context_create: config.relay_address "
                                               "must not be NULL");
    }
    std::string relay_host;
    uint16_t relay_port = 0;
    if (parley::SocketAddress::parse(config->relay_address, &cc.relay.relay) == parley::kOk) {
      // an IP literal
    } else if (parley::split_host_port(config->relay_address, &relay_host, &relay_port) ==
               parley::kOk) {
      cc.relay.relay_name = config->relay_address;  // resolved on the context's loop
    } else {
      const std::string why = parley::last_error_message();  // fail() rewrites that buffer
      return fail(parley::kErrAddressInvalid, "parley_context_create: config.relay_address: %s",
                  why.c_str());
    }
    if (config->relay_fingerprint) {
      pid::Fingerprint fp;
      if (pid::Fingerprint::parse(config->relay_fingerprint, &fp) != parley::kOk) {
        return fail(parley::kErrFingerprintInvalid,
                    "parley_context_create: config.relay_fingerprint is not 64 hex digits");
      }
      cc.relay.relay_fingerprint = fp;
    }
    if (config->bind_address &&
        parley::SocketAddress::parse(config->bind_address, &cc.bind) != parley::kOk) {
      return fail(parley::kErrAddressInvalid,
                  "parley_context_create: config.bind_address '%s' is not ip:port",
                  config->bind_address);
    }
    cc.audio.sample_rate = config->sample_rate ? config->sample_rate : 48000;
    cc.audio.channels = config->channels ? config->channels : 1;
    if (!parley::media::is_opus_rate(cc.audio.sample_rate)) {
      return fail(parley::kErrAudioFormat,
                  "parley_context_create: config.sample_rate %d (8000, 12000, 16000, 24000 "
                  "or 48000)",
                  config->sample_rate);
    }
    if (cc.audio.channels < 1 || cc.audio.channels > 2) {
      return fail(parley::kErrAudioFormat, "parley_context_create: config.channels %d (1 or 2)",
                  config->channels);
    }
    if (config->jitter_min_ms) cc.audio.jitter.min_delay_ms = config->jitter_min_ms;
    if (config->jitter_max_ms) cc.audio.jitter.max_delay_ms = config->jitter_max_ms;
    if (cc.audio.jitter.min_delay_ms > cc.audio.jitter.max_delay_ms ||
        cc.audio.jitter.max_delay_ms > 2000) {
      return fail(parley::kErrInvalidArgument,
                  "parley_context_create: config.jitter_min_ms %u / jitter_max_ms %u (min <= "
                  "max <= 2000)",
                  cc.audio.jitter.min_delay_ms, cc.audio.jitter.max_delay_ms);
    }
    cc.direct.enabled = config->disable_direct == 0;
    cc.direct.include_loopback = config->include_loopback != 0;
    if (has_quality && config->quality_mode != PARLEY_QUALITY_ADAPTIVE) {
      if (config->quality_mode != PARLEY_QUALITY_FIXED) {
        return fail(parley::kErrInvalidArgument,
                    "parley_context_create: config.quality_mode %d (PARLEY_QUALITY_ADAPTIVE "
                    "or PARLEY_QUALITY_FIXED)",
                    config->quality_mode);
      }
      if (config->quality_profile < 0 || config->quality_profile > 4) {
        return fail(parley::kErrInvalidArgument,
                    "parley_context_create: config.quality_profile %d (0..4)",
                    config->quality_profile);
      }
      cc.audio.profile = uint8_t(config->quality_profile);
      cc.audio.adaptive = false;
    }

    const bool has_cap = config->struct_size >=
                         offsetof(parley_context_config, quality_best_profile) + sizeof(int);
    if (has_cap && config->quality_best_profile != 0) {
      if (config->quality_best_profile < 0 || config->quality_best_profile > 4) {
        return fail(parley::kErrInvalidArgument,
                    "parley_context_create: config.quality_best_profile %d (0..4)",
                    config->quality_best_profile);
      }
      if (cc.audio.adaptive) {
        cc.audio.best_profile = uint8_t(config->quality_best_profile);
        if (cc.audio.profile < cc.audio.best_profile) cc.audio.profile = cc.audio.best_profile;
      }
    }
    if (config->struct_size >= offsetof(parley_context_config, dtx) + sizeof(int)) {
      cc.audio.dtx = config->dtx != 0;
    }
    if (config->struct_size >= offsetof(parley_context_config, bind_address6) + sizeof(char *) &&
        config->bind_address6 &&
        parley::SocketAddress::parse(config->bind_address6, &cc.bind6) != parley::kOk) {
      return fail(parley::kErrAddressInvalid,
                  "parley_context_create: config.bind_address6 '%s' is not [ipv6]:port",
                  config->bind_address6);
    }
    if (config->struct_size >=
            offsetof(parley_context_config, disable_network_watch) + sizeof(int) &&
        config->disable_network_watch != 0) {
      cc.watch_network = false;
    }
    if (config->struct_size >= offsetof(parley_context_config, port_mapping) + sizeof(int)) {
      cc.direct.port_mapping.enabled = config->port_mapping != 0;
    }
    if (config->struct_size >= offsetof(parley_context_config, stun_servers) + sizeof(char *) &&
        config->stun_servers) {
      std::string list = config->stun_servers, item;
      for (size_t at = 0; at <= list.size();) {
        size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        item = list.substr(at, comma - at);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && item.back() == ' ') item.pop_back();
        if (!item.empty()) cc.direct.stun_servers.push_back(item);
        at = comma + 1;
      }
    }
    if (config->struct_size >=
            offsetof(parley_context_config, no_path_timeout_ms) + sizeof(uint32_t) &&
        config->no_path_timeout_ms != 0) {
      cc.no_path_timeout_ms = config->no_path_timeout_ms;
    }
    const bool has_ports =
        config->struct_size >= offsetof(parley_context_config, port_max) + sizeof(int);
    if (has_ports && (config->port_min != 0 || config->port_max != 0)) {
      if (config->port_min < 1 || config->port_max > 65535 ||
          config->port_min > config->port_max) {
        return fail(parley::kErrInvalidArgument,
                    "parley_context_create: config.port_min %d / port_max %d (1 <= min <= max "
                    "<= 65535)",
                    config->port_min, config->port_max);
      }
      if (cc.bind.is_set() && cc.bind.port() != 0) {
        return fail(parley::kErrInvalidArgument,
                    "parley_context_create: config.bind_address '%s' has a port and "
                    "config.port_min is set (use one or the other)",
                    config->bind_address);
      }
      cc.port_min = uint16_t(config->port_min);
      cc.port_max = uint16_t(config->port_max);
    }

    std::unique_ptr<parley_context> c(new parley_context);
    c->callback = config->event_callback;
    c->user = config->event_user_data;
    uint8_t seed[PARLEY_SEED_LEN];
    int r = parley_identity_export_seed(id, seed);
    if (r != parley::kOk) return r;
    r = pid::Identity::from_seed(seed, sizeof seed, &c->identity);
    sodium_memzero(seed, sizeof seed);
    if (r != parley::kOk) return r;
    parley_context *raw = c.get();
    r = pc::Context::create(*c->identity, cc,
                              [raw](const pc::Event &e) { raw->on_event(e); }, &c->ctx);
    if (r != parley::kOk) return r;
    {
      std::lock_guard<std::mutex> lock(c->core->mu);
      c->core->ctx = c->ctx.get();
      c->core->owner = raw;
    }
    parley::capi::handle_add(HandleKind::kContext, raw);
    *out = c.release();
    return parley::kOk;
  });
}

int parley_context_destroy(parley_context *ctx) {
  if (!ctx) return parley::kOk;
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  if (t_in_callback == ctx) {
    return parley::fail(parley::kErrWrongThread,
                        "parley_context_destroy: called from the context's own callback");
  }
  if (!parley::capi::handle_remove(HandleKind::kContext, ctx)) {  // a racing second destroy
    return parley::capi::check_handle(__func__, "ctx", HandleKind::kContext, ctx);
  }
  ctx->core->close();  // requests through call/room handles now fail with kErrClosed
  ctx->ctx.reset();  // hangs up, joins the loop thread: no callback runs after this
  {
    // From here a released handle no longer looks for its context.
    std::lock_guard<std::mutex> lock(ctx->core->mu);
    ctx->core->owner = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->handles.clear();
    ctx->rooms.clear();
    // An incoming call whose event was never polled was never the host's to release.
    for (Queued &q : ctx->queue) {
      if (q.ev.type == PARLEY_EVENT_INCOMING_CALL && q.ev.call &&
          parley::capi::handle_remove(HandleKind::kCall, q.ev.call)) {
        delete q.ev.call;
      }
    }
  }
  delete ctx;
  return parley::kOk;
}

namespace {
int poll_event(const char *function, parley_context *ctx, parley_event *event, size_t size,
               uint32_t timeout_ms = 0) {
  const int h = parley::capi::check_handle(function, "ctx", HandleKind::kContext, ctx);
  if (h != parley::kOk) return h;
  if (!event) return parley::capi::null_argument(function, "event");
  constexpr size_t kMinEvent = offsetof(parley_event, len) + sizeof(size_t);
  if (size < kMinEvent) {
    return parley::fail(parley::kErrInvalidArgument, "%s: event_size %zu (at least %zu)",
                        function, size, kMinEvent);
  }
  if (ctx->callback) {
    return parley::fail(parley::kErrInvalidArgument, "%s: this context delivers to a callback",
                        function);
  }
  std::unique_lock<std::mutex> lock(ctx->mu);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto ready = [ctx] {
    // Events naming a handle released since are dropped (PARLEY_EVENT_NONE).
    while (!ctx->queue.empty() && ctx->queue.front().ev.type == PARLEY_EVENT_NONE) {
      ctx->queue.pop_front();
    }
    return !ctx->queue.empty();
  };
  if (timeout_ms > 0) {
    ctx->queued.wait_until(lock, deadline, ready);
  } else {
    ready();
  }
  if (ctx->queue.empty()) return 0;
  ctx->current = std::move(ctx->queue.front());
  ctx->queue.pop_front();
  parley_event ev = ctx->current.ev;
  ev.text = ctx->current.text.c_str();
  ev.data = ctx->current.data.empty() ? nullptr : ctx->current.data.data();
  ev.len = ctx->current.data.size();
  std::memcpy(event, &ev, size < sizeof ev ? size : sizeof ev);
  return 1;
}
}  // namespace

int parley_context_poll_event(parley_context *ctx, parley_event *event) {
  return poll_event(__func__, ctx, event, sizeof(parley_event));
}

int parley_context_poll_event_v2(parley_context *ctx, parley_event *event, size_t event_size) {
  return poll_event(__func__, ctx, event, event_size);
}

int parley_context_wait_event(parley_context *ctx, parley_event *event, size_t event_size,
                              uint32_t timeout_ms) {
  return poll_event(__func__, ctx, event, event_size, timeout_ms);
}

int parley_context_fingerprint(parley_context *ctx, char *out, size_t out_len) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  PARLEY_REQUIRE_ARG(out);
  const int b = parley::capi::check_fingerprint_buffer(__func__, out_len);
  if (b != parley::kOk) return b;
  std::snprintf(out, out_len, "%s", ctx->identity->fingerprint().hex().c_str());
  return parley::kOk;
}

int parley_context_relay_fingerprint(parley_context *ctx, char *out, size_t out_len) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  PARLEY_REQUIRE_ARG(out);
  const int b = parley::capi::check_fingerprint_buffer(__func__, out_len);
  if (b != parley::kOk) return b;
  return guarded(__func__, [&]() -> int {
    return parley::capi::on_core(__func__, *ctx->core, [&](pc::Context &c) -> int {
      const auto fp = c.relay_fingerprint();
      if (!fp) {
        return parley::fail(parley::kErrNotRegistered,
                            "parley_context_relay_fingerprint: no relay identity yet (none "
                            "pinned, none seen)");
      }
      std::snprintf(out, out_len, "%s", fp->hex().c_str());
      return parley::kOk;
    });
  });
}

int parley_context_trust_relay(parley_context *ctx, const char *relay_fingerprint) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  PARLEY_REQUIRE_ARG(relay_fingerprint);
  return guarded(__func__, [&]() -> int {
    pid::Fingerprint fp;
    if (pid::Fingerprint::parse(relay_fingerprint, &fp) != parley::kOk) {
      return parley::fail(parley::kErrFingerprintInvalid,
                          "parley_context_trust_relay: relay_fingerprint is not 64 hex digits");
    }
    return parley::capi::on_core(__func__, *ctx->core,
                                 [&](pc::Context &c) -> int { return c.trust_relay(fp); });
  });
}

int parley_context_network_changed(parley_context *ctx) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  return guarded(__func__, [&]() -> int {
    return parley::capi::on_core(__func__, *ctx->core,
                                 [](pc::Context &c) -> int { return c.network_changed(); });
  });
}

int parley_call_start(parley_context *ctx, const char *peer_fingerprint, parley_call **out) {
  PARLEY_REQUIRE_ARG(out);
  *out = nullptr;
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  PARLEY_REQUIRE_ARG(peer_fingerprint);
  return guarded(__func__, [&]() -> int {
    pid::Fingerprint peer;
    if (pid::Fingerprint::parse(peer_fingerprint, &peer) != parley::kOk) {
      return parley::fail(parley::kErrFingerprintInvalid,
                          "parley_call_start: peer_fingerprint is not 64 hex digits");
    }
    const parley::signal::CallId id = parley::signal::CallId::random();
    std::unique_ptr<parley_call> h(new parley_call{ctx->core, id, peer, nullptr});
    // Live and mapped before the call starts: its first event may reach a callback (which
    // may use the handle) before this function returns.
    parley::capi::handle_add(HandleKind::kCall, h.get());
    {
      std::lock_guard<std::mutex> lock(ctx->mu);
      ctx->handles[key_of(id)] = h.get();
    }
    // Through the core: a callback may start a call while another thread destroys `ctx`.
    const int r = parley::capi::on_core(__func__, *ctx->core, [&](pc::Context &c) -> int {
      return c.start_call_with_id(peer, id, &h->voice);
    });
    if (r != parley::kOk) {
      {
        std::lock_guard<std::mutex> lock(ctx->mu);
        ctx->handles.erase(key_of(id));
      }
      parley::capi::handle_remove(HandleKind::kCall, h.get());
      return r;
    }
    *out = h.release();
    return parley::kOk;
  });
}


namespace {
// Runs `f` on the call's context: kErrCallEnded once the call ended, kErrClosed once the
// context is gone.
template <typename F>
int with_context(const char *function, parley_call *call, F &&f) {
  const int h = parley::capi::check_handle(function, "call", HandleKind::kCall, call);
  if (h != parley::kOk) return h;
  return guarded(function, [&]() -> int {
    if (call->ended) return parley::fail(parley::kErrCallEnded, "%s: the call has ended", function);
    return parley::capi::on_core(function, *call->core, f);
  });
}
}  // namespace

int parley_call_accept(parley_call *call) {
  return with_context(__func__, call, [&](pc::Context &c) -> int { return c.accept(call->id); });
}

int parley_call_reject(parley_call *call) {
  return with_context(__func__, call, [&](pc::Context &c) -> int { return c.reject(call->id); });
}

int parley_call_hangup(parley_call *call) {
  return with_context(__func__, call, [&](pc::Context &c) -> int { return c.hangup(call->id); });
}

void parley_call_release(parley_call *call) {
  if (!call) return;
  if (!parley::capi::handle_remove(HandleKind::kCall, call)) {
    parley::fail(parley::kErrInvalidHandle,
                 "parley_call_release: not a live parley_call (released twice?); ignored");
    PARLEY_LOG(parley::kLogWarn, "capi", "%s", parley::last_error_message());
    return;
  }
  const std::string saved = parley::last_error_message();
  {
    // Unlinked under the core's lock: destroy cannot free the owner meanwhile, and once
    // this returns no event can name the handle.
    std::lock_guard<std::mutex> core_lock(call->core->mu);
    if (parley_context *owner = call->core->owner) {
      std::lock_guard<std::mutex> lock(owner->mu);
      auto it = owner->handles.find(key_of(call->id));
      if (it != owner->handles.end() && it->second == call) owner->handles.erase(it);
      owner->drop_events([call](const parley_event &ev) { return ev.call == call; });
      if (owner->current.ev.call == call) owner->current.ev.call = nullptr;
    }
  }
  // Not under a lock: from inside the callback this runs inline and emits events (which no
  // longer find the handle). kErrCallNotFound if it already ended, kErrClosed once the
  // context is gone: both fine.
  // Either way through the loop: an event naming the call that the context's thread is
  // delivering right now is over before the handle is freed.
  parley::capi::on_core(__func__, *call->core, [&](pc::Context &ctx) -> int {
    if (call->ended) {
      ctx.sync();
      return parley::kOk;
    }
    return ctx.hangup(call->id);
  });
  parley::restore_last_error_message(saved);
  delete call;
}

int parley_call_peer(const parley_call *call, char *out, size_t out_len) {
  PARLEY_REQUIRE_HANDLE(kCall, call);
  PARLEY_REQUIRE_ARG(out);
  const int b = parley::capi::check_fingerprint_buffer(__func__, out_len);
  if (b != parley::kOk) return b;
  std::snprintf(out, out_len, "%s", call->peer.hex().c_str());
  return parley::kOk;
}

// The audio functions set no error message on the hot path: formatting a message is not
// real-time safe. Errors are codes only.
int parley_call_push_audio(parley_call *call, const int16_t *pcm, size_t frames) {
  if (!call || (!pcm && frames > 0)) return parley::kErrInvalidArgument;
  if (frames > 0x7fffffff) frames = 0x7fffffff;
  const int r = call->voice->push(pcm, frames);
  return r == parley::kErrCallNotFound ? parley::kErrCallEnded : r;
}

int parley_call_pull_audio(parley_call *call, int16_t *out, size_t frames) {
  if (!call || (!out && frames > 0)) return parley::kErrInvalidArgument;
  const int r = call->voice->pull(out, frames);
  return r == parley::kErrCallNotFound ? parley::kErrCallEnded : r;
}

int parley_call_set_muted(parley_call *call, int muted) {
  if (!call) return parley::kErrInvalidArgument;
  call->voice->set_muted(muted != 0);
  return parley::kOk;
}

int parley_call_send_datagram(parley_call *call, const void *data, size_t len) {
  PARLEY_REQUIRE_HANDLE(kCall, call);
  if (!data && len > 0) return parley::capi::null_argument(__func__, "data");
  if (len > PARLEY_DATAGRAM_MAX) {
    return parley::fail(parley::kErrMessageTooLarge, "%s: %zu bytes (at most %d)", __func__,
                        len, PARLEY_DATAGRAM_MAX);
  }
  return with_context(__func__, call, [&](pc::Context &c) -> int {
    return c.send_media(call->id, 0, 0, static_cast<const uint8_t *>(data), len);
  });
}

int parley_call_get_stats(parley_call *call, parley_call_stats *stats) {
  PARLEY_REQUIRE_HANDLE(kCall, call);
  PARLEY_REQUIRE_ARG(stats);
  if (stats->struct_size < offsetof(parley_call_stats, path) + sizeof(int)) {
    return parley::fail(parley::kErrInvalidArgument, "%s: stats->struct_size %zu", __func__,
                        stats->struct_size);
  }
  return with_context(__func__, call, [&](pc::Context &c) -> int {
    pc::CallStats cs;
    const int r = c.call_stats(call->id, &cs);
    if (r != parley::kOk) return r;
    parley_call_stats s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = stats->struct_size < sizeof s ? stats->struct_size : sizeof s;
    s.path = int(cs.path);
    s.rtt_ms = uint32_t(cs.rtt_ms);
    s.path_changes = cs.path_changes;
    s.time_to_direct_ms = cs.time_to_direct_ms;
    s.frames_sent = cs.frames_sent;
    s.frames_received = cs.received;
    s.loss_permille = cs.voice.loss_fraction * 1000u / 256u;
    s.peer_loss_permille = cs.voice.peer_loss_fraction * 1000u / 256u;
    s.profile = cs.voice.sender.profile;
    s.fec_loss_hint = cs.voice.sender.loss_hint;
    s.audio_bytes_sent = cs.voice.sender.bytes;
    s.jitter_delay_ms = cs.voice.jitter.current_delay_ms;
    s.jitter_target_ms = cs.voice.jitter.target_delay_ms;
    s.frames_decoded = cs.voice.jitter.frames_decoded;
    s.fec_recovered = cs.voice.jitter.fec_recovered;
    s.red_recovered = cs.voice.jitter.red_recovered;
    s.concealed = cs.voice.jitter.concealed;
    s.late = cs.voice.jitter.late;
    s.muted = cs.voice.muted ? 1 : 0;
    s.longest_gap_ms = uint32_t(cs.voice.jitter.longest_gap_ms);
    pc::QualityStats qs;
    if (c.call_quality(call->id, &qs) == parley::kOk) {
      s.quality_changes = qs.changes;
      s.quality_reason = int(qs.last_reason);
      s.quality_loss_permille = qs.loss_permille;
    }
    s.direct_attempts = uint32_t(cs.direct_attempts);
    s.direct_error = cs.direct_error;
    s.direct_lost = uint32_t(cs.direct_lost);
    std::memcpy(stats, &s, s.struct_size);
    return parley::kOk;
  });
}

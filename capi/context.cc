// Contexts through the C ABI: configuration, creation, destruction and the context-wide
// requests. Events: events.cc; calls: call.cc; rooms: room.cc.
#include <sodium.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "base/address.h"
#include "base/log.h"
#include "base/resolver.h"
#include "call/context.h"
#include "capi_internal.h"
#include "context_internal.h"
#include "identity/fingerprint.h"
#include "identity/identity.h"
#include "media/opus_codec.h"
#include "parley/parley.h"

using parley::capi::guarded;
using parley::capi::HandleKind;
using parley::capi::Queued;
namespace pc = parley::call;
namespace pid = parley::identity;

namespace {
// The layout before quality_mode (the first) is still accepted: fields only grow.
constexpr size_t kMinConfig = offsetof(parley_context_config, quality_mode);
}  // namespace

int parley_context_config_init_sized(parley_context_config *config, size_t config_size) {
  PARLEY_REQUIRE_ARG(config);
  if (config_size < kMinConfig) {
    return parley::fail(parley::kErrInvalidArgument, "%s: config_size %zu (at least %zu)", __func__,
                        config_size, kMinConfig);
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
    if (has_quality && config->quality_mode != PARLEY_QUALITY_MODE_ADAPTIVE) {
      if (config->quality_mode != PARLEY_QUALITY_MODE_FIXED) {
        return fail(parley::kErrInvalidArgument,
                    "parley_context_create: config.quality_mode %d "
                    "(PARLEY_QUALITY_MODE_ADAPTIVE or PARLEY_QUALITY_MODE_FIXED)",
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

    const bool has_cap =
        config->struct_size >= offsetof(parley_context_config, quality_best_profile) + sizeof(int);
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
      if (config->port_min < 1 || config->port_max > 65535 || config->port_min > config->port_max) {
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
    r = pc::Context::create(
        *c->identity, cc, [raw](const pc::Event &e) { raw->on_event(e); }, &c->ctx);
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
  if (ctx->in_own_callback()) {
    return parley::fail(parley::kErrWrongThread,
                        "parley_context_destroy: called from the context's own callback");
  }
  if (!parley::capi::handle_remove(HandleKind::kContext, ctx)) {  // a racing second destroy
    return parley::capi::check_handle(__func__, "ctx", HandleKind::kContext, ctx);
  }
  ctx->core->close();  // requests through call/room handles now fail with kErrClosed
  ctx->ctx.reset();    // hangs up, joins the loop thread: no callback runs after this
  {
    // From here a destroyed handle no longer looks for its context.
    std::lock_guard<std::mutex> lock(ctx->core->mu);
    ctx->core->owner = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->handles.clear();
    ctx->rooms.clear();
    // An incoming call whose event was never polled was never the host's to destroy.
    for (Queued &q : ctx->queue) {
      if (q.ev.type == PARLEY_EVENT_INCOMING_CALL && q.ev.call &&
          parley::capi::handle_remove(HandleKind::kCall, q.ev.call)) {
        delete q.ev.call;
      }
    }
  }
  ctx->close_fd();
  delete ctx;
  return parley::kOk;
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
    return parley::capi::on_core(
        "parley_context_relay_fingerprint", *ctx->core, [&](pc::Context &c) -> int {
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
    return parley::capi::on_core("parley_context_trust_relay", *ctx->core,
                                 [&](pc::Context &c) -> int { return c.trust_relay(fp); });
  });
}

int parley_context_network_changed(parley_context *ctx) {
  PARLEY_REQUIRE_HANDLE(kContext, ctx);
  return guarded(__func__, [&]() -> int {
    return parley::capi::on_core("parley_context_network_changed", *ctx->core,
                                 [](pc::Context &c) -> int { return c.network_changed(); });
  });
}

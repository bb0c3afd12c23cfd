// Calls and their audio through the C ABI. A thin layer: validation, handle bookkeeping;
// the work is pc::Context's and pc::VoiceChannel's.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "base/log.h"
#include "call/context.h"
#include "capi_internal.h"
#include "context_internal.h"
#include "identity/fingerprint.h"
#include "parley/parley.h"

using parley::capi::guarded;
using parley::capi::HandleKind;
using parley::capi::key_of;
namespace pc = parley::call;
namespace pid = parley::identity;

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
    const int r = parley::capi::on_core(
        "parley_call_start", *ctx->core,
        [&](pc::Context &c) -> int { return c.start_call_with_id(peer, id, &h->voice); });
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
// context is gone. A call that ends between the check here and `f` on the context's thread
// is gone from the context (kErrCallNotFound): the host's handle still names it, so that too
// is kErrCallEnded.
template <typename F>
int with_context(const char *function, parley_call *call, F &&f) {
  const int h = parley::capi::check_handle(function, "call", HandleKind::kCall, call);
  if (h != parley::kOk) return h;
  return guarded(function, [&]() -> int {
    if (call->ended) return parley::fail(parley::kErrCallEnded, "%s: the call has ended", function);
    const int r = parley::capi::on_core(function, *call->core, f);
    if (r != parley::kErrCallNotFound) return r;
    return parley::fail(parley::kErrCallEnded, "%s: the call has ended", function);
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

int parley_call_destroy(parley_call *call) {
  if (!call) return parley::kOk;
  if (!parley::capi::handle_remove(HandleKind::kCall, call)) {
    parley::fail(parley::kErrInvalidHandle,
                 "parley_call_destroy: not a live parley_call (destroyed twice?); ignored");
    PARLEY_LOG(parley::kLogWarn, "capi", "%s", parley::last_error_message());
    return parley::kErrInvalidHandle;
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
  // longer find the handle). kErrCallNotFound or kErrCallEnded if it already ended,
  // kErrClosed once the context is gone: all fine.
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
  return parley::kOk;
}

int parley_call_set_user_data(parley_call *call, void *user_data) {
  PARLEY_REQUIRE_HANDLE(kCall, call);
  call->user_data.store(user_data, std::memory_order_release);
  return parley::kOk;
}

void *parley_call_user_data(const parley_call *call) {
  if (!call || parley::capi::check_handle(__func__, "call", HandleKind::kCall, call) != 0) {
    return nullptr;
  }
  return call->user_data.load(std::memory_order_acquire);
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
  return call->voice->push(pcm, frames);
}

int parley_call_pull_audio(parley_call *call, int16_t *out, size_t frames) {
  if (!call || (!out && frames > 0)) return parley::kErrInvalidArgument;
  return call->voice->pull(out, frames);
}

int parley_call_push_audio_float(parley_call *call, const float *pcm, size_t frames) {
  if (!call || (!pcm && frames > 0)) return parley::kErrInvalidArgument;
  if (frames > 0x7fffffff) frames = 0x7fffffff;
  return call->voice->push(pcm, frames);
}

int parley_call_pull_audio_float(parley_call *call, float *out, size_t frames) {
  if (!call || (!out && frames > 0)) return parley::kErrInvalidArgument;
  return call->voice->pull(out, frames);
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

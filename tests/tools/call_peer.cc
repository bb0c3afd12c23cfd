// parley-call-peer: one party of a call, driven by the NAT-lab tests. It registers with a
// relay, places a call (--call FINGERPRINT) or answers the first incoming one, then streams
// numbered frames at --fps each way and reports what happens as JSON lines on stdout:
//
//   {"ev":"ready","fp":HEX,"local":ADDR}          registered with the relay
//   {"ev":"active","t":MS}                        the call is accepted (t: since start)
//   {"ev":"path","from":P,"to":P,"reason":R,"t":MS,"since_active":MS}
//   {"ev":"first_frame","since_active":MS,"via":P}
//   {"ev":"stats",...}                            on the "stats" command (see print_stats)
//   {"ev":"ended","error":N}
//
// Commands on stdin, one per line: "stats", "reset" (restart the receive measurements),
// "hangup", "quit". The payload of frame n is n (u64 big-endian) padded to 60 bytes, so the
// receiver can count losses, duplicates and the longest run of missing frames exactly.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "call/context.h"
#include "identity/seed_file.h"

using namespace parley;

namespace {

struct Options {
  std::string seed, relay, relay_fp, bind = "0.0.0.0:0", call;
  int fps = 50;
  uint32_t budget_ms = 3000, dead_max_ms = 1000;
  bool no_direct = false, loopback = false;
  std::string log_level = "warn";
};

void usage() {
  std::fprintf(stderr,
               "usage: parley-call-peer --seed FILE --relay IP:PORT --relay-fp HEX [--call HEX]\n"
               "       [--bind IP:PORT] [--fps N] [--budget-ms N] [--dead-max-ms N]\n"
               "       [--no-direct] [--loopback] [--log-level LEVEL]\n");
}

std::mutex out_mu;
void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void emit(const char *fmt, ...) {
  std::lock_guard<std::mutex> lock(out_mu);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// What the receiver measures; guarded by `mu`.
struct Receive {
  std::mutex mu;
  std::set<uint64_t> seen;
  uint64_t duplicates = 0, frames = 0, via_relay = 0, via_direct = 0;
  uint64_t lo = UINT64_MAX, hi = 0;
  Timestamp last_arrival = 0;
  Timestamp max_gap = 0;  // longest time between two consecutive deliveries
  uint64_t max_missing_run = 0;  // longest run of frame numbers never delivered
  void reset() {
    seen.clear();
    duplicates = frames = via_relay = via_direct = 0;
    lo = UINT64_MAX;
    hi = 0;
    last_arrival = 0;
    max_gap = 0;
    max_missing_run = 0;
  }
  uint64_t missing() const { return seen.empty() ? 0 : (hi - lo + 1) - seen.size(); }
  void compute_runs() {
    max_missing_run = 0;
    uint64_t prev = 0;
    bool first = true;
    for (uint64_t n : seen) {
      if (!first && n - prev - 1 > max_missing_run) max_missing_run = n - prev - 1;
      prev = n;
      first = false;
    }
  }
};

}  // namespace

int main(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seed") o.seed = next();
    else if (a == "--relay") o.relay = next();
    else if (a == "--relay-fp") o.relay_fp = next();
    else if (a == "--bind") o.bind = next();
    else if (a == "--call") o.call = next();
    else if (a == "--fps") o.fps = std::stoi(next());
    else if (a == "--budget-ms") o.budget_ms = uint32_t(std::stoul(next()));
    else if (a == "--dead-max-ms") o.dead_max_ms = uint32_t(std::stoul(next()));
    else if (a == "--no-direct") o.no_direct = true;
    else if (a == "--loopback") o.loopback = true;
    else if (a == "--log-level") o.log_level = next();
    else {
      usage();
      return 2;
    }
  }
  if (o.seed.empty() || o.relay.empty() || o.relay_fp.empty() || o.fps <= 0) {
    usage();
    return 2;
  }
  static const char *const kLevels[] = {"off", "error", "warn", "info", "debug", "trace"};
  for (int i = 0; i < 6; ++i) {
    if (o.log_level == kLevels[i]) log_set_level(i);
  }

  std::unique_ptr<identity::Identity> id;
  int r = identity::load_seed_file(o.seed.c_str(), &id);
  if (r == kErrSeedFileNotFound) {
    r = identity::Identity::generate(&id);
    if (r == kOk) r = identity::save_seed_file(*id, o.seed.c_str(), false);
  }
  if (r != kOk) {
    std::fprintf(stderr, "identity: %s\n", last_error_message());
    return 1;
  }
  call::ContextConfig cfg;
  identity::Fingerprint relay_fp, callee;
  if (SocketAddress::parse(o.relay, &cfg.relay.relay) != kOk ||
      SocketAddress::parse(o.bind, &cfg.bind) != kOk ||
      identity::Fingerprint::parse(o.relay_fp.c_str(), &relay_fp) != kOk ||
      (!o.call.empty() && identity::Fingerprint::parse(o.call.c_str(), &callee) != kOk)) {
    std::fprintf(stderr, "bad address or fingerprint\n");
    return 2;
  }
  cfg.relay.relay_fingerprint = relay_fp;
  cfg.direct.enabled = !o.no_direct;
  cfg.direct.budget_ms = o.budget_ms;
  cfg.direct.dead_max_ms = o.dead_max_ms;
  cfg.direct.include_loopback = o.loopback;

  const Timestamp t0 = monotonic_now();
  auto ms_since = [](Timestamp t) { return (long long)((monotonic_now() - t) / 1000000); };
  std::mutex mu;
  std::condition_variable cv;
  bool registered = false, ended = false;
  signal::CallId call;
  bool have_call = false, active = false;
  Timestamp active_at = 0;
  Receive rx;
  std::atomic<bool> first_frame{false};
  call::Context *ctx_ptr = nullptr;

  std::unique_ptr<call::Context> ctx;
  r = call::Context::create(*id, cfg, [&](const call::Event &e) {
    switch (e.type) {
      case call::EventType::kRelayState: {
        std::lock_guard<std::mutex> lock(mu);
        if (e.relay_state == call::RelayState::kRegistered && !registered) {
          registered = true;
          cv.notify_all();
        }
        break;
      }
      case call::EventType::kIncomingCall: {
        bool take = false;
        {
          std::lock_guard<std::mutex> lock(mu);
          take = !have_call && o.call.empty();
          if (take) {
            have_call = true;
            call = e.call;
          }
        }
        // On the loop thread these run inline and emit events re-entrantly: no lock held.
        if (take) {
          ctx_ptr->accept(e.call);
        } else {
          ctx_ptr->reject(e.call);
        }
        break;
      }
      case call::EventType::kCallState: {
        std::lock_guard<std::mutex> lock(mu);
        if (!have_call || !(e.call == call)) break;
        if (e.call_state == call::CallState::kActive && !active) {
          active = true;
          active_at = monotonic_now();
          emit("{\"ev\":\"active\",\"t\":%lld}", ms_since(t0));
        } else if (e.call_state == call::CallState::kEnded) {
          ended = true;
          emit("{\"ev\":\"ended\",\"error\":%d}", e.error);
        }
        cv.notify_all();
        break;
      }
      case call::EventType::kPathChanged: {
        call::CallStats s;
        ctx_ptr->call_stats(e.call, &s);
        emit("{\"ev\":\"path\",\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"%s\",\"t\":%lld,"
             "\"since_active\":%lld,\"local\":\"%s\",\"remote\":\"%s\"}",
             call::path_kind_name(e.path_from), call::path_kind_name(e.path), e.text.c_str(),
             ms_since(t0), ms_since(active_at), s.local_candidate.c_str(),
             s.remote_candidate.c_str());
        break;
      }
      case call::EventType::kMedia: {
        if (e.is_room || e.len < 8) break;
        uint64_t n = 0;
        for (int i = 0; i < 8; ++i) n = n << 8 | e.payload[i];
        const Timestamp now = monotonic_now();
        if (!first_frame.exchange(true)) {
          emit("{\"ev\":\"first_frame\",\"since_active\":%lld,\"via\":\"%s\"}",
               ms_since(active_at), call::path_kind_name(e.path));
        }
        std::lock_guard<std::mutex> lock(rx.mu);
        ++rx.frames;
        (e.path == call::PathKind::kDirect ? rx.via_direct : rx.via_relay)++;
        if (!rx.seen.insert(n).second) ++rx.duplicates;
        if (n < rx.lo) rx.lo = n;
        if (n > rx.hi) rx.hi = n;
        if (rx.last_arrival && now - rx.last_arrival > rx.max_gap) {
          rx.max_gap = now - rx.last_arrival;
        }
        rx.last_arrival = now;
        break;
      }
      default:
        break;
    }
  }, &ctx);
  if (r != kOk) {
    std::fprintf(stderr, "context: %s\n", last_error_message());
    return 1;
  }
  ctx_ptr = ctx.get();
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(20), [&] { return registered; })) {
      std::fprintf(stderr, "not registered with the relay within 20 s\n");
      return 1;
    }
  }
  emit("{\"ev\":\"ready\",\"fp\":\"%s\",\"local\":\"%s\",\"observed\":\"%s\"}",
       id->fingerprint().hex().c_str(), ctx->local_address().to_string().c_str(),
       ctx->observed_address().to_string().c_str());
  if (!o.call.empty()) {
    // The id is ours before the call starts: its ACTIVE event may arrive (on the loop
    // thread) before start_call_with_id returns, and must already find it.
    const signal::CallId c = signal::CallId::random();
    {
      std::lock_guard<std::mutex> lock(mu);
      call = c;
      have_call = true;
    }
    r = ctx->start_call_with_id(callee, c);
    if (r != kOk) {
      emit("{\"ev\":\"ended\",\"error\":%d}", r);
      return 1;
    }
  }

  // The sender: frame n every 1/fps seconds while the call is active (pacing is load
  // shaping, like a microphone's clock, not synchronisation).
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return active || ended || stop; });
      if (!active) return;
    }
    const auto period = std::chrono::microseconds(1000000 / o.fps);
    auto next = std::chrono::steady_clock::now();
    uint8_t payload[60] = {};
    for (uint64_t n = 1; !stop; ++n) {
      for (int i = 0; i < 8; ++i) payload[i] = uint8_t(n >> (56 - 8 * i));
      ctx->send_media(call, uint32_t(n * 960), 0, payload, sizeof payload);
      next += period;
      std::this_thread::sleep_until(next);
    }
  });

  auto print_stats = [&] {
    call::CallStats s;
    const int sr = ctx->call_stats(call, &s);
    std::lock_guard<std::mutex> lock(rx.mu);
    rx.compute_runs();
    emit("{\"ev\":\"stats\",\"ok\":%s,\"path\":\"%s\",\"received\":%llu,\"unique\":%zu,"
         "\"duplicates\":%llu,\"missing\":%llu,\"max_missing_run\":%llu,\"max_gap_ms\":%.1f,"
         "\"via_relay\":%llu,\"via_direct\":%llu,\"sent\":%llu,\"sent_relay\":%llu,"
         "\"sent_direct\":%llu,\"dropped_duplicates\":%llu,\"auth_failed\":%llu,"
         "\"rtt_ms\":%llu,\"time_to_direct_ms\":%lld,\"path_changes\":%llu,"
         "\"local\":\"%s\",\"remote\":\"%s\",\"direct_error\":%d}",
         sr == kOk ? "true" : "false", call::path_kind_name(s.path),
         (unsigned long long)rx.frames, rx.seen.size(), (unsigned long long)rx.duplicates,
         (unsigned long long)rx.missing(), (unsigned long long)rx.max_missing_run,
         rx.max_gap / 1e6, (unsigned long long)rx.via_relay, (unsigned long long)rx.via_direct,
         (unsigned long long)s.frames_sent, (unsigned long long)s.sent_relay,
         (unsigned long long)s.sent_direct, (unsigned long long)s.duplicates,
         (unsigned long long)s.auth_failed, (unsigned long long)s.rtt_ms,
         (long long)s.time_to_direct_ms, (unsigned long long)s.path_changes,
         s.local_candidate.c_str(), s.remote_candidate.c_str(), s.direct_error);
  };

  char line[256];
  while (std::fgets(line, sizeof line, stdin)) {
    std::string cmd(line);
    while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r')) cmd.pop_back();
    if (cmd == "stats") {
      print_stats();
    } else if (cmd == "reset") {
      std::lock_guard<std::mutex> lock(rx.mu);
      rx.reset();
      emit("{\"ev\":\"reset\"}");
    } else if (cmd == "hangup") {
      ctx->hangup(call);
    } else if (cmd == "quit") {
      break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  sender.join();
  ctx.reset();
  return 0;
}

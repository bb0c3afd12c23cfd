// parley-call-peer: one party of a call or a room member, driven by the NAT-lab tests
// (tests/natlab/test_calls.py, test_resume.py). It registers with a relay, then either places
// a call (--call FINGERPRINT) or answers the first incoming one, or joins a room (--room HEX32,
// a 16-byte room id) instead; it streams numbered frames at --fps and reports what happens as
// JSON lines on stdout (t: ms since start):
//
//   {"ev":"relay","state":S,"error":N,"t":MS}     every relay state change (S from
//                                                 call::relay_state_name: "registered", ...)
//   {"ev":"ready","fp":HEX,"local":ADDR,"observed":ADDR,"relay":ADDR}
//                                                 registered with the relay (once)
//   {"ev":"error","error":N,"text":T,"t":MS}      an error event not tied to a call's end
// Call mode:
//   {"ev":"active","t":MS}                        the call is accepted
//   {"ev":"path","from":P,"to":P,"reason":R,"t":MS,"since_active":MS}
//   {"ev":"first_frame","since_active":MS,"via":P}
//   {"ev":"stats",...}                            on the "stats" command (see print_stats)
//   {"ev":"ended","error":N,"t":MS}
// Room mode (rooms are relayed; the payload is not sealed, the test needs no room key):
//   {"ev":"room","members":N,"stream":ID,"t":MS}  every membership update of the room
//   {"ev":"stats","mode":"room",...,"senders":[{"fp":HEX,...},...]}   totals over the
//                                                 senders, then one entry per sender
//
// Commands on stdin, one per line: "stats", "reset" (restart the receive measurements),
// "hangup" (room mode: leave the room), "network-changed" (Context::network_changed, answered
// by {"ev":"network-changed","error":N,"t":MS}), "quit". The payload of frame n is n (u64 big-endian)
// padded to 60 bytes, so the receiver can count losses, duplicates and the longest run of
// missing frames exactly; the numbering runs on through relay outages (a microphone does not
// stop), so frames sent while nothing carried them show up as missing. In a room the
// receiver counts each sender (by fingerprint: stream ids change when the relay restarts)
// separately.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
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
  std::string seed, relay, relay_fp, bind, bind6, call, room;
  int fps = 50;
  uint32_t budget_ms = 3000, dead_max_ms = 1000;
  long long no_path_timeout_ms = -1;  // -1: the library's default
  long long ready_timeout_ms = 20000;  // not registered by then: destroy the context, exit 1
  bool no_direct = false, loopback = false, no_network_watch = false;
  std::vector<std::string> stun;
  std::string port_mapping;  // protocols, comma-separated; empty: off
  std::string log_level = "warn";
};

void usage() {
  std::fprintf(stderr,
               "usage: parley-call-peer --seed FILE --relay HOST:PORT --relay-fp HEX\n"
               "       [--call HEX | --room HEX32] [--bind IP:PORT] [--bind6 [IP6]:PORT]\n"
               "       (no --bind: the library's default, a socket of each family)\n"
               "       [--fps N] [--budget-ms N] [--dead-max-ms N] [--no-path-timeout-ms N]\n"
               "       [--ready-timeout-ms N] [--no-network-watch] [--stun HOST:PORT]...\n"
               "       [--port-mapping pcp,natpmp,upnp]\n"
               "       [--no-direct] [--loopback]\n"
               "       [--log-level LEVEL]\n");
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

// `s` as the inside of a JSON string (control characters dropped).
std::string json_escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (uint8_t(c) >= 0x20) {
      out += c;
    }
  }
  return out;
}

bool parse_id16(const std::string &hex, signal::Id16 *out) {
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = hex[2 * i + k];
      unsigned d;
      if (c >= '0' && c <= '9') d = unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') d = unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = unsigned(c - 'A' + 10);
      else return false;
      v = v << 4 | d;
    }
    out->bytes[i] = uint8_t(v);
  }
  return true;
}

// What the receiver measures about one sender; the owner guards it.
struct Receive {
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
  void record(uint64_t n, bool direct, Timestamp now) {
    ++frames;
    (direct ? via_direct : via_relay)++;
    if (!seen.insert(n).second) ++duplicates;
    if (n < lo) lo = n;
    if (n > hi) hi = n;
    if (last_arrival && now - last_arrival > max_gap) max_gap = now - last_arrival;
    last_arrival = now;
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

uint64_t frame_number(const uint8_t *p) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n = n << 8 | p[i];
  return n;
}

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
    else if (a == "--bind6") o.bind6 = next();
    else if (a == "--stun") o.stun.push_back(next());
    else if (a == "--port-mapping") o.port_mapping = next();
    else if (a == "--call") o.call = next();
    else if (a == "--room") o.room = next();
    else if (a == "--fps") o.fps = std::stoi(next());
    else if (a == "--budget-ms") o.budget_ms = uint32_t(std::stoul(next()));
    else if (a == "--dead-max-ms") o.dead_max_ms = uint32_t(std::stoul(next()));
    else if (a == "--no-path-timeout-ms") o.no_path_timeout_ms = std::stoll(next());
    else if (a == "--ready-timeout-ms") o.ready_timeout_ms = std::stoll(next());
    else if (a == "--no-network-watch") o.no_network_watch = true;
    else if (a == "--no-direct") o.no_direct = true;
    else if (a == "--loopback") o.loopback = true;
    else if (a == "--log-level") o.log_level = next();
    else {
      usage();
      return 2;
    }
  }
  if (o.seed.empty() || o.relay.empty() || o.relay_fp.empty() || o.fps <= 0 ||
      (!o.call.empty() && !o.room.empty()) || o.no_path_timeout_ms > UINT32_MAX) {
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
  signal::RoomId room;
  const bool room_mode = !o.room.empty();
  // An IP literal, or a name the context resolves ("host:port").
  if (SocketAddress::parse(o.relay, &cfg.relay.relay) != kOk) cfg.relay.relay_name = o.relay;
  if ((!o.bind.empty() && SocketAddress::parse(o.bind, &cfg.bind) != kOk) ||
      (!o.bind6.empty() && SocketAddress::parse(o.bind6, &cfg.bind6) != kOk) ||
      identity::Fingerprint::parse(o.relay_fp.c_str(), &relay_fp) != kOk ||
      (!o.call.empty() && identity::Fingerprint::parse(o.call.c_str(), &callee) != kOk) ||
      (room_mode && !parse_id16(o.room, &room))) {
    std::fprintf(stderr, "bad address, fingerprint or room id\n");
    return 2;
  }
  cfg.relay.relay_fingerprint = relay_fp;
  cfg.direct.enabled = !o.no_direct;
  cfg.direct.budget_ms = o.budget_ms;
  cfg.direct.dead_max_ms = o.dead_max_ms;
  cfg.direct.include_loopback = o.loopback;
  if (o.no_path_timeout_ms >= 0) cfg.no_path_timeout_ms = uint32_t(o.no_path_timeout_ms);
  cfg.watch_network = !o.no_network_watch;
  cfg.direct.stun_servers = o.stun;
  if (!o.port_mapping.empty()) {
    auto &pm = cfg.direct.port_mapping;
    pm.enabled = true;
    pm.pcp = o.port_mapping.find("pcp") != std::string::npos;
    pm.natpmp = o.port_mapping.find("natpmp") != std::string::npos;
    pm.upnp = o.port_mapping.find("upnp") != std::string::npos;
  }

  const Timestamp t0 = monotonic_now();
  auto ms_since = [](Timestamp t) { return (long long)((monotonic_now() - t) / 1000000); };
  std::mutex mu;
  std::condition_variable cv;
  bool registered = false, ended = false;
  signal::CallId call;
  bool have_call = false, active = false;
  Timestamp active_at = 0;
  // Room mode (under mu): our stream id in the room (0 while the relay has given none, e.g.
  // between a reconnect and the update that follows the automatic re-join) and its members.
  uint32_t room_stream = 0;
  size_t room_members = 0;
  bool room_started = false;
  // Call mode: one sender, guarded by rx_mu. Room mode: one per sending member, keyed by
  // the fingerprint (hex), the map and its entries guarded by rx_mu.
  std::mutex rx_mu;
  Receive rx;
  std::map<std::string, Receive> senders;
  std::atomic<bool> first_frame{false};
  std::atomic<uint64_t> room_sent{0}, room_send_failed{0};
  call::Context *ctx_ptr = nullptr;

  std::unique_ptr<call::Context> ctx;
  r = call::Context::create(*id, cfg, [&](const call::Event &e) {
    switch (e.type) {
      case call::EventType::kRelayState: {
        emit("{\"ev\":\"relay\",\"state\":\"%s\",\"error\":%d,\"t\":%lld}",
             call::relay_state_name(e.relay_state), e.error, ms_since(t0));
        std::lock_guard<std::mutex> lock(mu);
        if (e.relay_state == call::RelayState::kRegistered && !registered) {
          registered = true;
          cv.notify_all();
        }
        break;
      }
      case call::EventType::kError:
        emit("{\"ev\":\"error\",\"error\":%d,\"text\":\"%s\",\"t\":%lld}", e.error,
             json_escape(e.text).c_str(), ms_since(t0));
        break;
      case call::EventType::kIncomingCall: {
        bool take = false;
        {
          std::lock_guard<std::mutex> lock(mu);
          take = !have_call && o.call.empty() && !room_mode;
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
          emit("{\"ev\":\"ended\",\"error\":%d,\"t\":%lld}", e.error, ms_since(t0));
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
      case call::EventType::kRoomUpdate: {
        if (!room_mode || e.room != room) break;
        std::lock_guard<std::mutex> lock(mu);
        room_stream = e.stream_id;
        room_members = e.members.size();
        if (room_stream != 0) room_started = true;
        emit("{\"ev\":\"room\",\"members\":%zu,\"stream\":%u,\"t\":%lld}", room_members,
             room_stream, ms_since(t0));
        cv.notify_all();
        break;
      }
      case call::EventType::kMedia: {
        if (e.len < 8) break;
        const uint64_t n = frame_number(e.payload);
        const Timestamp now = monotonic_now();
        if (e.is_room) {
          if (!room_mode || e.room != room) break;
          std::lock_guard<std::mutex> lock(rx_mu);
          senders[e.peer.hex()].record(n, false, now);
          break;
        }
        if (!first_frame.exchange(true)) {
          emit("{\"ev\":\"first_frame\",\"since_active\":%lld,\"via\":\"%s\"}",
               ms_since(active_at), call::path_kind_name(e.path));
        }
        std::lock_guard<std::mutex> lock(rx_mu);
        rx.record(n, e.path == call::PathKind::kDirect, now);
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
    if (!cv.wait_for(lock, std::chrono::milliseconds(o.ready_timeout_ms),
                     [&] { return registered; })) {
      std::fprintf(stderr, "not registered with the relay within %lld ms\n",
                   o.ready_timeout_ms);
      return 1;
    }
  }
  emit("{\"ev\":\"ready\",\"fp\":\"%s\",\"local\":\"%s\",\"observed\":\"%s\","
       "\"relay\":\"%s\"}",
       id->fingerprint().hex().c_str(), ctx->local_address().to_string().c_str(),
       ctx->observed_address().to_string().c_str(), ctx->relay_address().to_string().c_str());
  if (room_mode) {
    r = ctx->join_room(room);
    if (r != kOk) {
      emit("{\"ev\":\"error\",\"error\":%d,\"text\":\"join_room\",\"t\":%lld}", r,
           ms_since(t0));
      return 1;
    }
  } else if (!o.call.empty()) {
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
      emit("{\"ev\":\"ended\",\"error\":%d,\"t\":%lld}", r, ms_since(t0));
      return 1;
    }
  }

  // The sender: frame n every 1/fps seconds while the call is active, or from the room's
  // first update on (pacing is load shaping, like a microphone's clock, not
  // synchronisation). In a room, frames the context refuses (no stream id while the relay
  // is away) are counted and skipped.
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return active || ended || stop || room_started; });
      if (!active && !room_started) return;
    }
    const auto period = std::chrono::microseconds(1000000 / o.fps);
    auto next = std::chrono::steady_clock::now();
    uint8_t payload[60] = {};
    for (uint64_t n = 1; !stop; ++n) {
      for (int i = 0; i < 8; ++i) payload[i] = uint8_t(n >> (56 - 8 * i));
      if (room_mode) {
        const int sr = ctx->send_room_media(room, uint32_t(n), uint32_t(n * 960), 0, payload,
                                            sizeof payload);
        (sr == kOk ? room_sent : room_send_failed)++;
      } else {
        ctx->send_media(call, uint32_t(n * 960), 0, payload, sizeof payload);
      }
      next += period;
      std::this_thread::sleep_until(next);
    }
  });

  auto mapping_text = [&] {
    const ice::PortMapping m = ctx->port_mapping();
    if (m.protocol == ice::MappingProtocol::kNone) return std::string();
    return std::string(ice::mapping_protocol_name(m.protocol)) + " " + m.external.to_string();
  };
  auto print_stats = [&] {
    call::CallStats s;
    const int sr = ctx->call_stats(call, &s);
    // Before rx_mu: the loop thread takes it to record frames, and this waits for the loop.
    const std::string mapping = mapping_text();
    std::lock_guard<std::mutex> lock(rx_mu);
    rx.compute_runs();
    emit("{\"ev\":\"stats\",\"ok\":%s,\"path\":\"%s\",\"received\":%llu,\"unique\":%zu,"
         "\"duplicates\":%llu,\"missing\":%llu,\"max_missing_run\":%llu,\"max_gap_ms\":%.1f,"
         "\"via_relay\":%llu,\"via_direct\":%llu,\"sent\":%llu,\"sent_relay\":%llu,"
         "\"sent_direct\":%llu,\"dropped_duplicates\":%llu,\"auth_failed\":%llu,"
         "\"rtt_ms\":%llu,\"time_to_direct_ms\":%lld,\"path_changes\":%llu,"
         "\"local\":\"%s\",\"remote\":\"%s\",\"direct_error\":%d,"
         "\"direct_attempts\":%llu,\"ice_restarts\":%llu,\"ice_generation\":%llu,\"direct_generation\":%llu,"
         "\"ice_checks\":%llu,\"ice_checks_max_attempt\":%llu,\"port_mapping\":\"%s\","
         "\"birthday_role\":\"%s\",\"birthday_probes\":%llu,"
         "\"birthday_probes_max_attempt\":%llu,\"birthday_sockets\":%llu,"
         "\"birthday_hits\":%llu}",
         sr == kOk ? "true" : "false", call::path_kind_name(s.path),
         (unsigned long long)rx.frames, rx.seen.size(), (unsigned long long)rx.duplicates,
         (unsigned long long)rx.missing(), (unsigned long long)rx.max_missing_run,
         rx.max_gap / 1e6, (unsigned long long)rx.via_relay, (unsigned long long)rx.via_direct,
         (unsigned long long)s.frames_sent, (unsigned long long)s.sent_relay,
         (unsigned long long)s.sent_direct, (unsigned long long)s.duplicates,
         (unsigned long long)s.auth_failed, (unsigned long long)s.rtt_ms,
         (long long)s.time_to_direct_ms, (unsigned long long)s.path_changes,
         s.local_candidate.c_str(), s.remote_candidate.c_str(), s.direct_error,
         (unsigned long long)s.direct_attempts, (unsigned long long)s.ice_restarts,
         (unsigned long long)s.ice_generation, (unsigned long long)s.direct_generation,
         (unsigned long long)s.ice_checks_sent, (unsigned long long)s.ice_checks_max_attempt,
         mapping.c_str(), s.birthday_role.c_str(), (unsigned long long)s.birthday_probes,
         (unsigned long long)s.birthday_probes_max_attempt,
         (unsigned long long)s.birthday_sockets, (unsigned long long)s.birthday_hits);
  };

  // Room mode: totals over the senders (received, unique, duplicates, missing summed;
  // max_missing_run and max_gap_ms the largest), then each sender with the ms since its last
  // frame.
  auto print_room_stats = [&] {
    size_t members;
    uint32_t stream;
    {
      std::lock_guard<std::mutex> lock(mu);
      members = room_members;
      stream = room_stream;
    }
    std::lock_guard<std::mutex> lock(rx_mu);
    const Timestamp now = monotonic_now();
    unsigned long long received = 0, unique = 0, duplicates = 0, missing = 0, run = 0;
    Timestamp gap = 0;
    std::string list;
    for (auto &kv : senders) {
      Receive &x = kv.second;
      x.compute_runs();
      received += x.frames;
      unique += x.seen.size();
      duplicates += x.duplicates;
      missing += x.missing();
      if (x.max_missing_run > run) run = x.max_missing_run;
      if (x.max_gap > gap) gap = x.max_gap;
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "%s{\"fp\":\"%s\",\"received\":%llu,\"unique\":%zu,\"duplicates\":%llu,"
                    "\"missing\":%llu,\"max_missing_run\":%llu,\"max_gap_ms\":%.1f,"
                    "\"last_ms_ago\":%lld}",
                    list.empty() ? "" : ",", kv.first.c_str(), (unsigned long long)x.frames,
                    x.seen.size(), (unsigned long long)x.duplicates,
                    (unsigned long long)x.missing(), (unsigned long long)x.max_missing_run,
                    x.max_gap / 1e6,
                    x.last_arrival ? (long long)((now - x.last_arrival) / 1000000) : -1LL);
      list += buf;
    }
    emit("{\"ev\":\"stats\",\"ok\":true,\"mode\":\"room\",\"members\":%zu,\"stream\":%u,"
         "\"received\":%llu,\"unique\":%llu,\"duplicates\":%llu,\"missing\":%llu,"
         "\"max_missing_run\":%llu,\"max_gap_ms\":%.1f,\"sent\":%llu,\"send_failed\":%llu,"
         "\"senders\":[%s]}",
         members, stream, received, unique, duplicates, missing, run, gap / 1e6,
         (unsigned long long)room_sent.load(), (unsigned long long)room_send_failed.load(),
         list.c_str());
  };

  char line[256];
  while (std::fgets(line, sizeof line, stdin)) {
    std::string cmd(line);
    while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r')) cmd.pop_back();
    if (cmd == "stats") {
      if (room_mode) print_room_stats();
      else print_stats();
    } else if (cmd == "reset") {
      std::lock_guard<std::mutex> lock(rx_mu);
      rx.reset();
      for (auto &kv : senders) kv.second.reset();
      emit("{\"ev\":\"reset\"}");
    } else if (cmd == "hangup") {
      if (room_mode) ctx->leave_room(room);
      else ctx->hangup(call);
    } else if (cmd == "network-changed") {
      const int nr = ctx->network_changed();
      emit("{\"ev\":\"network-changed\",\"error\":%d,\"t\":%lld}", nr, ms_since(t0));
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

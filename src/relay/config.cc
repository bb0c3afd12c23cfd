#include "relay/config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>

#include "base/error.h"
#include "base/log.h"
#include "quic/stream_buffers.h"

namespace parley::relay {

namespace {

const char kUsage[] =
    "usage: parley-relay [--config FILE] [--KEY VALUE]...\n"
    "  --listen IP:PORT            QUIC (parley/1, h3) and STUN port   [0.0.0.0:7350]\n"
    "                              (twice, one IPv4 and one IPv6: both families)\n"
    "  --stun-alt IP:PORT          second STUN port ('none' to disable) [listen port + 1]\n"
    "  --seed FILE                 identity seed, created (0600) if absent [parley-relay.seed]\n"
    "  --max-connections N         [10000]\n"
    "  --max-connections-per-address N  from one IP address [32]\n"
    "  --max-connections-per-network N  from one IPv4 /24 or IPv6 /64 [256]\n"
    "  --retry-percent N           QUIC Retry once N% of max-connections are used, 0 = always [10]\n"
    "  --h3-max-connections N      HTTP/3 status connections [32]\n"
    "  --h3-idle-timeout-ms N      [5000]\n"
    "  --max-calls N               calls ringing or active [10000]\n"
    "  --max-calls-per-client N    calls placed or accepted [8]\n"
    "  --max-incoming-invites N    unanswered invites waiting for one client [16]\n"
    "  --max-invites-per-pair N    unanswered invites from one caller to one callee [1]\n"
    "  --max-rooms N               [1000]\n"
    "  --max-room-size N           at most 64 [16]\n"
    "  --max-rooms-per-client N    [4]\n"
    "  --ring-timeout-ms N         unanswered invites end after this [60000]\n"
    "  --left-call-timeout-ms N    a call whose party left the relay ends after this unless\n"
    "                              it came back [60000]\n"
    "  --signal-rate N             signaling messages/s per client [50]\n"
    "  --signal-burst N            [200]\n"
    "  --signal-byte-rate N        signaling bytes/s per client [32768]\n"
    "  --signal-byte-burst N       at least 65536 [131072]\n"
    "  --signal-queue-bytes N      unacknowledged signaling per client before it is closed [262144]\n"
    "  --media-packet-rate N       media datagrams/s per client, 0 = unlimited [500]\n"
    "  --media-packet-burst N      [1000]\n"
    "  --media-byte-rate N         media bytes/s per client, 0 = unlimited [1048576]\n"
    "  --media-byte-burst N        [2097152]\n"
    "  --idle-timeout-ms N         QUIC idle timeout [30000]\n"
    "  --shutdown-timeout-ms N     bound on graceful shutdown [3000]\n"
    "  --socket-buffer N           UDP socket buffer bytes [4194304]\n"
    "  --http3 on|off              /health, /metrics, /v1/identity over HTTP/3 [on]\n"
    "  --log-level LEVEL           error|warn|info|debug|trace [info]\n";

bool parse_uint(const std::string &v, uint64_t max, uint64_t *out) {
  if (v.empty() || v.size() > 20) return false;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
  }
  errno = 0;
  const unsigned long long n = std::strtoull(v.c_str(), nullptr, 10);
  if (errno != 0 || n > max) return false;
  *out = n;
  return true;
}

using Setter = std::function<const char *(RelayConfig &, const std::string &)>;

template <typename T>
Setter number(T RelayConfig::*field, uint64_t min, uint64_t max) {
  return [=](RelayConfig &c, const std::string &v) -> const char * {
    uint64_t n;
    if (!parse_uint(v, max, &n) || n < min) return "expects a number in range";
    c.*field = T(n);
    return nullptr;
  };
}

template <typename T>
Setter limit(T RouterLimits::*field, uint64_t min, uint64_t max) {
  return [=](RelayConfig &c, const std::string &v) -> const char * {
    uint64_t n;
    if (!parse_uint(v, max, &n) || n < min) return "expects a number in range";
    c.limits.*field = T(n);
    return nullptr;
  };
}

const std::map<std::string, Setter> &setters() {
  static const std::map<std::string, Setter> m = {
      {"listen",
       [](RelayConfig &c, const std::string &v) -> const char * {
         SocketAddress a;
         if (SocketAddress::parse(v, &a) != kOk) return "expects IP:PORT";
         if (!c.listen_given) {
           c.listen = a;
           c.listen_given = true;
           return nullptr;
         }
         if (c.listen_other.is_set() || a.family() == c.listen.family()) {
           return "is given at most twice: one IPv4 and one IPv6 address";
         }
         c.listen_other = a;
         return nullptr;
       }},
      {"stun-alt",
       [](RelayConfig &c, const std::string &v) -> const char * {
         if (v == "none") {
           c.stun_alt_enabled = false;
           return nullptr;
         }
         c.stun_alt_enabled = true;
         return SocketAddress::parse(v, &c.stun_alt) == kOk ? nullptr
                                                            : "expects IP:PORT or none";
       }},
      {"seed",
       [](RelayConfig &c, const std::string &v) -> const char * {
         if (v.empty()) return "expects a file name";
         c.seed_path = v;
         return nullptr;
       }},
      {"max-connections", number(&RelayConfig::max_connections, 1, 1000000)},
      {"max-connections-per-address",
       number(&RelayConfig::max_connections_per_address, 1, 1000000)},
      {"max-connections-per-network",
       number(&RelayConfig::max_connections_per_network, 1, 1000000)},
      {"retry-percent", number(&RelayConfig::retry_percent, 0, 100)},
      {"h3-max-connections", number(&RelayConfig::h3_max_connections, 1, 100000)},
      {"h3-idle-timeout-ms", number(&RelayConfig::h3_idle_timeout_ms, 1000, 600000)},
      {"max-calls", limit(&RouterLimits::max_calls, 0, 1000000)},
      {"max-calls-per-client", limit(&RouterLimits::max_calls_per_client, 1, 1000)},
      {"max-incoming-invites", limit(&RouterLimits::max_incoming_invites, 1, 1000)},
      {"max-invites-per-pair", limit(&RouterLimits::max_invites_per_pair, 1, 1000)},
      {"max-rooms", limit(&RouterLimits::max_rooms, 0, 1000000)},
      {"max-room-size", limit(&RouterLimits::max_room_size, 2, signal::kMaxParticipants)},
      {"max-rooms-per-client", limit(&RouterLimits::max_rooms_per_client, 1, 1000)},
      {"ring-timeout-ms", limit(&RouterLimits::ring_timeout_ms, 1000, 3600000)},
      {"left-call-timeout-ms", limit(&RouterLimits::left_call_timeout_ms, 1000, 3600000)},
      {"signal-rate", limit(&RouterLimits::signal_rate, 1, 1000000)},
      {"signal-burst", limit(&RouterLimits::signal_burst, 1, 1000000)},
      {"signal-byte-rate", limit(&RouterLimits::signal_byte_rate, 1, 1000000000)},
      // A burst below the largest message would refuse that message forever.
      {"signal-byte-burst",
       limit(&RouterLimits::signal_byte_burst, signal::kMaxMessageSize, 1000000000)},
      {"signal-queue-bytes", number(&RelayConfig::signal_queue_bytes,
                                    signal::kMaxMessageSize + quic::kMessageHeaderLen,
                                    size_t(1) << 30)},
      {"media-packet-rate", limit(&RouterLimits::media_packet_rate, 0, 10000000)},
      {"media-packet-burst", limit(&RouterLimits::media_packet_burst, 1, 10000000)},
      {"media-byte-rate", limit(&RouterLimits::media_byte_rate, 0, 1000000000)},
      {"media-byte-burst", limit(&RouterLimits::media_byte_burst, 1, 1000000000)},
      {"idle-timeout-ms", number(&RelayConfig::idle_timeout_ms, 1000, 600000)},
      {"shutdown-timeout-ms", number(&RelayConfig::shutdown_timeout_ms, 0, 60000)},
      {"socket-buffer", number(&RelayConfig::socket_buffer_bytes, 0, 1 << 30)},
      {"http3",
       [](RelayConfig &c, const std::string &v) -> const char * {
         if (v != "on" && v != "off") return "expects on or off";
         c.http3 = v == "on";
         return nullptr;
       }},
      {"log-level",
       [](RelayConfig &c, const std::string &v) -> const char * {
         static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
         for (int i = 0; i < 6; ++i) {
           if (v == names[i]) {
             c.log_level = i;
             return nullptr;
           }
         }
         return "expects error, warn, info, debug or trace";
       }},
  };
  return m;
}

bool apply(RelayConfig &c, const std::string &key, const std::string &value, std::string *error,
           const std::string &where) {
  auto it = setters().find(key);
  if (it == setters().end()) {
    *error = where + ": unknown option '" + key + "'";
    return false;
  }
  if (const char *why = it->second(c, value)) {
    *error = where + ": " + key + " " + why + " (got '" + value + "')";
    return false;
  }
  return true;
}

std::string trim(const std::string &s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

bool load_file(RelayConfig &c, const std::string &path, std::string *error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read config file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    const std::string where = path + ":" + std::to_string(n);
    if (eq == std::string::npos) {
      *error = where + ": expected 'key = value'";
      return false;
    }
    if (!apply(c, trim(line.substr(0, eq)), trim(line.substr(eq + 1)), error, where)) {
      return false;
    }
  }
  return true;
}

}  // namespace

const char *usage() { return kUsage; }

int parse_config(int argc, const char *const *argv, RelayConfig *out, std::string *error,
                 bool *help) {
  *help = false;
  RelayConfig c;
  SocketAddress::parse("0.0.0.0:7350", &c.listen);
  // The file first, wherever --config appears, so that flags override it.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) {
        *error = "--config needs a file name";
        return kErrInvalidArgument;
      }
      if (!load_file(c, argv[i + 1], error)) return kErrInvalidArgument;
    }
  }
  // A --listen on the command line replaces the file's (both families), as other flags do.
  const SocketAddress file_listen = c.listen, file_other = c.listen_other;
  c.listen_given = false;
  c.listen_other = SocketAddress();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      *help = true;
      *error = kUsage;
      return kErrInvalidArgument;
    }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
      *error = "unexpected argument '" + a + "' (options take a value: --key value)";
      return kErrInvalidArgument;
    }
    const std::string value = argv[++i];
    if (a == "--config") continue;
    if (!apply(c, a.substr(2), value, error, "command line")) return kErrInvalidArgument;
  }
  if (!c.listen_given) {
    c.listen = file_listen;
    c.listen_other = file_other;
  }
  *out = c;
  return kOk;
}

}  // namespace parley::relay

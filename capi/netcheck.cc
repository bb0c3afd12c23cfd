#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

#include "capi_internal.h"
#include "ice/probe.h"
#include "parley/parley.h"

using parley::capi::guarded;
namespace ice = parley::ice;

namespace {

std::string json_string(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_address(const parley::SocketAddress &a) {
  return a.is_set() ? json_string(a.to_string()) : "null";
}

// Milliseconds with microsecond precision from nanoseconds, without printf's %f (which follows
// the host's LC_NUMERIC and could write a decimal comma into the JSON).
std::string ms(uint64_t ns) {
  const uint64_t us = ns / 1000;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llu.%03llu", (unsigned long long)(us / 1000),
                (unsigned long long)(us % 1000));
  return buf;
}

std::string json_bool(const std::optional<bool> &b) {
  return b ? (*b ? "true" : "false") : "null";
}

std::string to_json(const ice::ProbeResult &p) {
  const ice::NetcheckReport &n = p.netcheck;
  std::string j = "{";
  j += "\"udp\": " + std::string(n.udp ? "true" : "false");
  j += ", \"local\": " + json_address(n.local.is_set() ? n.local : p.bound);
  j += ", \"mapped\": " + json_address(n.mapped);
  j += ", \"other_address\": " + json_address(n.other_address);
  j += ", \"nat\": " + json_bool(n.nat);
  j += ", \"mapping\": " + json_string(ice::behaviour_name(n.mapping));
  j += ", \"filtering\": " + json_string(ice::behaviour_name(n.filtering));
  j += ", \"port_preserved\": " + json_bool(n.port_preserved);
  j += ", \"hairpinning\": " + json_bool(n.hairpinning);
  j += ", \"classification\": " + json_string(ice::nat_class_name(n.classification));
  j += ", \"rtt_ms\": " + ms(n.rtt);
  j += ", \"candidates\": [";
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    j += (i ? ", " : "") + json_string(p.candidates[i].to_string());
  }
  j += "], \"stun_servers\": [";
  for (size_t i = 0; i < p.servers.size(); ++i) {
    const auto &s = p.servers[i];
    j += std::string(i ? ", " : "") + "{\"server\": " + json_address(s.server) +
         ", \"status\": " + json_string(ice::server_status_name(s.status)) +
         ", \"mapped\": " + json_address(s.mapped) +
         ", \"rtt_ms\": " + ms(s.rtt) + "}";
  }
  j += "], \"gathering_ms\": " + ms(p.gathering_ns);
  j += "}\n";
  return j;
}

std::string yes_no(const std::optional<bool> &b) { return b ? (*b ? "yes" : "no") : "unknown"; }

std::string to_text(const ice::ProbeResult &p) {
  const ice::NetcheckReport &n = p.netcheck;
  std::string t;
  t += "UDP:             " + std::string(n.udp ? "works" : "blocked") + "\n";
  t += "local address:   " + (n.local.is_set() ? n.local : p.bound).to_string() + "\n";
  if (n.udp) {
    t += "mapped address:  " + n.mapped.to_string() + "\n";
    t += "behind a NAT:    " + yes_no(n.nat) + "\n";
    t += "mapping:         " + std::string(ice::behaviour_name(n.mapping)) + "\n";
    t += "filtering:       " + std::string(ice::behaviour_name(n.filtering)) + "\n";
    t += "port preserved:  " + yes_no(n.port_preserved) + "\n";
    t += "hairpinning:     " + yes_no(n.hairpinning) + "\n";
  }
  t += "classification:  " + std::string(ice::nat_class_name(n.classification)) + "\n";
  t += "candidates (gathered in " + std::to_string(p.gathering_ns / 1000000) + " ms):\n";
  for (const auto &c : p.candidates) t += "  " + c.to_string() + "\n";
  t += "STUN servers:\n";
  for (const auto &s : p.servers) {
    t += "  " + s.server.to_string() + "  " + ice::server_status_name(s.status);
    if (s.mapped.is_set()) {
      t += "  mapped " + s.mapped.to_string() + "  rtt " + std::to_string(s.rtt / 1000000) +
           " ms";
    }
    t += "\n";
  }
  return t;
}

}  // namespace

// The first layout ends with relay_address: callers built against an older header pass a
// smaller struct, of which parley reads what it has and zeroes the rest.
constexpr size_t kV1Size = offsetof(parley_netcheck_options, relay_address) + sizeof(char *);

int parley_netcheck_options_init_sized(parley_netcheck_options *options, size_t options_size) {
  PARLEY_REQUIRE_ARG(options);
  if (options_size < kV1Size) {
    return parley::fail(parley::kErrInvalidArgument, "%s: options_size %zu (at least %zu)",
                        __func__, options_size, kV1Size);
  }
  const size_t n = std::min(options_size, sizeof *options);
  std::memset(options, 0, n);
  options->struct_size = n;
  return parley::kOk;
}

int parley_netcheck_run(const parley_netcheck_options *options, char *out, size_t *out_len) {
  PARLEY_REQUIRE_ARG(options);
  PARLEY_REQUIRE_ARG(out_len);
  if (options->struct_size < kV1Size) {
    return parley::fail(parley::kErrInvalidArgument,
                        "%s: struct_size %zu is smaller than any published layout (%zu)",
                        __func__, options->struct_size, kV1Size);
  }
  parley_netcheck_options copy;
  std::memset(&copy, 0, sizeof copy);
  std::memcpy(&copy, options, std::min(options->struct_size, sizeof copy));
  options = &copy;
  if (options->stun_server_count == 0 || options->stun_servers == nullptr) {
    return parley::fail(parley::kErrInvalidArgument, "%s: at least one STUN server is needed",
                        __func__);
  }
  if (options->format != PARLEY_NETCHECK_JSON && options->format != PARLEY_NETCHECK_TEXT) {
    return parley::fail(parley::kErrInvalidArgument, "%s: unknown format %d", __func__,
                        options->format);
  }
  return guarded(__func__, [&] {
    ice::ProbeOptions po;
    for (size_t i = 0; i < options->stun_server_count; ++i) {
      if (options->stun_servers[i] == nullptr) {
        return parley::fail(parley::kErrInvalidArgument, "stun_servers[%zu] is NULL", i);
      }
      po.stun_servers.emplace_back(options->stun_servers[i]);
    }
    if (options->bind_address) po.bind = options->bind_address;
    if (options->relay_address) {
      int rr = parley::ice::resolve_host_port(options->relay_address, &po.relay);
      if (rr != parley::kOk) return rr;
    }
    if (options->deadline_ms) po.deadline_ms = options->deadline_ms;
    po.include_loopback = options->include_loopback != 0;
    ice::ProbeResult result;
    int r = ice::run_probe(po, &result);
    if (r != parley::kOk) return r;
    const std::string report =
        options->format == PARLEY_NETCHECK_JSON ? to_json(result) : to_text(result);
    const size_t capacity = *out_len;
    *out_len = report.size() + 1;
    if (out == nullptr) return int(parley::kOk);
    if (capacity < report.size() + 1) {
      return parley::fail(parley::kErrBufferTooSmall, "netcheck report needs %zu bytes",
                          report.size() + 1);
    }
    std::memcpy(out, report.c_str(), report.size() + 1);
    return int(parley::kOk);
  });
}

#include "ice/candidate.h"

#include <sodium.h>

#include <algorithm>

#include <cstdio>
#include <vector>

#include "base/error.h"

namespace parley::ice {

const char *candidate_type_name(CandidateType t) {
  switch (t) {
    case CandidateType::kHost: return "host";
    case CandidateType::kServerReflexive: return "srflx";
    case CandidateType::kPeerReflexive: return "prflx";
    case CandidateType::kRelay: return "relay";
  }
  return "?";
}

uint32_t type_preference(CandidateType t) {
  switch (t) {
    case CandidateType::kHost: return 126;
    case CandidateType::kPeerReflexive: return 110;
    case CandidateType::kServerReflexive: return 100;
    case CandidateType::kRelay: return 0;
  }
  return 0;
}

uint32_t candidate_priority(CandidateType t, uint16_t local_preference, uint32_t component) {
  return (type_preference(t) << 24) | (uint32_t(local_preference) << 8) | (256 - component);
}

std::string random_ice_chars(size_t n) {
  static const char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s(n, 'x');
  for (auto &c : s) c = kChars[randombytes_uniform(64)];
  return s;
}

namespace {

int host_rank(const SocketAddress &a) {
  if (!a.is_v6()) return 8;
  const uint8_t *ip = a.ip_bytes();
  // RFC 4291 appendix A: a modified EUI-64 identifier has ff:fe in its middle.
  const bool eui64 = ip[11] == 0xff && ip[12] == 0xfe;
  const int scope = (ip[0] & 0xe0) == 0x20 ? 0 : (ip[0] & 0xfe) == 0xfc ? 2 : 4;
  return scope + (eui64 ? 1 : 0);
}

}  // namespace

void order_host_addresses(std::vector<SocketAddress> *addresses) {
  std::stable_sort(addresses->begin(), addresses->end(),
                   [](const SocketAddress &x, const SocketAddress &y) {
                     return host_rank(x) < host_rank(y);
                   });
}

std::string candidate_foundation(CandidateType t, const SocketAddress &base,
                                 const SocketAddress &server) {
  // FNV-1a over the fields that define a foundation.
  uint32_t h = 2166136261u;
  auto mix = [&](const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  };
  const uint8_t tag = uint8_t(t);
  mix(&tag, 1);
  mix(base.ip_bytes(), base.ip_len());
  const uint8_t sep = 0xff;
  mix(&sep, 1);
  if (server.is_set()) mix(server.ip_bytes(), server.ip_len());
  const uint8_t udp = 17;
  mix(&udp, 1);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

std::string Candidate::to_string() const {
  std::string s = "candidate:" + foundation + " " + std::to_string(component) + " udp " +
                  std::to_string(priority) + " " + address.ip_string() + " " +
                  std::to_string(address.port()) + " typ " + candidate_type_name(type);
  if (related.is_set()) {
    s += " raddr " + related.ip_string() + " rport " + std::to_string(related.port());
  }
  return s;
}

namespace {

bool parse_uint(std::string_view s, uint64_t max, uint64_t *out) {
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839).
bool valid_foundation(std::string_view f) {
  if (f.empty() || f.size() > 32) return false;
  for (char c : f) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

int invalid(std::string_view text, const char *why) {
  return fail(kErrCandidateInvalid, "candidate '%s': %s",
              std::string(text.substr(0, 120)).c_str(), why);
}

}  // namespace

int Candidate::parse(std::string_view text, Candidate *out) {
  constexpr std::string_view kPrefix = "candidate:";
  if (text.substr(0, kPrefix.size()) != kPrefix) return invalid(text, "missing 'candidate:'");
  std::vector<std::string_view> tok;
  std::string_view rest = text.substr(kPrefix.size());
  while (!rest.empty()) {
    const size_t sp = rest.find(' ');
    const std::string_view t = rest.substr(0, sp);
    if (t.empty()) return invalid(text, "empty field (double space)");
    tok.push_back(t);
    if (tok.size() > 12) return invalid(text, "too many fields");
    if (sp == std::string_view::npos) break;
    rest = rest.substr(sp + 1);
    if (rest.empty()) return invalid(text, "trailing space");
  }
  if (tok.size() != 8 && tok.size() != 12) return invalid(text, "wrong number of fields");
  Candidate c;
  if (!valid_foundation(tok[0])) return invalid(text, "bad foundation");
  c.foundation = std::string(tok[0]);
  uint64_t v;
  if (!parse_uint(tok[1], 256, &v) || v == 0) return invalid(text, "component must be 1..256");
  c.component = uint32_t(v);
  if (tok[2] != "udp" && tok[2] != "UDP") return invalid(text, "transport must be udp");
  if (!parse_uint(tok[3], 0x7fffffff, &v) || v == 0) {
    return invalid(text, "priority must be 1..2^31-1");
  }
  c.priority = uint32_t(v);
  uint64_t port;
  if (!parse_uint(tok[5], 65535, &port)) return invalid(text, "bad port");
  if (SocketAddress::parse_ip(tok[4], uint16_t(port), &c.address) != kOk) {
    return invalid(text, "connection address must be an IP literal");
  }
  // Addresses a peer may not direct our connectivity checks at.
  if (port == 0) return invalid(text, "port 0");
  if (c.address.is_unspecified_ip()) return invalid(text, "unspecified address");
  const uint8_t *ip = c.address.ip_bytes();
  if (c.address.is_v4() && (ip[0] >= 224 || (ip[0] == 255))) {
    return invalid(text, "multicast, broadcast or reserved IPv4 address");
  }
  if (c.address.is_v6() && ip[0] == 0xff) return invalid(text, "multicast IPv6 address");
  if (tok[6] != "typ") return invalid(text, "expected 'typ'");
  if (tok[7] == "host") {
    c.type = CandidateType::kHost;
  } else if (tok[7] == "srflx") {
    c.type = CandidateType::kServerReflexive;
  } else if (tok[7] == "prflx") {
    c.type = CandidateType::kPeerReflexive;
  } else if (tok[7] == "relay") {
    c.type = CandidateType::kRelay;
  } else {
    return invalid(text, "unknown candidate type");
  }
  if (tok.size() == 12) {
    if (tok[8] != "raddr" || tok[10] != "rport") return invalid(text, "expected raddr/rport");
    if (!parse_uint(tok[11], 65535, &port)) return invalid(text, "bad rport");
    if (SocketAddress::parse_ip(tok[9], uint16_t(port), &c.related) != kOk) {
      return invalid(text, "raddr must be an IP literal");
    }
    if (c.related.family() != c.address.family()) {
      return invalid(text, "raddr family differs from the address");
    }
  }
  *out = c;
  return kOk;
}

}  // namespace parley::ice

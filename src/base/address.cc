#include "base/address.h"

#include <arpa/inet.h>

#include <cstring>

#include "base/error.h"

namespace parley {

namespace {
// Network input can be arbitrarily long; error messages quote at most 80 characters of it.
std::string quoted(std::string_view text) {
  return std::string(text.substr(0, 80)) + (text.size() > 80 ? "..." : "");
}
}  // namespace

SocketAddress::SocketAddress() {
  std::memset(&storage_, 0, sizeof storage_);
  storage_.ss_family = AF_UNSPEC;
}

int SocketAddress::parse_ip(std::string_view ip, uint16_t port, SocketAddress *out) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (ip.empty() || ip.size() >= sizeof buf) {
    return fail(kErrAddressInvalid, "'%s' is not an IP address", quoted(ip).c_str());
  }
  std::memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = '\0';
  SocketAddress a;
  if (ip.find(':') == std::string_view::npos) {
    auto *sin = reinterpret_cast<struct sockaddr_in *>(&a.storage_);
    if (inet_pton(AF_INET, buf, &sin->sin_addr) != 1) {
      return fail(kErrAddressInvalid, "'%s' is not an IPv4 address", buf);
    }
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  } else {
    auto *sin6 = reinterpret_cast<struct sockaddr_in6 *>(&a.storage_);
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1) {
      return fail(kErrAddressInvalid, "'%s' is not an IPv6 address", buf);
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  }
  *out = a;
  return kOk;
}

int SocketAddress::parse(std::string_view text, SocketAddress *out) {
  std::string_view ip, port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(kErrAddressInvalid, "'%s' is not [IPv6]:port", quoted(text).c_str());
    }
    ip = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    if (ip.find(':') == std::string_view::npos) {
      return fail(kErrAddressInvalid, "'%s': brackets are for IPv6 only", quoted(text).c_str());
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return fail(kErrAddressInvalid, "'%s' is not ip:port (write IPv6 as [ip]:port)",
                  quoted(text).c_str());
    }
    ip = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5) {
    return fail(kErrAddressInvalid, "'%s' has no valid port", quoted(text).c_str());
  }
  uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') {
      return fail(kErrAddressInvalid, "'%s' has no valid port", quoted(text).c_str());
    }
    port = port * 10 + uint32_t(c - '0');
  }
  if (port > 65535) {
    return fail(kErrAddressInvalid, "port %u is out of range", port);
  }
  return parse_ip(ip, uint16_t(port), out);
}

int SocketAddress::from_ip_bytes(const uint8_t *ip, size_t len, uint16_t port,
                                 SocketAddress *out) {
  SocketAddress a;
  if (len == 4) {
    auto *sin = reinterpret_cast<struct sockaddr_in *>(&a.storage_);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, ip, 4);
    sin->sin_port = htons(port);
  } else if (len == 16) {
    auto *sin6 = reinterpret_cast<struct sockaddr_in6 *>(&a.storage_);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, ip, 16);
    sin6->sin6_port = htons(port);
  } else {
    return fail(kErrAddressInvalid, "an IP address is 4 or 16 bytes, not %zu", len);
  }
  *out = a;
  return kOk;
}

SocketAddress SocketAddress::from_sockaddr(const struct sockaddr *sa) {
  SocketAddress a;
  if (sa == nullptr) return a;
  if (sa->sa_family == AF_INET) {
    std::memcpy(&a.storage_, sa, sizeof(struct sockaddr_in));
  } else if (sa->sa_family == AF_INET6) {
    std::memcpy(&a.storage_, sa, sizeof(struct sockaddr_in6));
  }
  return a;
}

uint16_t SocketAddress::port() const {
  if (is_v4()) return ntohs(reinterpret_cast<const struct sockaddr_in *>(&storage_)->sin_port);
  if (is_v6()) return ntohs(reinterpret_cast<const struct sockaddr_in6 *>(&storage_)->sin6_port);
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (is_v4()) reinterpret_cast<struct sockaddr_in *>(&storage_)->sin_port = htons(port);
  if (is_v6()) reinterpret_cast<struct sockaddr_in6 *>(&storage_)->sin6_port = htons(port);
}

const uint8_t *SocketAddress::ip_bytes() const {
  if (is_v4()) {
    return reinterpret_cast<const uint8_t *>(
        &reinterpret_cast<const struct sockaddr_in *>(&storage_)->sin_addr);
  }
  return reinterpret_cast<const uint8_t *>(
      &reinterpret_cast<const struct sockaddr_in6 *>(&storage_)->sin6_addr);
}

size_t SocketAddress::ip_len() const { return is_v4() ? 4 : is_v6() ? 16 : 0; }

socklen_t SocketAddress::sockaddr_len() const {
  return is_v4() ? sizeof(struct sockaddr_in) : is_v6() ? sizeof(struct sockaddr_in6) : 0;
}

bool SocketAddress::is_loopback() const {
  const uint8_t *b = ip_bytes();
  if (is_v4()) return b[0] == 127;
  if (is_v6()) {
    static const uint8_t kLoop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(b, kLoop, 16) == 0;
  }
  return false;
}

bool SocketAddress::is_link_local() const {
  const uint8_t *b = ip_bytes();
  if (is_v4()) return b[0] == 169 && b[1] == 254;
  if (is_v6()) return b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
  return false;
}

bool SocketAddress::is_unspecified_ip() const {
  const size_t n = ip_len();
  const uint8_t *b = ip_bytes();
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return n != 0;
}

std::string SocketAddress::ip_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (!is_set() || inet_ntop(family(), ip_bytes(), buf, sizeof buf) == nullptr) return "";
  return buf;
}

std::string SocketAddress::to_string() const {
  if (!is_set()) return "unspecified";
  if (is_v6()) return "[" + ip_string() + "]:" + std::to_string(port());
  return ip_string() + ":" + std::to_string(port());
}

bool SocketAddress::same_ip(const SocketAddress &o) const {
  return family() == o.family() && std::memcmp(ip_bytes(), o.ip_bytes(), ip_len()) == 0;
}

}  // namespace parley

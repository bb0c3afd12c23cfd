// An IPv4 or IPv6 transport address (IP + UDP port), the value type every network layer
// passes around. Small, copyable, no heap.
#ifndef PARLEY_BASE_ADDRESS_H
#define PARLEY_BASE_ADDRESS_H

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace parley {

class SocketAddress {
 public:
  SocketAddress();  // unspecified (family AF_UNSPEC)

  // "192.0.2.1:3478", "[2001:db8::1]:3478". kOk or kErrAddressInvalid (out untouched).
  static int parse(std::string_view text, SocketAddress *out);
  // An IP literal without port ("192.0.2.1", "2001:db8::1"); port set to `port`.
  static int parse_ip(std::string_view ip, uint16_t port, SocketAddress *out);
  // From raw network-order IP bytes: 4 (IPv4) or 16 (IPv6). kOk or kErrAddressInvalid.
  static int from_ip_bytes(const uint8_t *ip, size_t len, uint16_t port, SocketAddress *out);
  // From a kernel sockaddr (AF_INET / AF_INET6); anything else gives an unspecified address.
  static SocketAddress from_sockaddr(const struct sockaddr *sa);

  int family() const { return storage_.ss_family; }  // AF_INET, AF_INET6 or AF_UNSPEC
  bool is_v4() const { return family() == AF_INET; }
  bool is_v6() const { return family() == AF_INET6; }
  bool is_set() const { return family() != AF_UNSPEC; }
  uint16_t port() const;
  void set_port(uint16_t port);
  // Network-order IP bytes (4 or 16) and their length (0 when unspecified).
  const uint8_t *ip_bytes() const;
  size_t ip_len() const;

  bool is_loopback() const;
  bool is_link_local() const;
  bool is_unspecified_ip() const;  // 0.0.0.0 or ::

  const struct sockaddr *sockaddr_ptr() const {
    return reinterpret_cast<const struct sockaddr *>(&storage_);
  }
  socklen_t sockaddr_len() const;

  std::string ip_string() const;
  std::string to_string() const;  // "ip:port" / "[ip]:port" / "unspecified"

  bool same_ip(const SocketAddress &o) const;
  bool operator==(const SocketAddress &o) const { return same_ip(o) && port() == o.port(); }
  bool operator!=(const SocketAddress &o) const { return !(*this == o); }

 private:
  struct sockaddr_storage storage_;
};

}  // namespace parley

#endif

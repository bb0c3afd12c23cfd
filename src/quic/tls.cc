// The backend-neutral part of tls.h.
#include "quic/tls.h"

#include <cstring>

namespace parley::quic {

const char kAlpn[] = "parley/1";
const char kAlpnH3[] = "h3";

Alpn alpn_from_name(const uint8_t *name, size_t len) {
  auto is = [&](const char *s) { return len == std::strlen(s) && std::memcmp(name, s, len) == 0; };
  if (is(kAlpn)) return Alpn::kParley;
  if (is(kAlpnH3)) return Alpn::kH3;
  return Alpn::kNone;
}

bool is_identity_alert(uint8_t alert) {
  // RFC 8446 6.2's numbers, the same whichever TLS library raised or received them.
  switch (alert) {
    case 42:   // bad_certificate
    case 43:   // unsupported_certificate
    case 44:   // certificate_revoked
    case 45:   // certificate_expired
    case 46:   // certificate_unknown
    case 48:   // unknown_ca
    case 49:   // access_denied
    case 116:  // certificate_required
      return true;
    default:
      return false;
  }
}

}  // namespace parley::quic

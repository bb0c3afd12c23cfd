#include "identity/fingerprint.h"

#include <sodium.h>

#include "base/error.h"

namespace parley::identity {

Fingerprint Fingerprint::of_public_key(const uint8_t public_key[kPublicKeyLen]) {
  Fingerprint fp;
  crypto_hash_sha256(fp.bytes, public_key, kPublicKeyLen);
  return fp;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
constexpr char kHex[] = "0123456789abcdef";
}  // namespace

int Fingerprint::parse(const char *text, Fingerprint *out) {
  Fingerprint fp;
  size_t digits = 0;
  bool last_was_separator = true;  // no leading separator
  for (const char *p = text; *p != '\0'; ++p) {
    const char c = *p;
    if (c == ' ' || c == ':' || c == '-') {
      if (last_was_separator) {
        return fail(kErrFingerprintInvalid,
                    "fingerprint has a misplaced separator at offset %zu", size_t(p - text));
      }
      last_was_separator = true;
      continue;
    }
    const int v = hex_value(c);
    if (v < 0) {
      return fail(kErrFingerprintInvalid,
                  "fingerprint has a non-hex character at offset %zu", size_t(p - text));
    }
    if (digits == kFingerprintHexLen) {
      return fail(kErrFingerprintInvalid, "fingerprint has more than 64 hex digits");
    }
    uint8_t &b = fp.bytes[digits / 2];
    b = static_cast<uint8_t>(digits % 2 == 0 ? v << 4 : b | v);
    ++digits;
    last_was_separator = false;
  }
  if (digits != kFingerprintHexLen || last_was_separator) {
    return fail(kErrFingerprintInvalid,
                "fingerprint must be 64 hex digits, got %zu%s", digits,
                digits == kFingerprintHexLen ? " and a trailing separator" : "");
  }
  *out = fp;
  return kOk;
}

void Fingerprint::to_hex(char *out) const {
  for (size_t i = 0; i < kFingerprintLen; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  out[kFingerprintHexLen] = '\0';
}

std::string Fingerprint::hex() const {
  char buf[kFingerprintHexLen + 1];
  to_hex(buf);
  return std::string(buf, kFingerprintHexLen);
}

std::string Fingerprint::display() const {
  const std::string h = hex();
  std::string out;
  for (size_t g = 0; g < 8; ++g) {
    if (g) out += ' ';
    out.append(h, g * 4, 4);
  }
  return out;
}

bool Fingerprint::operator==(const Fingerprint &other) const {
  return sodium_memcmp(bytes, other.bytes, kFingerprintLen) == 0;
}

}  // namespace parley::identity

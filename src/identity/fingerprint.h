// Fingerprint = SHA-256 of the 32-byte Ed25519 public key. Canonical text: 64 lowercase hex.
#ifndef PARLEY_IDENTITY_FINGERPRINT_H
#define PARLEY_IDENTITY_FINGERPRINT_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace parley::identity {

constexpr size_t kPublicKeyLen = 32;
constexpr size_t kFingerprintLen = 32;
constexpr size_t kFingerprintHexLen = 64;

struct Fingerprint {
  uint8_t bytes[kFingerprintLen] = {};

  static Fingerprint of_public_key(const uint8_t public_key[kPublicKeyLen]);

  // Parses 64 hex digits of either case; spaces, ':' and '-' between digits are ignored
  // (people paste grouped forms). Returns kOk or kErrFingerprintInvalid.
  static int parse(const char *text, Fingerprint *out);

  // Writes 64 lowercase hex characters plus NUL into `out` (kFingerprintHexLen + 1 bytes).
  void to_hex(char *out) const;
  std::string hex() const;
  // For humans comparing by eye: the first 32 hex digits in 8 groups of 4.
  std::string display() const;

  // Constant-time: fingerprints are compared against attacker-supplied certificates.
  bool operator==(const Fingerprint &other) const;
  bool operator!=(const Fingerprint &other) const { return !(*this == other); }
};

}  // namespace parley::identity

#endif

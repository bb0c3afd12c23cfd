// An identity: the Ed25519 key pair derived from a 32-byte seed, its fingerprint and its
// certificate. Immutable once created; the seed and secret key live in a SecretBuffer.
#ifndef PARLEY_IDENTITY_IDENTITY_H
#define PARLEY_IDENTITY_IDENTITY_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "identity/fingerprint.h"
#include "identity/secret.h"

namespace parley::identity {

constexpr size_t kSeedLen = 32;
constexpr size_t kSecretKeyLen = 64;  // libsodium's seed || public key form

class Identity {
 public:
  // A fresh identity from the system CSPRNG. kOk, kErrNoMemory or kErrCrypto.
  static int generate(std::unique_ptr<Identity> *out);
  // The identity of `seed` (`seed_len` must be kSeedLen). kOk, kErrInvalidArgument,
  // kErrNoMemory or kErrCrypto.
  static int from_seed(const uint8_t *seed, size_t seed_len, std::unique_ptr<Identity> *out);

  const uint8_t *seed() const { return secret_.data(); }
  const uint8_t *secret_key() const { return secret_.data() + kSeedLen; }
  const uint8_t *public_key() const { return public_key_; }
  const Fingerprint &fingerprint() const { return fingerprint_; }
  const std::vector<uint8_t> &certificate_der() const { return certificate_der_; }

 private:
  Identity() = default;
  SecretBuffer secret_;  // seed (32) || secret key (64)
  uint8_t public_key_[kPublicKeyLen] = {};
  Fingerprint fingerprint_;
  std::vector<uint8_t> certificate_der_;
};

}  // namespace parley::identity

#endif

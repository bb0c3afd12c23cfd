#include "identity/identity.h"

#include <sodium.h>

#include <cstring>

#include "base/error.h"
#include "identity/certificate.h"

namespace parley::identity {

int Identity::generate(std::unique_ptr<Identity> *out) {
  SecretBuffer seed;
  int r = seed.allocate(kSeedLen);
  if (r != kOk) return r;
  randombytes_buf(seed.data(), kSeedLen);
  return from_seed(seed.data(), kSeedLen, out);
}

int Identity::from_seed(const uint8_t *seed, size_t seed_len, std::unique_ptr<Identity> *out) {
  if (seed_len != kSeedLen) {
    return fail(kErrInvalidArgument, "a seed is %zu bytes, got %zu", kSeedLen, seed_len);
  }
  std::unique_ptr<Identity> id(new Identity);
  int r = id->secret_.allocate(kSeedLen + kSecretKeyLen);
  if (r != kOk) return r;
  uint8_t *secret = id->secret_.data();
  std::memcpy(secret, seed, kSeedLen);
  if (crypto_sign_seed_keypair(id->public_key_, secret + kSeedLen, secret) != 0) {
    return fail(kErrCrypto, "crypto_sign_seed_keypair failed");
  }
  id->fingerprint_ = Fingerprint::of_public_key(id->public_key_);
  r = build_certificate(secret, id->public_key_, &id->certificate_der_);
  if (r != kOk) return r;
  *out = std::move(id);
  return kOk;
}

}  // namespace parley::identity

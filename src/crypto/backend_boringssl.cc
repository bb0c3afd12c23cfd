// BoringSSL backend of crypto/backend.h (also builds against AWS-LC, which keeps these APIs).
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include "base/error.h"
#include "crypto/backend.h"

namespace parley::crypto {

namespace {

int hmac(const EVP_MD *md, const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
         const uint8_t *b, size_t b_len, uint8_t *out) {
  HMAC_CTX ctx;
  HMAC_CTX_init(&ctx);
  unsigned n = 0;
  const bool ok = HMAC_Init_ex(&ctx, key, key_len, md, nullptr) == 1 &&
                  (a_len == 0 || HMAC_Update(&ctx, a, a_len) == 1) &&
                  (b_len == 0 || HMAC_Update(&ctx, b, b_len) == 1) &&
                  HMAC_Final(&ctx, out, &n) == 1;
  HMAC_CTX_cleanup(&ctx);  // wipes the keyed state
  return ok ? kOk : fail(kErrCrypto, "BoringSSL HMAC failed");
}

const char *key_name(int id) {
  switch (id) {
    case EVP_PKEY_RSA: return "RSA";
    case EVP_PKEY_EC: return "EC";
    case EVP_PKEY_DSA: return "DSA";
    case EVP_PKEY_X25519: return "X25519";
    default: return "of an unknown algorithm";
  }
}

}  // namespace

const char *backend_name() { return "boringssl"; }

int hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
              const uint8_t *b, size_t b_len, uint8_t out[20]) {
  return hmac(EVP_sha1(), key, key_len, a, a_len, b, b_len, out);
}

int hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                const uint8_t *b, size_t b_len, uint8_t out[32]) {
  return hmac(EVP_sha256(), key, key_len, a, a_len, b, b_len, out);
}

int certificate_ed25519_key(const uint8_t *der, size_t der_len, uint8_t public_key[32]) {
  const uint8_t *p = der;
  X509 *crt = d2i_X509(nullptr, &p, long(der_len));
  if (crt == nullptr || p != der + der_len) {
    X509_free(crt);
    return fail(kErrCertMalformed, "certificate is not valid DER X.509");
  }
  EVP_PKEY *key = X509_get_pubkey(crt);
  X509_free(crt);
  if (key == nullptr) {
    // An unparseable key, or one of an algorithm BoringSSL does not know at all.
    return fail(kErrCertKeyType, "certificate key is of an unknown algorithm, parley "
                                 "identities are Ed25519");
  }
  const int id = EVP_PKEY_id(key);
  size_t n = 32;
  const bool ok = id == EVP_PKEY_ED25519 && EVP_PKEY_get_raw_public_key(key, public_key, &n) == 1;
  EVP_PKEY_free(key);
  if (id != EVP_PKEY_ED25519) {
    return fail(kErrCertKeyType, "certificate key is %s, parley identities are Ed25519",
                key_name(id));
  }
  if (!ok || n != 32) {
    return fail(kErrCertMalformed, "cannot read the certificate's Ed25519 key");
  }
  return kOk;
}

}  // namespace parley::crypto

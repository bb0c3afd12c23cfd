// GnuTLS backend of crypto/backend.h.
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cstring>

#include "base/error.h"
#include "crypto/backend.h"

namespace parley::crypto {

namespace {

int hmac(gnutls_mac_algorithm_t alg, const uint8_t *key, size_t key_len, const uint8_t *a,
         size_t a_len, const uint8_t *b, size_t b_len, uint8_t *out) {
  gnutls_hmac_hd_t h;
  int r = gnutls_hmac_init(&h, alg, key, key_len);
  if (r < 0) return fail(kErrCrypto, "gnutls_hmac_init: %s", gnutls_strerror(r));
  if (a_len) r = gnutls_hmac(h, a, a_len);
  if (r >= 0 && b_len) r = gnutls_hmac(h, b, b_len);
  gnutls_hmac_deinit(h, out);
  return r < 0 ? fail(kErrCrypto, "gnutls_hmac: %s", gnutls_strerror(r)) : kOk;
}

struct Crt {
  gnutls_x509_crt_t p = nullptr;
  ~Crt() {
    if (p) gnutls_x509_crt_deinit(p);
  }
};
struct Datum {
  gnutls_datum_t d = {nullptr, 0};
  ~Datum() { gnutls_free(d.data); }
};

}  // namespace

const char *backend_name() { return "gnutls"; }

int hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
              const uint8_t *b, size_t b_len, uint8_t out[20]) {
  return hmac(GNUTLS_MAC_SHA1, key, key_len, a, a_len, b, b_len, out);
}

int hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                const uint8_t *b, size_t b_len, uint8_t out[32]) {
  return hmac(GNUTLS_MAC_SHA256, key, key_len, a, a_len, b, b_len, out);
}

int certificate_ed25519_key(const uint8_t *der, size_t der_len, uint8_t public_key[32]) {
  Crt crt;
  int r = gnutls_x509_crt_init(&crt.p);
  if (r < 0) return fail(kErrCrypto, "gnutls_x509_crt_init: %s", gnutls_strerror(r));
  gnutls_datum_t d = {const_cast<uint8_t *>(der), static_cast<unsigned>(der_len)};
  r = gnutls_x509_crt_import(crt.p, &d, GNUTLS_X509_FMT_DER);
  if (r < 0) {
    return fail(kErrCertMalformed, "certificate is not valid DER X.509: %s",
                gnutls_strerror(r));
  }
  const int alg = gnutls_x509_crt_get_pk_algorithm(crt.p, nullptr);
  if (alg != GNUTLS_PK_EDDSA_ED25519) {
    const char *name = alg < 0 ? nullptr : gnutls_pk_algorithm_get_name(
                                               static_cast<gnutls_pk_algorithm_t>(alg));
    return fail(kErrCertKeyType, "certificate key is %s, parley identities are Ed25519",
                name ? name : "of an unknown algorithm");
  }
  gnutls_ecc_curve_t curve;
  Datum x, y;
  r = gnutls_x509_crt_get_pk_ecc_raw(crt.p, &curve, &x.d, &y.d);
  if (r < 0) {
    return fail(kErrCertMalformed, "cannot read the certificate's Ed25519 key: %s",
                gnutls_strerror(r));
  }
  if (curve != GNUTLS_ECC_CURVE_ED25519 || x.d.size != 32) {
    return fail(kErrCertMalformed, "certificate's Ed25519 key is %u bytes, expected 32",
                x.d.size);
  }
  std::memcpy(public_key, x.d.data, 32);
  return kOk;
}

}  // namespace parley::crypto

#include "identity/certificate.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include <cstring>

#include "base/error.h"

namespace parley::identity {

namespace {

// RAII holders so every early return releases GnuTLS objects.
struct Crt {
  gnutls_x509_crt_t p = nullptr;
  ~Crt() {
    if (p) gnutls_x509_crt_deinit(p);
  }
};
struct PrivKey {
  gnutls_x509_privkey_t p = nullptr;
  ~PrivKey() {
    if (p) gnutls_x509_privkey_deinit(p);  // GnuTLS zeroises key material on deinit
  }
};
struct Datum {
  gnutls_datum_t d = {nullptr, 0};
  ~Datum() { gnutls_free(d.data); }
};

int gnutls_fail(const char *what, int r) {
  return fail(kErrCrypto, "%s: %s", what, gnutls_strerror(r));
}

// The length a DER element starting at `der` claims for itself (tag + length + contents), or
// 0 if its header is malformed. Used to reject trailing bytes after the certificate, which
// GnuTLS's parser would silently ignore.
size_t der_element_length(const uint8_t *der, size_t len) {
  if (len < 2 || der[0] != 0x30) return 0;  // a certificate is a SEQUENCE
  const uint8_t first = der[1];
  if (first < 0x80) return 2 + size_t(first);
  const size_t n = first & 0x7f;
  if (n == 0 || n > 4 || len < 2 + n) return 0;  // indefinite / absurd lengths are not DER
  size_t body = 0;
  for (size_t i = 0; i < n; ++i) body = (body << 8) | der[2 + i];
  return 2 + n + body;
}

}  // namespace

int build_certificate(const uint8_t *seed, const uint8_t *public_key,
                      std::vector<uint8_t> *der) {
  const Fingerprint fp = Fingerprint::of_public_key(public_key);
  char cn[kFingerprintHexLen + 1];
  fp.to_hex(cn);

  // Serial: 16 bytes of a domain-separated hash of the key, top bit cleared so the INTEGER is
  // positive (RFC 5280 4.1.2.2) and the first byte forced non-zero so it is never shortened.
  uint8_t digest[crypto_hash_sha256_BYTES];
  static const char kSerialLabel[] = "parley certificate serial v1";
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t *>(kSerialLabel),
                            sizeof kSerialLabel - 1);
  crypto_hash_sha256_update(&st, public_key, kPublicKeyLen);
  crypto_hash_sha256_final(&st, digest);
  uint8_t serial[16];
  std::memcpy(serial, digest, sizeof serial);
  serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x40);

  PrivKey key;
  int r = gnutls_x509_privkey_init(&key.p);
  if (r < 0) return gnutls_fail("gnutls_x509_privkey_init", r);
  gnutls_datum_t x = {const_cast<uint8_t *>(public_key), static_cast<unsigned>(kPublicKeyLen)};
  gnutls_datum_t k = {const_cast<uint8_t *>(seed), 32};
  r = gnutls_x509_privkey_import_ecc_raw(key.p, GNUTLS_ECC_CURVE_ED25519, &x, nullptr, &k);
  if (r < 0) return gnutls_fail("import Ed25519 key", r);

  Crt crt;
  if ((r = gnutls_x509_crt_init(&crt.p)) < 0) return gnutls_fail("gnutls_x509_crt_init", r);
  if ((r = gnutls_x509_crt_set_version(crt.p, 3)) < 0) return gnutls_fail("set version", r);
  if ((r = gnutls_x509_crt_set_serial(crt.p, serial, sizeof serial)) < 0)
    return gnutls_fail("set serial", r);
  if ((r = gnutls_x509_crt_set_activation_time(crt.p, time_t(kCertNotBefore))) < 0)
    return gnutls_fail("set activation time", r);
  if ((r = gnutls_x509_crt_set_expiration_time(crt.p, time_t(kCertNotAfter))) < 0)
    return gnutls_fail("set expiration time", r);
  if ((r = gnutls_x509_crt_set_dn_by_oid(crt.p, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                         kFingerprintHexLen)) < 0)
    return gnutls_fail("set subject", r);
  if ((r = gnutls_x509_crt_set_key(crt.p, key.p)) < 0) return gnutls_fail("set key", r);
  if ((r = gnutls_x509_crt_set_basic_constraints(crt.p, 0, -1)) < 0)
    return gnutls_fail("set basic constraints", r);
  if ((r = gnutls_x509_crt_set_key_usage(crt.p, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0)
    return gnutls_fail("set key usage", r);
  if ((r = gnutls_x509_crt_set_subject_key_id(crt.p, fp.bytes, 20)) < 0)
    return gnutls_fail("set subject key id", r);
  if ((r = gnutls_x509_crt_sign2(crt.p, crt.p, key.p, GNUTLS_DIG_SHA512, 0)) < 0)
    return gnutls_fail("self-sign certificate", r);

  Datum out;
  if ((r = gnutls_x509_crt_export2(crt.p, GNUTLS_X509_FMT_DER, &out.d)) < 0)
    return gnutls_fail("export certificate", r);
  der->assign(out.d.data, out.d.data + out.d.size);
  return kOk;
}

int certificate_fingerprint(const uint8_t *der, size_t der_len, Fingerprint *out,
                            uint8_t *public_key_out) {
  if (der_len == 0 || der_len > kMaxCertificateDer) {
    return fail(kErrCertMalformed, "certificate is %zu bytes (allowed: 1..%zu)", der_len,
                kMaxCertificateDer);
  }
  const size_t claimed = der_element_length(der, der_len);
  if (claimed != der_len) {
    return fail(kErrCertMalformed,
                "certificate DER is not one complete element (%zu bytes given, header "
                "claims %zu)", der_len, claimed);
  }
  Crt crt;
  int r = gnutls_x509_crt_init(&crt.p);
  if (r < 0) return gnutls_fail("gnutls_x509_crt_init", r);
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
  if (curve != GNUTLS_ECC_CURVE_ED25519 || x.d.size != kPublicKeyLen) {
    return fail(kErrCertMalformed, "certificate's Ed25519 key is %u bytes, expected 32",
                x.d.size);
  }
  *out = Fingerprint::of_public_key(x.d.data);
  if (public_key_out) std::memcpy(public_key_out, x.d.data, kPublicKeyLen);
  return kOk;
}

}  // namespace parley::identity

// The crypto seam below the QUIC layer: the few things parley needs from a TLS library outside
// a TLS session (STUN's HMAC-SHA1 and HMAC-SHA256, and reading the key out of a peer's X.509
// certificate). One implementation file per backend, chosen at configure time
// (-DPARLEY_TLS=gnutls|boringssl): backend_gnutls.cc, backend_boringssl.cc. The QUIC TLS session
// is the other half of the seam (quic/tls.h, quic/tls_<backend>.cc). No other file includes a
// TLS library (tests/integration/crypto_seam.sh checks it). libsodium, used everywhere, is not
// part of the seam.
#ifndef PARLEY_CRYPTO_BACKEND_H
#define PARLEY_CRYPTO_BACKEND_H

#include <cstddef>
#include <cstdint>

namespace parley::crypto {

// The backend compiled in: "gnutls" or "boringssl".
const char *backend_name();

// HMAC over the concatenation of `a` (`a_len` bytes) and `b` (`b_len` bytes) with `key`; the
// digest (20 bytes for SHA-1, 32 for SHA-256) goes to `out`. NULL is allowed only with a zero
// length. Returns kOk or kErrCrypto (the backend failed; the message says why).
int hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
              const uint8_t *b, size_t b_len, uint8_t out[20]);
int hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                const uint8_t *b, size_t b_len, uint8_t out[32]);

// The raw Ed25519 public key of the X.509 certificate `der` (exactly one complete DER
// certificate; the caller checks the length and trailing bytes). Returns kOk with 32 bytes in
// `public_key`, kErrCertMalformed (not a parseable certificate, or an unreadable key) or
// kErrCertKeyType (a key of another algorithm, named in the message).
int certificate_ed25519_key(const uint8_t *der, size_t der_len, uint8_t public_key[32]);

}  // namespace parley::crypto

#endif

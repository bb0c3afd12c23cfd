// The deterministic self-signed X.509 certificate of an identity, and the verifier that maps
// a peer's certificate to its fingerprint. No CA chain is ever consulted: the certificate is
// only a container for the Ed25519 key; TLS 1.3 CertificateVerify proves possession.
#ifndef PARLEY_IDENTITY_CERTIFICATE_H
#define PARLEY_IDENTITY_CERTIFICATE_H

#include <cstddef>
#include <cstdint>
#include <vector>

#include "identity/fingerprint.h"

namespace parley::identity {

// Larger DER than this is refused before parsing (parley's own certificates are ~350 bytes).
constexpr size_t kMaxCertificateDer = 16 * 1024;

// Fixed validity: from 2024-01-01T00:00:00Z to 9999-12-31T23:59:59Z, RFC 5280's "no
// well-defined expiration". Identities do not expire; pinning, not dates, is the trust.
constexpr int64_t kCertNotBefore = 1704067200;
constexpr int64_t kCertNotAfter = 253402300799;

// Builds the certificate for the key pair of `seed` (32 bytes) / `public_key` (32 bytes):
// v3, serial and subject key id derived from the key, subject = issuer = CN=<fingerprint>,
// basicConstraints CA:FALSE, keyUsage digitalSignature, Ed25519-signed. Ed25519 signatures
// are deterministic, so the DER is a pure function of the seed.
// Returns kOk or kErrCrypto.
int build_certificate(const uint8_t *seed, const uint8_t *public_key, std::vector<uint8_t> *der);

// Parses `der` and, if it carries an Ed25519 key, stores that key's fingerprint in `out` and
// the key in `public_key_out` (nullable). Returns kOk, kErrCertMalformed (not exactly one
// DER certificate, or too large) or kErrCertKeyType (any other key algorithm).
int certificate_fingerprint(const uint8_t *der, size_t der_len, Fingerprint *out,
                            uint8_t *public_key_out = nullptr);

}  // namespace parley::identity

#endif

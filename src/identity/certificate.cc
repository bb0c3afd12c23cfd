#include "identity/certificate.h"

#include <sodium.h>

#include <cstring>
#include <cstdio>
#include <string>

#include "base/error.h"
#include "crypto/backend.h"
#include "identity/secret.h"

namespace parley::identity {

namespace {

// The certificate is written here rather than by a TLS library: it is a fixed layout around
// three values (key, serial, fingerprint), so a few DER helpers on top of libsodium's Ed25519
// make it without a TLS library in the identity layer, identical on every backend.
using Der = std::string;

void put_length(Der *out, size_t n) {
  if (n < 0x80) {
    out->push_back(char(n));
    return;
  }
  int bytes = 0;
  for (size_t m = n; m; m >>= 8) ++bytes;
  out->push_back(char(0x80 | bytes));
  for (int i = bytes - 1; i >= 0; --i) out->push_back(char((n >> (8 * i)) & 0xff));
}

Der tlv(uint8_t tag, const Der &body) {
  Der out(1, char(tag));
  put_length(&out, body.size());
  return out + body;
}

Der raw(const uint8_t *p, size_t n) { return Der(reinterpret_cast<const char *>(p), n); }

constexpr uint8_t kSequence = 0x30, kSet = 0x31, kInteger = 0x02, kBitString = 0x03,
                  kOctetString = 0x04, kOid = 0x06, kBoolean = 0x01, kPrintableString = 0x13,
                  kUtcTime = 0x17, kGeneralizedTime = 0x18, kExplicit0 = 0xa0,
                  kExplicit3 = 0xa3;

const Der kOidEd25519("\x2b\x65\x70", 3);         // 1.3.101.112
const Der kOidCommonName("\x55\x04\x03", 3);      // 2.5.4.3
const Der kOidBasicConstraints("\x55\x1d\x13", 3);  // 2.5.29.19
const Der kOidKeyUsage("\x55\x1d\x0f", 3);        // 2.5.29.15
const Der kOidSubjectKeyId("\x55\x1d\x0e", 3);    // 2.5.29.14
const Der kTrue("\xff", 1);

// RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
Der validity_time(int64_t t) {
  // Days to civil date (proleptic Gregorian), so no gmtime (not thread-safe everywhere).
  int64_t days = t / 86400, secs = t % 86400;
  days += 719468;
  const int64_t era = days / 146097, doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[64];  // 15 characters at most, but the compiler cannot bound the fields
  const bool utc = year < 2050;
  std::snprintf(buf, sizeof buf, "%0*lld%02lld%02lld%02lld%02lld%02lldZ", utc ? 2 : 4,
                (long long)(utc ? year % 100 : year), (long long)month, (long long)day,
                (long long)(secs / 3600), (long long)(secs / 60 % 60), (long long)(secs % 60));
  return tlv(utc ? kUtcTime : kGeneralizedTime, buf);
}

Der name(const char *cn) {
  return tlv(kSequence, tlv(kSet, tlv(kSequence, tlv(kOid, kOidCommonName) +
                                                     tlv(kPrintableString, cn))));
}

Der extension(const Der &oid, bool critical, const Der &value) {
  return tlv(kSequence, tlv(kOid, oid) + (critical ? tlv(kBoolean, kTrue) : Der()) +
                            tlv(kOctetString, value));
}

// The length a DER element starting at `der` claims for itself (tag + length + contents), or
// 0 if its header is malformed. Used to reject trailing bytes after the certificate, which
// a TLS library's parser may silently ignore.
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

  const Der algorithm = tlv(kSequence, tlv(kOid, kOidEd25519));
  const Der key_usage_digital_signature("\x03\x02\x07\x80", 4);
  const Der extensions =
      extension(kOidBasicConstraints, true, tlv(kSequence, Der())) +  // CA:FALSE
      extension(kOidKeyUsage, true, key_usage_digital_signature) +
      extension(kOidSubjectKeyId, false, tlv(kOctetString, raw(fp.bytes, 20)));
  const Der tbs = tlv(
      kSequence,
      tlv(kExplicit0, tlv(kInteger, Der(1, '\x02'))) +  // v3
          tlv(kInteger, raw(serial, sizeof serial)) + algorithm + name(cn) +
          tlv(kSequence, validity_time(kCertNotBefore) + validity_time(kCertNotAfter)) +
          name(cn) +
          tlv(kSequence, algorithm + tlv(kBitString, Der(1, '\0') + raw(public_key, kPublicKeyLen))) +
          tlv(kExplicit3, tlv(kSequence, extensions)));

  // Ed25519 signatures are deterministic, so the DER is a pure function of the seed.
  SecretBuffer secret;
  if (secret.allocate(crypto_sign_SECRETKEYBYTES) != kOk) return kErrNoMemory;
  uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  uint8_t sig[crypto_sign_BYTES];
  if (crypto_sign_seed_keypair(pk, secret.data(), seed) != 0 ||
      std::memcmp(pk, public_key, sizeof pk) != 0 ||
      crypto_sign_detached(sig, nullptr, reinterpret_cast<const uint8_t *>(tbs.data()),
                           tbs.size(), secret.data()) != 0) {
    return fail(kErrCrypto, "cannot sign the certificate with the identity's key");
  }
  const Der cert = tlv(kSequence, tbs + algorithm + tlv(kBitString, Der(1, '\0') + raw(sig, sizeof sig)));
  der->assign(cert.begin(), cert.end());
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
  uint8_t key[kPublicKeyLen];
  const int r = crypto::certificate_ed25519_key(der, der_len, key);
  if (r != kOk) return r;
  *out = Fingerprint::of_public_key(key);
  if (public_key_out) std::memcpy(public_key_out, key, kPublicKeyLen);
  return kOk;
}

}  // namespace parley::identity

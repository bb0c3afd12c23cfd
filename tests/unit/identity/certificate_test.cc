// The verifier against certificates parley did not make: a foreign ECDSA and RSA certificate
// generated here with GnuTLS, and malformed DER.
#include "identity/certificate.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "base/error.h"
#include "identity/identity.h"
#include "test_vectors.h"

namespace parley::identity {
namespace {

std::vector<uint8_t> foreign_certificate(gnutls_pk_algorithm_t alg, unsigned bits) {
  gnutls_x509_privkey_t key;
  gnutls_x509_crt_t crt;
  EXPECT_EQ(gnutls_x509_privkey_init(&key), 0);
  EXPECT_EQ(gnutls_x509_privkey_generate(key, alg, bits, 0), 0);
  EXPECT_EQ(gnutls_x509_crt_init(&crt), 0);
  gnutls_x509_crt_set_version(crt, 3);
  const uint8_t serial[] = {0x01, 0x02};
  gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
  gnutls_x509_crt_set_activation_time(crt, 1704067200);
  gnutls_x509_crt_set_expiration_time(crt, 1804067200);
  gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "foreign", 7);
  gnutls_x509_crt_set_key(crt, key);
  const auto dig = alg == GNUTLS_PK_EDDSA_ED25519 ? GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA256;
  EXPECT_EQ(gnutls_x509_crt_sign2(crt, crt, key, dig, 0), 0);
  gnutls_datum_t out = {nullptr, 0};
  std::vector<uint8_t> der;
  if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &out) == 0) {
    der.assign(out.data, out.data + out.size);
    gnutls_free(out.data);
  }
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return der;
}

TEST(CertificateVerifier, RejectsEcdsaCertificate) {
  auto der = foreign_certificate(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
  ASSERT_FALSE(der.empty());
  Fingerprint fp;
  EXPECT_EQ(certificate_fingerprint(der.data(), der.size(), &fp), kErrCertKeyType);
  EXPECT_NE(std::string(last_error_message()).find("EC"), std::string::npos)
      << last_error_message();
}

TEST(CertificateVerifier, RejectsRsaCertificate) {
  auto der = foreign_certificate(GNUTLS_PK_RSA, 2048);
  ASSERT_FALSE(der.empty());
  Fingerprint fp;
  EXPECT_EQ(certificate_fingerprint(der.data(), der.size(), &fp), kErrCertKeyType);
}

TEST(CertificateVerifier, AcceptsForeignEd25519CertificateByKeyOnly) {
  // Not built by parley (other serial, subject, validity): still identified by its key.
  auto der = foreign_certificate(GNUTLS_PK_EDDSA_ED25519,
                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519));
  ASSERT_FALSE(der.empty());
  Fingerprint fp;
  EXPECT_EQ(certificate_fingerprint(der.data(), der.size(), &fp), kOk);
}

class MalformedDer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Identity::from_seed(parley::testing::kVectorSeed, 32, &id_), kOk);
    der_ = id_->certificate_der();
  }
  int verify(const std::vector<uint8_t> &d) {
    Fingerprint fp;
    return certificate_fingerprint(d.data(), d.size(), &fp);
  }
  std::unique_ptr<Identity> id_;
  std::vector<uint8_t> der_;
};

TEST_F(MalformedDer, EveryTruncation) {
  for (size_t len = 0; len < der_.size(); ++len) {
    std::vector<uint8_t> cut(der_.begin(), der_.begin() + long(len));
    EXPECT_EQ(verify(cut), kErrCertMalformed) << "length " << len;
  }
}

TEST_F(MalformedDer, TrailingBytes) {
  auto d = der_;
  d.push_back(0);
  EXPECT_EQ(verify(d), kErrCertMalformed);
}

TEST_F(MalformedDer, GarbageAndOversize) {
  EXPECT_EQ(verify(std::vector<uint8_t>(300, 0xff)), kErrCertMalformed);
  EXPECT_EQ(verify(std::vector<uint8_t>(kMaxCertificateDer + 1, 0x30)), kErrCertMalformed);
  EXPECT_EQ(verify({0x30, 0x80, 0x00, 0x00}), kErrCertMalformed);  // BER indefinite length
}

TEST_F(MalformedDer, EveryFlippedByteIsHandledAndKeyChangesAreNeverMissed) {
  const auto &pk = parley::testing::kVectorPublicKey;
  auto at = std::search(der_.begin(), der_.end(), std::begin(pk), std::end(pk));
  ASSERT_NE(at, der_.end());
  const size_t key_begin = size_t(at - der_.begin()), key_end = key_begin + 32;
  Fingerprint good;
  ASSERT_EQ(certificate_fingerprint(der_.data(), der_.size(), &good), kOk);
  for (size_t i = 0; i < der_.size(); ++i) {
    auto d = der_;
    d[i] ^= 0xff;
    Fingerprint fp;
    const int r = certificate_fingerprint(d.data(), d.size(), &fp);
    EXPECT_TRUE(r == kOk || r == kErrCertMalformed || r == kErrCertKeyType) << i << ": " << r;
    if (i >= key_begin && i < key_end) {
      EXPECT_TRUE(r != kOk || fp != good) << "flipped key byte " << i << " went unnoticed";
    }
  }
}

}  // namespace
}  // namespace parley::identity

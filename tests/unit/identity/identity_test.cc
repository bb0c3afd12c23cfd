#include "identity/identity.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>

#include "base/error.h"
#include "identity/certificate.h"
#include "test_vectors.h"

namespace parley::identity {
namespace {

using namespace parley::testing;

TEST(Identity, FixedVector) {
  std::unique_ptr<Identity> id;
  ASSERT_EQ(Identity::from_seed(kVectorSeed, sizeof kVectorSeed, &id), kOk);
  EXPECT_EQ(0, std::memcmp(id->public_key(), kVectorPublicKey, 32));
  EXPECT_EQ(id->fingerprint().hex(), kVectorFingerprint);
  EXPECT_EQ(0, std::memcmp(id->seed(), kVectorSeed, 32));
  // libsodium's secret key is seed || public key.
  EXPECT_EQ(0, std::memcmp(id->secret_key(), kVectorSeed, 32));
  EXPECT_EQ(0, std::memcmp(id->secret_key() + 32, kVectorPublicKey, 32));
}

TEST(Identity, SecretKeySigns) {
  std::unique_ptr<Identity> id;
  ASSERT_EQ(Identity::from_seed(kVectorSeed, 32, &id), kOk);
  // RFC 8032 test 1: the empty message's signature starts e5564300c360ac72.
  uint8_t sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, nullptr, 0, id->secret_key());
  const uint8_t expect[8] = {0xe5, 0x56, 0x43, 0x00, 0xc3, 0x60, 0xac, 0x72};
  EXPECT_EQ(0, std::memcmp(sig, expect, 8));
  EXPECT_EQ(0, crypto_sign_verify_detached(sig, nullptr, 0, id->public_key()));
}

TEST(Identity, RejectsWrongSeedLength) {
  std::unique_ptr<Identity> id;
  EXPECT_EQ(Identity::from_seed(kVectorSeed, 31, &id), kErrInvalidArgument);
  EXPECT_EQ(Identity::from_seed(kVectorSeed, 33, &id), kErrInvalidArgument);
  EXPECT_EQ(id, nullptr);
}

TEST(Identity, GenerateGivesDistinctIdentities) {
  std::unique_ptr<Identity> a, b;
  ASSERT_EQ(Identity::generate(&a), kOk);
  ASSERT_EQ(Identity::generate(&b), kOk);
  EXPECT_NE(a->fingerprint(), b->fingerprint());
  EXPECT_NE(a->certificate_der(), b->certificate_der());
}

TEST(Certificate, SameSeedGivesByteIdenticalDer) {
  std::unique_ptr<Identity> a, b;
  ASSERT_EQ(Identity::from_seed(kVectorSeed, 32, &a), kOk);
  ASSERT_EQ(Identity::from_seed(kVectorSeed, 32, &b), kOk);
  ASSERT_FALSE(a->certificate_der().empty());
  EXPECT_EQ(a->certificate_der(), b->certificate_der());
  // And independently of this process: regenerating via build_certificate matches too.
  std::vector<uint8_t> again;
  ASSERT_EQ(build_certificate(a->seed(), a->public_key(), &again), kOk);
  EXPECT_EQ(again, a->certificate_der());
}

// The vector seed's certificate is pinned byte for byte (SHA-256 of the DER, computed once
// and checked in; OpenSSL parses that DER and verifies its self-signature — see
// tests/integration/openssl_cross_check.sh). A change here breaks every pinned peer.
TEST(Certificate, VectorDerIsPinned) {
  std::unique_ptr<Identity> id;
  ASSERT_EQ(Identity::from_seed(kVectorSeed, 32, &id), kOk);
  const auto &der = id->certificate_der();
  EXPECT_EQ(der.size(), 409u);
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, der.data(), der.size());
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  EXPECT_STREQ(hex, "f3a8aadb6d52f27f997fdb129e66250cfeb7b486010d36ad5644b8bb9c5c91ba");
}

TEST(Certificate, DifferentSeedsGiveDifferentDer) {
  uint8_t seed2[32];
  std::memcpy(seed2, kVectorSeed, 32);
  seed2[31] ^= 1;
  std::unique_ptr<Identity> a, b;
  ASSERT_EQ(Identity::from_seed(kVectorSeed, 32, &a), kOk);
  ASSERT_EQ(Identity::from_seed(seed2, 32, &b), kOk);
  EXPECT_NE(a->certificate_der(), b->certificate_der());
}

TEST(Certificate, OwnCertificateVerifiesToOwnFingerprint) {
  std::unique_ptr<Identity> id;
  ASSERT_EQ(Identity::from_seed(kVectorSeed, 32, &id), kOk);
  Fingerprint fp;
  uint8_t pk[32];
  const auto &der = id->certificate_der();
  ASSERT_EQ(certificate_fingerprint(der.data(), der.size(), &fp, pk), kOk);
  EXPECT_EQ(fp.hex(), kVectorFingerprint);
  EXPECT_EQ(0, std::memcmp(pk, kVectorPublicKey, 32));
}

}  // namespace
}  // namespace parley::identity

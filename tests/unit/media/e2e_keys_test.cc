#include "media/e2e_keys.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <memory>
#include <string>

#include "base/error.h"

namespace parley::media {
namespace {

using identity::Fingerprint;
using identity::Identity;

class E2eKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(kOk, Identity::generate(&alice_));  // the caller
    ASSERT_EQ(kOk, Identity::generate(&bob_));    // the callee
    ASSERT_EQ(kOk, Identity::generate(&eve_));
    call_ = signal::Id16::random();
  }

  const Fingerprint &a() const { return alice_->fingerprint(); }
  const Fingerprint &b() const { return bob_->fingerprint(); }

  std::unique_ptr<Identity> alice_, bob_, eve_;
  signal::CallId call_;
};

constexpr uint64_t kNow = 1765000000000;  // a wall clock, ms since the Unix epoch

// The signed message spelled out byte by byte, as docs/protocol.md gives it.
std::string signed_message(KeyRole role, uint64_t issued_at, const signal::CallId &call,
                           const Fingerprint &signer, const Fingerprint &addressee,
                           const uint8_t pk[32]) {
  std::string m = "parley media key v2";
  m.push_back(char(role));
  for (int i = 7; i >= 0; --i) m.push_back(char(uint8_t(issued_at >> (8 * i))));
  m.append(reinterpret_cast<const char *>(call.bytes), 16);
  m.append(reinterpret_cast<const char *>(signer.bytes), 32);
  m.append(reinterpret_cast<const char *>(addressee.bytes), 32);
  m.append(reinterpret_cast<const char *>(pk), 32);
  return m;
}

TEST_F(E2eKeys, BothSidesDeriveMatchingKeys) {
  LocalMediaKey ak, bk;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  ASSERT_EQ(kOk, make_local_media_key(*bob_, call_, a(), KeyRole::kCallee, kNow, &bk));
  ASSERT_EQ(kMediaKeyLen, ak.secret.size());
  EXPECT_EQ(kOk, verify_peer_media_key(bob_->public_key(), b(), a(), call_,
                                       KeyRole::kCallee, kNow, bk.signed_key));
  EXPECT_EQ(kOk, verify_peer_media_key(alice_->public_key(), a(), b(), call_,
                                       KeyRole::kCaller, kNow, ak.signed_key));

  CallKeys ac, bc;
  ASSERT_EQ(kOk, derive_call_keys(ak, bk.signed_key, true, call_, a(), b(), &ac));
  ASSERT_EQ(kOk, derive_call_keys(bk, ak.signed_key, false, call_, a(), b(), &bc));
  ASSERT_EQ(kMediaKeyLen, ac.send.size());
  ASSERT_EQ(kMediaKeyLen, ac.recv.size());
  EXPECT_EQ(0, memcmp(ac.send.data(), bc.recv.data(), kMediaKeyLen));
  EXPECT_EQ(0, memcmp(ac.recv.data(), bc.send.data(), kMediaKeyLen));
  // Each direction its own key.
  EXPECT_NE(0, memcmp(ac.send.data(), ac.recv.data(), kMediaKeyLen));
}

TEST_F(E2eKeys, DerivationMatchesTheDocumentedKdf) {
  LocalMediaKey ak, bk;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  ASSERT_EQ(kOk, make_local_media_key(*bob_, call_, a(), KeyRole::kCallee, kNow, &bk));
  CallKeys bc;
  ASSERT_EQ(kOk, derive_call_keys(bk, ak.signed_key, false, call_, a(), b(), &bc));

  uint8_t shared[32], okm[64];
  ASSERT_EQ(0, crypto_scalarmult(shared, ak.secret.data(), bk.signed_key.public_key));
  std::string in = "parley media keys v1";
  in.append(reinterpret_cast<const char *>(call_.bytes), 16);
  in.append(reinterpret_cast<const char *>(a().bytes), 32);
  in.append(reinterpret_cast<const char *>(b().bytes), 32);
  in.append(reinterpret_cast<const char *>(ak.signed_key.public_key), 32);
  in.append(reinterpret_cast<const char *>(bk.signed_key.public_key), 32);
  ASSERT_EQ(0, crypto_generichash(okm, sizeof okm, reinterpret_cast<const uint8_t *>(in.data()),
                                  in.size(), shared, sizeof shared));
  EXPECT_EQ(0, memcmp(okm, bc.recv.data(), 32));  // caller→callee
  EXPECT_EQ(0, memcmp(okm + 32, bc.send.data(), 32));
}

TEST_F(E2eKeys, SignatureCoversTheDocumentedMessage) {
  LocalMediaKey ak;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  const std::string m = signed_message(KeyRole::kCaller, kNow, call_, a(), b(),
                                         ak.signed_key.public_key);
  EXPECT_EQ(140u, m.size());
  EXPECT_EQ(kNow, ak.signed_key.issued_at_ms);
  EXPECT_EQ(0, crypto_sign_verify_detached(ak.signed_key.signature,
                                           reinterpret_cast<const uint8_t *>(m.data()),
                                           m.size(), alice_->public_key()));
  uint8_t pk[32];
  ASSERT_EQ(0, crypto_scalarmult_base(pk, ak.secret.data()));
  EXPECT_EQ(0, memcmp(pk, ak.signed_key.public_key, 32));
}

TEST_F(E2eKeys, TamperedSignatureOrKeyIsRejected) {
  LocalMediaKey ak;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  signal::SignedKey k = ak.signed_key;
  k.signature[7] ^= 1;
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), b(), call_,
                                                KeyRole::kCaller, kNow, k));
  k = ak.signed_key;
  k.public_key[0] ^= 0x40;  // the relay substitutes (part of) the key
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), b(), call_,
                                                KeyRole::kCaller, kNow, k));
  EXPECT_EQ(kOk, verify_peer_media_key(alice_->public_key(), a(), b(), call_,
                                       KeyRole::kCaller, kNow, ak.signed_key));
}

TEST_F(E2eKeys, WrongIdentityKeyIsRejected) {
  LocalMediaKey ek;
  // Eve signs her own key and presents her identity key as if she were Alice.
  ASSERT_EQ(kOk, make_local_media_key(*eve_, call_, b(), KeyRole::kCaller, kNow, &ek));
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(eve_->public_key(), a(), b(), call_,
                                                KeyRole::kCaller, kNow,
                                                ek.signed_key));
  EXPECT_NE(std::string::npos, std::string(last_error_message()).find("fingerprint"));
  // Alice's real identity key does not verify Eve's signature either.
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), b(), call_,
                                                KeyRole::kCaller, kNow,
                                                ek.signed_key));
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(nullptr, a(), b(), call_,
                                                KeyRole::kCaller, kNow, ek.signed_key));
}

TEST_F(E2eKeys, KeyMovedToAnotherCallOrAddresseeIsRejected) {
  LocalMediaKey ak;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  signal::CallId other = signal::Id16::random();
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), b(), other,
                                                KeyRole::kCaller, kNow,
                                                ak.signed_key));
  // A key Alice made for Bob, forwarded to Eve.
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), eve_->fingerprint(),
                                                call_, KeyRole::kCaller, kNow, ak.signed_key));
}

// A callee's accept presented as an invite (or the reverse): the role is signed.
TEST_F(E2eKeys, KeyPresentedInTheOtherRoleIsRejected) {
  LocalMediaKey bk;
  ASSERT_EQ(kOk, make_local_media_key(*bob_, call_, a(), KeyRole::kCallee, kNow, &bk));
  EXPECT_EQ(kOk, verify_peer_media_key(bob_->public_key(), b(), a(), call_, KeyRole::kCallee,
                                       kNow, bk.signed_key));
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(bob_->public_key(), b(), a(), call_,
                                                KeyRole::kCaller, kNow, bk.signed_key));
}

// A recorded invite replayed later, or a key whose time the relay moved.
TEST_F(E2eKeys, StaleFutureOrRedatedKeysAreRejected) {
  LocalMediaKey ak;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  auto verify = [&](uint64_t now, const signal::SignedKey &k) {
    return verify_peer_media_key(alice_->public_key(), a(), b(), call_, KeyRole::kCaller, now,
                                 k);
  };
  EXPECT_EQ(kOk, verify(kNow + kMaxMediaKeyAgeMs, ak.signed_key));
  EXPECT_EQ(kOk, verify(kNow - kMaxMediaKeyAgeMs, ak.signed_key));
  EXPECT_EQ(kErrMediaKey, verify(kNow + kMaxMediaKeyAgeMs + 1, ak.signed_key));
  EXPECT_NE(std::string::npos, std::string(last_error_message()).find("stale"));
  EXPECT_EQ(kErrMediaKey, verify(kNow - kMaxMediaKeyAgeMs - 1, ak.signed_key));
  EXPECT_NE(std::string::npos, std::string(last_error_message()).find("clocks"));
  signal::SignedKey redated = ak.signed_key;
  redated.issued_at_ms = kNow + 1000 * 60 * 60;
  EXPECT_EQ(kErrMediaKey, verify(redated.issued_at_ms, redated));
}

TEST_F(E2eKeys, ReflectedKeyIsRejected) {
  LocalMediaKey ak;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  // The relay sends Alice's own signed key back to her as Bob's, with Bob's identity key...
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(bob_->public_key(), b(), a(), call_,
                                                KeyRole::kCallee, kNow,
                                                ak.signed_key));
  // ...or with Alice's (which then does not match Bob's fingerprint).
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), b(), a(), call_,
                                                KeyRole::kCaller, kNow,
                                                ak.signed_key));
  // Even with consistent fingerprints, signer and addressee are ordered: Alice signed
  // "from Alice to Bob", not "from Alice to Alice".
  EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), a(), call_,
                                                KeyRole::kCaller, kNow,
                                                ak.signed_key));
  // And derivation refuses our own key even if verification was skipped.
  CallKeys keys;
  EXPECT_EQ(kErrMediaKey, derive_call_keys(ak, ak.signed_key, true, call_, a(), b(), &keys));
  EXPECT_EQ(nullptr, keys.send.data());
}

TEST_F(E2eKeys, LowOrderPointIsRejectedEvenWhenProperlySigned) {
  // u = 0, u = 1 and a point of order 8 (RFC 7748 section 6.1's checks / libsodium's list).
  static const uint8_t kOrder8[32] = {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae,
                                      0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
                                      0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd,
                                      0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00};
  uint8_t points[3][32] = {};
  points[1][0] = 1;
  memcpy(points[2], kOrder8, 32);
  LocalMediaKey bk;
  ASSERT_EQ(kOk, make_local_media_key(*bob_, call_, a(), KeyRole::kCallee, kNow, &bk));
  for (auto &p : points) {
    signal::SignedKey k;
    memcpy(k.public_key, p, 32);
    k.issued_at_ms = kNow;
    const std::string m = signed_message(KeyRole::kCaller, kNow, call_, a(), b(), k.public_key);
    crypto_sign_detached(k.signature, nullptr, reinterpret_cast<const uint8_t *>(m.data()),
                         m.size(), alice_->secret_key());
    EXPECT_EQ(kErrMediaKey, verify_peer_media_key(alice_->public_key(), a(), b(), call_,
                                                  KeyRole::kCaller, kNow, k));
    CallKeys keys;
    EXPECT_EQ(kErrMediaKey, derive_call_keys(bk, k, false, call_, a(), b(), &keys));
    EXPECT_EQ(nullptr, keys.recv.data());
  }
}

TEST_F(E2eKeys, DisagreementGivesUnrelatedKeys) {
  LocalMediaKey ak, bk;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  ASSERT_EQ(kOk, make_local_media_key(*bob_, call_, a(), KeyRole::kCallee, kNow, &bk));
  CallKeys ac, bc;
  ASSERT_EQ(kOk, derive_call_keys(ak, bk.signed_key, true, call_, a(), b(), &ac));
  // Both think they are the caller.
  ASSERT_EQ(kOk, derive_call_keys(bk, ak.signed_key, true, call_, b(), a(), &bc));
  EXPECT_NE(0, memcmp(ac.send.data(), bc.recv.data(), kMediaKeyLen));
  // Different call id.
  ASSERT_EQ(kOk, derive_call_keys(bk, ak.signed_key, false, signal::Id16::random(), a(), b(),
                                  &bc));
  EXPECT_NE(0, memcmp(ac.send.data(), bc.recv.data(), kMediaKeyLen));
}

TEST_F(E2eKeys, MisuseIsAnInvalidArgument) {
  LocalMediaKey ak, empty;
  ASSERT_EQ(kOk, make_local_media_key(*alice_, call_, b(), KeyRole::kCaller, kNow, &ak));
  EXPECT_EQ(kErrInvalidArgument, make_local_media_key(*alice_, call_, b(),
                                                      KeyRole::kCaller, kNow, nullptr));
  CallKeys keys;
  EXPECT_EQ(kErrInvalidArgument,
            derive_call_keys(empty, ak.signed_key, true, call_, a(), b(), &keys));
  EXPECT_EQ(kErrInvalidArgument,
            derive_call_keys(ak, empty.signed_key, true, call_, a(), b(), nullptr));
}

}  // namespace
}  // namespace parley::media

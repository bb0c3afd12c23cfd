#include "media/e2e_keys.h"

#include <sodium.h>

#include <cstring>

#include "base/error.h"

namespace parley::media {

namespace {

constexpr char kSignContext[] = "parley media key v2";
constexpr size_t kSignContextLen = sizeof kSignContext - 1;
constexpr char kKdfContext[] = "parley media keys v1";
constexpr size_t kKdfContextLen = sizeof kKdfContext - 1;
constexpr size_t kCallIdLen = sizeof(signal::CallId::bytes);

static_assert(crypto_scalarmult_BYTES == kMediaKeyLen, "X25519 public keys are 32 bytes");
static_assert(crypto_scalarmult_SCALARBYTES == kMediaKeyLen, "X25519 scalars are 32 bytes");
static_assert(sizeof(signal::SignedKey::public_key) == crypto_scalarmult_BYTES, "");
static_assert(sizeof(signal::SignedKey::signature) == crypto_sign_BYTES, "");
static_assert(crypto_generichash_BYTES_MAX >= 2 * kMediaKeyLen, "");

constexpr size_t kSignedLen = kSignContextLen + 1 + 8 + kCallIdLen +
                              2 * identity::kFingerprintLen + crypto_scalarmult_BYTES;

// The exact bytes a media key signature covers (docs/protocol.md "Media encryption").
void signed_message(KeyRole role, uint64_t issued_at_ms, const signal::CallId &call,
                    const identity::Fingerprint &signer, const identity::Fingerprint &addressee,
                    const uint8_t public_key[32], uint8_t out[kSignedLen]) {
  uint8_t *p = out;
  std::memcpy(p, kSignContext, kSignContextLen);
  p += kSignContextLen;
  *p++ = uint8_t(role);
  for (int i = 7; i >= 0; --i) *p++ = uint8_t(issued_at_ms >> (8 * i));
  std::memcpy(p, call.bytes, kCallIdLen);
  p += kCallIdLen;
  std::memcpy(p, signer.bytes, identity::kFingerprintLen);
  p += identity::kFingerprintLen;
  std::memcpy(p, addressee.bytes, identity::kFingerprintLen);
  p += identity::kFingerprintLen;
  std::memcpy(p, public_key, crypto_scalarmult_BYTES);
}

}  // namespace

const char *key_role_name(KeyRole role) {
  switch (role) {
    case KeyRole::kCaller: return "caller";
    case KeyRole::kCallee: return "callee";
  }
  return "?";
}

int make_local_media_key(const identity::Identity &me, const signal::CallId &call,
                         const identity::Fingerprint &peer, KeyRole role, uint64_t now_ms,
                         LocalMediaKey *out) {
  if (out == nullptr) return fail(kErrInvalidArgument, "make_local_media_key: out is NULL");
  LocalMediaKey key;
  int r = key.secret.allocate(crypto_scalarmult_SCALARBYTES);  // also initialises libsodium
  if (r != kOk) return r;
  randombytes_buf(key.secret.data(), crypto_scalarmult_SCALARBYTES);
  if (crypto_scalarmult_base(key.signed_key.public_key, key.secret.data()) != 0) {
    return fail(kErrCrypto, "X25519 key generation failed");
  }
  key.signed_key.issued_at_ms = now_ms;
  uint8_t msg[kSignedLen];
  signed_message(role, now_ms, call, me.fingerprint(), peer, key.signed_key.public_key, msg);
  if (crypto_sign_detached(key.signed_key.signature, nullptr, msg, sizeof msg,
                           me.secret_key()) != 0) {
    return fail(kErrCrypto, "signing the media key failed");
  }
  *out = std::move(key);
  return kOk;
}

int verify_call_proof(const uint8_t peer_identity_key[identity::kPublicKeyLen],
                      const identity::Fingerprint &peer, const identity::Fingerprint &me,
                      const signal::CallId &call, KeyRole role, const signal::SignedKey &key) {
  if (peer_identity_key == nullptr) {
    return fail(kErrMediaKey, "the peer's identity key is missing");
  }
  if (identity::sodium_ready() != kOk) return kErrMediaKey;
  // The identity key comes from the same relay-carried message as the media key, so it is
  // only worth something once it matches the fingerprint we meant to call / were called by.
  if (identity::Fingerprint::of_public_key(peer_identity_key) != peer) {
    return fail(kErrMediaKey, "the peer's identity key does not match its fingerprint %s",
                peer.hex().c_str());
  }
  uint8_t msg[kSignedLen];
  signed_message(role, key.issued_at_ms, call, peer, me, key.public_key, msg);
  if (crypto_sign_verify_detached(key.signature, msg, sizeof msg, peer_identity_key) != 0) {
    return fail(kErrMediaKey,
                "the peer's media key is not signed by %s as the %s of this call for us",
                peer.hex().c_str(), key_role_name(role));
  }
  return kOk;
}

int verify_peer_media_key(const uint8_t peer_identity_key[identity::kPublicKeyLen],
                          const identity::Fingerprint &peer, const identity::Fingerprint &me,
                          const signal::CallId &call, KeyRole role, uint64_t now_ms,
                          const signal::SignedKey &key) {
  const int r = verify_call_proof(peer_identity_key, peer, me, call, role, key);
  if (r != kOk) return r;
  // Checked after the signature, so the age in the message is the signer's own claim.
  if (key.issued_at_ms + kMaxMediaKeyAgeMs < now_ms) {
    return fail(kErrMediaKey, "the peer's media key was issued %llu s ago: stale or replayed",
                (unsigned long long)((now_ms - key.issued_at_ms) / 1000));
  }
  if (key.issued_at_ms > now_ms + kMaxMediaKeyAgeMs) {
    return fail(kErrMediaKey,
                "the peer's media key was issued %llu s in the future: the clocks disagree",
                (unsigned long long)((key.issued_at_ms - now_ms) / 1000));
  }
  // A low-order point (order dividing the cofactor 8) sends every clamped scalar, which is a
  // multiple of 8, to the all-zero output, so multiplying by any scalar detects it; libsodium
  // also rejects the known small-order encodings up front.
  uint8_t probe_scalar[crypto_scalarmult_SCALARBYTES];
  uint8_t probe[crypto_scalarmult_BYTES];
  std::memset(probe_scalar, 0x5a, sizeof probe_scalar);
  const int low_order = crypto_scalarmult(probe, probe_scalar, key.public_key);
  sodium_memzero(probe, sizeof probe);
  if (low_order != 0) {
    return fail(kErrMediaKey, "the peer's media key is a low-order X25519 point");
  }
  return kOk;
}

int derive_call_keys(const LocalMediaKey &mine, const signal::SignedKey &peer_key,
                     bool i_am_caller, const signal::CallId &call,
                     const identity::Fingerprint &caller, const identity::Fingerprint &callee,
                     CallKeys *out) {
  if (out == nullptr) return fail(kErrInvalidArgument, "derive_call_keys: out is NULL");
  if (mine.secret.data() == nullptr || mine.secret.size() != crypto_scalarmult_SCALARBYTES) {
    return fail(kErrInvalidArgument, "derive_call_keys: our media key holds no secret");
  }
  // Our own key coming back would make both directions' keys computable from it alone
  // with no contribution from the peer; the signature binding already stops a relay from
  // doing this, so reaching here means the caller skipped verify_peer_media_key.
  if (sodium_memcmp(peer_key.public_key, mine.signed_key.public_key,
                    crypto_scalarmult_BYTES) == 0) {
    return fail(kErrMediaKey, "the peer's media key is our own key reflected back");
  }
  CallKeys keys;
  identity::SecretBuffer scratch;  // shared secret (32) || derived keys (64)
  int r = scratch.allocate(crypto_scalarmult_BYTES + 2 * kMediaKeyLen);
  if (r != kOk) return r;
  r = keys.send.allocate(kMediaKeyLen);
  if (r != kOk) return r;
  r = keys.recv.allocate(kMediaKeyLen);
  if (r != kOk) return r;

  uint8_t *shared = scratch.data();
  uint8_t *okm = scratch.data() + crypto_scalarmult_BYTES;
  if (crypto_scalarmult(shared, mine.secret.data(), peer_key.public_key) != 0 ||
      sodium_is_zero(shared, crypto_scalarmult_BYTES)) {
    return fail(kErrMediaKey, "the peer's media key is a low-order X25519 point");
  }
  const uint8_t *caller_pk = i_am_caller ? mine.signed_key.public_key : peer_key.public_key;
  const uint8_t *callee_pk = i_am_caller ? peer_key.public_key : mine.signed_key.public_key;

  crypto_generichash_state st;
  crypto_generichash_init(&st, shared, crypto_scalarmult_BYTES, 2 * kMediaKeyLen);
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t *>(kKdfContext),
                            kKdfContextLen);
  crypto_generichash_update(&st, call.bytes, kCallIdLen);
  crypto_generichash_update(&st, caller.bytes, identity::kFingerprintLen);
  crypto_generichash_update(&st, callee.bytes, identity::kFingerprintLen);
  crypto_generichash_update(&st, caller_pk, crypto_scalarmult_BYTES);
  crypto_generichash_update(&st, callee_pk, crypto_scalarmult_BYTES);
  crypto_generichash_final(&st, okm, 2 * kMediaKeyLen);
  sodium_memzero(&st, sizeof st);  // the BLAKE2b state holds the keyed first block

  const uint8_t *caller_to_callee = okm;
  const uint8_t *callee_to_caller = okm + kMediaKeyLen;
  std::memcpy(keys.send.data(), i_am_caller ? caller_to_callee : callee_to_caller, kMediaKeyLen);
  std::memcpy(keys.recv.data(), i_am_caller ? callee_to_caller : caller_to_callee, kMediaKeyLen);
  *out = std::move(keys);
  return kOk;  // `scratch` is wiped by sodium_free
}

}  // namespace parley::media

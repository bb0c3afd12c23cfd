// The per-call media key agreement (docs/design.md "Media frames", docs/protocol.md "Media
// encryption").
//
// Each party makes an ephemeral X25519 key pair for the call and signs its public half with
// its Ed25519 identity key. The signed key travels in call-invite / call-accept through the
// relay, which can carry it but not substitute its own: it cannot sign as either party. The
// signature covers
//
//   "parley media key v2" | role (1) | issued at (u64, ms since the Unix epoch) |
//   call id (16) | signer fingerprint (32) | addressee fingerprint (32) |
//   X25519 public key (32)
//
// so a key is bound to one call, one signer, one addressee and one role: the relay cannot
// replay it into another call, hand it to a third party, reflect it back to its own signer,
// or present a callee's accept as an invite. The issue time bounds how long a recorded
// invite can be replayed; within that window the callee remembers the call ids it has seen
// (call/recent_calls.h).
//
// Both parties then compute the X25519 shared secret and expand it with keyed BLAKE2b-512
// over the call id, both fingerprints and both public keys into one 32-byte key per direction
// (caller→callee first). The media frames of each direction are sealed under its key
// (media/frame_crypto.h).
#ifndef PARLEY_MEDIA_E2E_KEYS_H
#define PARLEY_MEDIA_E2E_KEYS_H

#include <cstddef>
#include <cstdint>

#include "identity/fingerprint.h"
#include "identity/identity.h"
#include "identity/secret.h"
#include "signal/message.h"

namespace parley::media {

constexpr size_t kMediaKeyLen = 32;  // each direction's base key, and the X25519 scalar
// How far a media key's issue time may be from the verifier's wall clock, either way: the
// replay window of an invite, and the clock disagreement two devices may have.
constexpr uint64_t kMaxMediaKeyAgeMs = 10 * 60 * 1000;

// Which message of the call set-up a key signs for (its wire value is signed).
enum class KeyRole : uint8_t {
  kCaller = 1,  // call-invite
  kCallee = 2,  // call-accept
};
const char *key_role_name(KeyRole role);

// Our half of a call's key agreement. `secret` is the X25519 scalar (kMediaKeyLen bytes of
// sodium_malloc'd memory, wiped when the struct is destroyed); `signed_key` is what goes into
// the call signaling's media key field.
struct LocalMediaKey {
  identity::SecretBuffer secret;
  signal::SignedKey signed_key;
};

// Both directions' base keys of one call, kMediaKeyLen bytes each in sodium_malloc'd memory:
// hand `send` to a FrameSealer and `recv` to a FrameOpener.
struct CallKeys {
  identity::SecretBuffer send, recv;
};

// Makes a fresh X25519 key pair for `call` and signs its public key with `me`'s identity key
// for the addressee `peer`, in `role`, issued at `now_ms` (wall clock, ms since the Unix
// epoch; the signed message is in the comment at the top of this file). Replaces whatever
// `*out` held. `out` must not be NULL.
// Returns kOk, kErrInvalidArgument (`out` is NULL), kErrNoMemory or kErrCrypto (libsodium
// failed to initialise or refused the key pair); on error `*out` holds no secret.
int make_local_media_key(const identity::Identity &me, const signal::CallId &call,
                         const identity::Fingerprint &peer, KeyRole role, uint64_t now_ms,
                         LocalMediaKey *out);

// Checks a media key received in signaling before anything is derived from it:
// `peer_identity_key` (32 bytes, the Ed25519 key the same message carried, must not be NULL)
// must hash to the `peer` fingerprint we expect to be talking to, `key.signature` must be
// that key's signature over the message above with signer = `peer`, addressee = `me`,
// call id = `call`, role = `role` (the peer's role: kCaller for an invite) and the key's
// issue time, that time must be within kMaxMediaKeyAgeMs of `now_ms` (wall clock, ms since
// the Unix epoch), and `key.public_key` must not be a low-order X25519 point (with which the
// shared secret would be a constant known to the relay). A call id seen before is the
// caller's business (call/recent_calls.h).
// Returns kOk or kErrMediaKey (the detailed message says which check failed).
int verify_peer_media_key(const uint8_t peer_identity_key[identity::kPublicKeyLen],
                          const identity::Fingerprint &peer, const identity::Fingerprint &me,
                          const signal::CallId &call, KeyRole role, uint64_t now_ms,
                          const signal::SignedKey &key);

// The part of verify_peer_media_key that outlives the key's freshness: `key` is signed by the
// identity `peer_identity_key` (whose SHA-256 is `peer`) as the `role` of `call` with `me`.
// What a relay checks when a party resumes a call (signal::Type::kCallResume): proof that the
// peer agreed to this call with the sender, however long ago. Returns kOk or kErrMediaKey.
int verify_call_proof(const uint8_t peer_identity_key[identity::kPublicKeyLen],
                      const identity::Fingerprint &peer, const identity::Fingerprint &me,
                      const signal::CallId &call, KeyRole role, const signal::SignedKey &key);

// Derives both directions' keys of `call` from our key `mine` and the peer's `peer_key`,
// which must have passed verify_peer_media_key (this function does not check signatures).
// `i_am_caller` says which of the two we are; `caller` and `callee` are the two parties'
// fingerprints, the same on both sides, so the caller's `send` equals the callee's `recv`
// and vice versa. Any disagreement between the sides (call, fingerprints, keys, roles) gives
// unrelated keys, so frames then fail authentication instead of decrypting. Replaces what
// `*out` held; intermediate secrets are wiped before returning. `out` must not be NULL.
// Returns kOk, kErrInvalidArgument (`out` is NULL or `mine` holds no secret), kErrMediaKey
// (the peer key is a low-order point or our own key reflected back: the shared secret would
// be all zero or known to the relay), or kErrNoMemory; on error `*out` holds no keys.
int derive_call_keys(const LocalMediaKey &mine, const signal::SignedKey &peer_key,
                     bool i_am_caller, const signal::CallId &call,
                     const identity::Fingerprint &caller, const identity::Fingerprint &callee,
                     CallKeys *out);

}  // namespace parley::media

#endif

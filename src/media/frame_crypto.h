// Sealing and opening media frames (docs/design.md "Media frames", docs/protocol.md "Media
// encryption"):
//
//   header (16, media/frame_header.h) | ChaCha20-Poly1305-IETF ciphertext | tag (16)
//
// The header is the AEAD's associated data: authenticated, not encrypted, because the relay
// routes on it.
//
// Each direction numbers its frames with a 64-bit frame index; the header's 32-bit sequence
// field carries the index's low 32 bits and the receiver reconstructs the rest, the way SRTP
// reconstructs its rollover counter. The nonce is built from that index, never from a local
// counter, so lost and reordered frames open exactly like in-order ones:
//
//   epoch     = index >> 32  (the key changes each time the wire sequence wraps)
//   epoch key = crypto_kdf_derive_from_key(32, subkey_id = epoch, ctx "parleyfr", base key)
//   nonce     = 4 zero bytes | index as u64 big-endian
//
// Each epoch key thus encrypts at most 2^32 frames under distinct nonces, and since the
// index itself never wraps no (key, nonce) pair is ever reused. The last index, 2^64 - 1, is
// never sealed (FrameSealer::seal refuses with kErrLimitReached), which keeps next_index()
// from wrapping; at 50 frames a second that is ~10^10 years away unless the starting index
// was chosen close to it.
//
// The receiver keeps a replay window (kReplayWindow indices ending at the highest index that
// authenticated); a duplicate or anything older is refused with kErrMediaReplay. The same
// sealed frame is valid on the relay and on the direct path, so this also removes the second
// copy while a path switch sends every frame on both.
#ifndef PARLEY_MEDIA_FRAME_CRYPTO_H
#define PARLEY_MEDIA_FRAME_CRYPTO_H

#include <cstddef>
#include <cstdint>

#include "identity/secret.h"
#include "media/frame_header.h"

namespace parley::media {

constexpr size_t kFrameKeyLen = 32;
constexpr size_t kFrameTagSize = 16;
constexpr size_t kFrameOverhead = kFrameHeaderSize + kFrameTagSize;  // bytes added to a payload
constexpr size_t kFrameNonceSize = 12;
// The index FrameSealer::seal never uses: reaching it means the direction is exhausted.
constexpr uint64_t kFrameIndexExhausted = UINT64_MAX;
// How many indices, ending with the highest authenticated one, the replay window tracks:
// 1024 frames is 20 s of 20 ms audio, far more reordering than a jitter buffer can use, and
// the bitmap is only 128 bytes. A frame at or below highest - kReplayWindow is refused as
// too old. A multiple of 64 (the bitmap is whole 64-bit words).
constexpr uint64_t kReplayWindow = 1024;
static_assert(kReplayWindow % 64 == 0, "the replay bitmap is whole 64-bit words");

// The key that seals the frames of `epoch` (index >> 32) under a direction's base key
// `base` (kFrameKeyLen bytes): crypto_kdf_derive_from_key(kFrameKeyLen, epoch, "parleyfr",
// base). `base` and `out` must not be NULL (`out`: kFrameKeyLen bytes). Exposed so tests can
// check the wire format independently of the sealer. Returns kOk or kErrCrypto.
int derive_epoch_key(const uint8_t base[kFrameKeyLen], uint64_t epoch,
                     uint8_t out[kFrameKeyLen]);

// The 12-byte AEAD nonce of frame `index`: 4 zero bytes then the index big-endian.
void frame_nonce(uint64_t index, uint8_t out[kFrameNonceSize]);

// Seals one direction's frames. Not thread-safe; no allocation per frame.
class FrameSealer {
 public:
  FrameSealer() = default;
  FrameSealer(const FrameSealer &) = delete;
  FrameSealer &operator=(const FrameSealer &) = delete;
  FrameSealer(FrameSealer &&) = default;
  FrameSealer &operator=(FrameSealer &&) = default;

  // Copies the direction's base key (kFrameKeyLen bytes, must not be NULL; e.g. CallKeys::send)
  // into sodium_malloc'd memory and makes `first_index` the next frame's index. The call
  // layer picks a random first_index below 2^31 (like RTP's random initial sequence): the
  // opener assumes the first frame it sees lies in epoch 0, and < 2^31 leaves half an epoch
  // of frames before the first wrap. May be called again to start over; a failed call
  // leaves the sealer uninitialised.
  // Returns kOk, kErrInvalidArgument (`key` is NULL), kErrNoMemory or kErrCrypto.
  int init(const uint8_t key[kFrameKeyLen], uint64_t first_index);

  // Seals `payload` (`len` bytes; may be NULL if `len` is 0) as the next frame, writing
  // header | ciphertext | tag (kFrameOverhead + len bytes) to `out` (`cap` bytes). `h` is
  // the header to send; its sequence field is ignored and set from the frame index. The
  // payload may sit at out + kFrameHeaderSize (sealed in place) but must not otherwise
  // overlap `out`. `out` and `out_len` must not be NULL; `index_out` may be NULL, else it
  // receives the frame's 64-bit index. The index advances only on success.
  // Returns kOk, kErrInvalidArgument (not initialised, or a NULL pointer), kErrLimitReached
  // (the direction is exhausted: the next index would be kFrameIndexExhausted; the call must
  // agree on new keys), kErrMessageTooLarge (`cap` < kFrameOverhead + len), or kErrCrypto.
  int seal(FrameHeader h, const uint8_t *payload, size_t len, uint8_t *out, size_t cap,
           size_t *out_len, uint64_t *index_out);

  // The index the next sealed frame gets (kFrameIndexExhausted once exhausted).
  uint64_t next_index() const { return next_; }
  bool initialised() const { return keys_.data() != nullptr; }

 private:
  identity::SecretBuffer keys_;  // base key | current epoch key
  uint64_t next_ = 0;
  uint64_t epoch_ = 0;
  bool epoch_valid_ = false;
};

// Counts of FrameOpener::open outcomes: every call that returns something other than
// kErrInvalidArgument or kErrCrypto lands in exactly one.
struct FrameOpenerStats {
  uint64_t opened = 0;       // kOk
  uint64_t auth_failed = 0;  // kErrMediaAuth: forged, corrupted, or sealed under another key
  uint64_t replayed = 0;     // kErrMediaReplay: a duplicate inside the window
  uint64_t too_old = 0;      // kErrMediaReplay: at or below highest - kReplayWindow
  uint64_t malformed = 0;    // kErrMediaMalformed
  uint64_t too_large = 0;    // kErrMessageTooLarge: the plaintext would not fit `cap`
};

// Opens one direction's frames, reconstructs their 64-bit indices and rejects replays. Not
// thread-safe; no allocation per frame. No per-frame failure records an error message: the
// result code and stats() say what happened (frames arrive from the network at line rate).
class FrameOpener {
 public:
  FrameOpener() = default;
  FrameOpener(const FrameOpener &) = delete;
  FrameOpener &operator=(const FrameOpener &) = delete;
  FrameOpener(FrameOpener &&) = default;
  FrameOpener &operator=(FrameOpener &&) = default;

  // Copies the direction's base key (kFrameKeyLen bytes, must not be NULL; e.g.
  // CallKeys::recv) into sodium_malloc'd memory and forgets every frame seen so far and the
  // stats. A failed call leaves the opener uninitialised.
  // Returns kOk, kErrInvalidArgument (`key` is NULL), kErrNoMemory or kErrCrypto.
  int init(const uint8_t key[kFrameKeyLen]);

  // Opens the frame `frame` (`len` bytes, one datagram). On kOk the plaintext, len -
  // kFrameOverhead bytes, is in `out` (`cap` bytes), `*out_len` is its length, `*h` the
  // header (h->sequence the wire's low 32 bits) and `*index` the reconstructed 64-bit index.
  // `frame`, `out` (unless `cap` is 0) and `out_len` must not be NULL; `h` and `index` may
  // be NULL. `out` must not overlap `frame`.
  //
  // The index is the candidate, among the sequence placed in the epoch before, at or after
  // that of the highest authenticated index, closest to that highest index; the first frame
  // ever opened is taken to lie in epoch 0. Only a frame that authenticates changes any
  // state, so forged frames (e.g. with a far-ahead sequence) cannot move the window.
  //
  // Returns kOk, kErrInvalidArgument (not initialised or a NULL pointer; records a message),
  // kErrMediaMalformed (len < kFrameOverhead or parse_frame_header refuses the header),
  // kErrMessageTooLarge (`cap` < len - kFrameOverhead), kErrMediaReplay (already opened, or
  // at or below highest - kReplayWindow; `out` is untouched), or kErrMediaAuth (the tag does
  // not verify; `out`'s first len - kFrameOverhead bytes may have been zeroed), or kErrCrypto
  // (libsodium could not derive an epoch key, which valid arguments never cause). `*h`,
  // `*index` and `*out_len` are written only on kOk.
  int open(const uint8_t *frame, size_t len, FrameHeader *h, uint64_t *index, uint8_t *out,
           size_t cap, size_t *out_len);

  const FrameOpenerStats &stats() const { return stats_; }
  // Whether a frame has authenticated yet, and the highest index that has.
  bool started() const { return started_; }
  uint64_t highest_index() const { return highest_; }
  bool initialised() const { return keys_.data() != nullptr; }

 private:
  static constexpr int kEpochSlots = 3;  // the highest index's epoch and both neighbours
  static constexpr size_t kWindowWords = kReplayWindow / 64;

  uint64_t estimate_index(uint32_t sequence) const;
  const uint8_t *epoch_key(uint64_t epoch);
  bool seen(uint64_t index) const;
  void mark(uint64_t index);

  identity::SecretBuffer keys_;  // base key | kEpochSlots epoch keys
  uint64_t slot_epoch_[kEpochSlots] = {};
  bool slot_valid_[kEpochSlots] = {};
  bool started_ = false;
  uint64_t highest_ = 0;
  // Bit (i % kReplayWindow) is set when index i, highest - kReplayWindow < i <= highest,
  // has opened.
  uint64_t window_[kWindowWords] = {};
  FrameOpenerStats stats_;
};

}  // namespace parley::media

#endif

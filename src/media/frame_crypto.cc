#include "media/frame_crypto.h"

#include <sodium.h>

#include <cstring>

#include "base/error.h"

namespace parley::media {

namespace {

constexpr char kEpochKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "parleyfr";
constexpr uint64_t kMaxEpoch = UINT64_MAX >> 32;

static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == kFrameKeyLen, "");
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == kFrameNonceSize, "");
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kFrameTagSize, "");
static_assert(crypto_kdf_KEYBYTES == kFrameKeyLen, "");
static_assert(sizeof kEpochKdfContext - 1 == crypto_kdf_CONTEXTBYTES, "");

uint64_t distance(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

}  // namespace

int derive_epoch_key(const uint8_t base[kFrameKeyLen], uint64_t epoch,
                     uint8_t out[kFrameKeyLen]) {
  if (identity::sodium_ready() != kOk) return kErrCrypto;
  if (crypto_kdf_derive_from_key(out, kFrameKeyLen, epoch, kEpochKdfContext, base) != 0) {
    return kErrCrypto;
  }
  return kOk;
}

void frame_nonce(uint64_t index, uint8_t out[kFrameNonceSize]) {
  out[0] = out[1] = out[2] = out[3] = 0;
  for (int i = 0; i < 8; ++i) out[4 + i] = uint8_t(index >> (56 - 8 * i));
}

// --- FrameSealer ---

int FrameSealer::init(const uint8_t key[kFrameKeyLen], uint64_t first_index) {
  keys_ = identity::SecretBuffer();
  epoch_valid_ = false;
  if (key == nullptr) return fail(kErrInvalidArgument, "FrameSealer::init: key is NULL");
  int r = keys_.allocate(2 * kFrameKeyLen);
  if (r != kOk) return r;
  std::memcpy(keys_.data(), key, kFrameKeyLen);
  next_ = first_index;
  return kOk;
}

int FrameSealer::seal(FrameHeader h, const uint8_t *payload, size_t len, uint8_t *out,
                      size_t cap, size_t *out_len, uint64_t *index_out) {
  if (!initialised()) return fail(kErrInvalidArgument, "FrameSealer::seal: not initialised");
  if (out == nullptr || out_len == nullptr || (payload == nullptr && len > 0)) {
    return fail(kErrInvalidArgument, "FrameSealer::seal: NULL buffer");
  }
  if (next_ == kFrameIndexExhausted) {
    return fail(kErrLimitReached,
                "media frame index exhausted: this direction needs new keys");
  }
  if (cap < kFrameOverhead || len > cap - kFrameOverhead) {
    return fail(kErrMessageTooLarge, "a %zu-byte payload needs a %zu-byte frame buffer, got %zu",
                len, len + kFrameOverhead, cap);
  }
  const uint64_t index = next_;
  const uint64_t epoch = index >> 32;
  uint8_t *epoch_key = keys_.data() + kFrameKeyLen;
  if (!epoch_valid_ || epoch != epoch_) {
    if (derive_epoch_key(keys_.data(), epoch, epoch_key) != kOk) {
      epoch_valid_ = false;
      return fail(kErrCrypto, "deriving the media key of epoch %llu failed",
                  static_cast<unsigned long long>(epoch));
    }
    epoch_ = epoch;
    epoch_valid_ = true;
  }
  h.sequence = uint32_t(index);
  write_frame_header(h, out);
  uint8_t nonce[kFrameNonceSize];
  frame_nonce(index, nonce);
  if (crypto_aead_chacha20poly1305_ietf_encrypt_detached(
          out + kFrameHeaderSize, out + kFrameHeaderSize + len, nullptr, payload, len, out,
          kFrameHeaderSize, nullptr, nonce, epoch_key) != 0) {
    return fail(kErrCrypto, "ChaCha20-Poly1305 sealing failed");
  }
  next_ = index + 1;
  *out_len = len + kFrameOverhead;
  if (index_out != nullptr) *index_out = index;
  return kOk;
}

// --- FrameOpener ---

int FrameOpener::init(const uint8_t key[kFrameKeyLen]) {
  keys_ = identity::SecretBuffer();
  for (int i = 0; i < kEpochSlots; ++i) slot_valid_[i] = false;
  started_ = false;
  highest_ = 0;
  std::memset(window_, 0, sizeof window_);
  stats_ = FrameOpenerStats();
  if (key == nullptr) return fail(kErrInvalidArgument, "FrameOpener::init: key is NULL");
  int r = keys_.allocate(kFrameKeyLen * (1 + kEpochSlots));
  if (r != kOk) return r;
  std::memcpy(keys_.data(), key, kFrameKeyLen);
  return kOk;
}

uint64_t FrameOpener::estimate_index(uint32_t sequence) const {
  if (!started_) return sequence;  // epoch 0: see FrameSealer::init
  const uint64_t roc = highest_ >> 32;
  uint64_t best = roc << 32 | sequence;
  if (roc > 0) {
    const uint64_t c = (roc - 1) << 32 | sequence;
    if (distance(c, highest_) < distance(best, highest_)) best = c;
  }
  if (roc < kMaxEpoch) {
    const uint64_t c = (roc + 1) << 32 | sequence;
    if (distance(c, highest_) < distance(best, highest_)) best = c;
  }
  return best;
}

const uint8_t *FrameOpener::epoch_key(uint64_t epoch) {
  // epoch % 3 gives the highest index's epoch and both neighbours distinct slots, so frames
  // straddling a wrap never evict each other's key and each epoch is derived once.
  const int slot = int(epoch % kEpochSlots);
  uint8_t *key = keys_.data() + kFrameKeyLen * (1 + slot);
  if (!slot_valid_[slot] || slot_epoch_[slot] != epoch) {
    if (derive_epoch_key(keys_.data(), epoch, key) != kOk) {
      slot_valid_[slot] = false;
      return nullptr;
    }
    slot_epoch_[slot] = epoch;
    slot_valid_[slot] = true;
  }
  return key;
}

bool FrameOpener::seen(uint64_t index) const {
  const uint64_t bit = index % kReplayWindow;
  return (window_[bit / 64] >> (bit % 64)) & 1;
}

void FrameOpener::mark(uint64_t index) {
  if (!started_) {
    started_ = true;
    highest_ = index;
    std::memset(window_, 0, sizeof window_);
  } else if (index > highest_) {
    if (index - highest_ >= kReplayWindow) {
      std::memset(window_, 0, sizeof window_);
    } else {
      // The slots of highest+1 .. index held indices that have now left the window.
      for (uint64_t i = highest_ + 1; i <= index; ++i) {
        const uint64_t bit = i % kReplayWindow;
        window_[bit / 64] &= ~(uint64_t(1) << (bit % 64));
      }
    }
    highest_ = index;
  }
  const uint64_t bit = index % kReplayWindow;
  window_[bit / 64] |= uint64_t(1) << (bit % 64);
}

int FrameOpener::open(const uint8_t *frame, size_t len, FrameHeader *h, uint64_t *index,
                      uint8_t *out, size_t cap, size_t *out_len) {
  if (!initialised()) return fail(kErrInvalidArgument, "FrameOpener::open: not initialised");
  if (frame == nullptr || out_len == nullptr || (out == nullptr && cap > 0)) {
    return fail(kErrInvalidArgument, "FrameOpener::open: NULL buffer");
  }
  FrameHeader header;
  if (len < kFrameOverhead || parse_frame_header(frame, len, &header) != kOk) {
    ++stats_.malformed;
    return kErrMediaMalformed;
  }
  const size_t plain_len = len - kFrameOverhead;
  if (cap < plain_len) {
    ++stats_.too_large;
    return kErrMessageTooLarge;
  }
  const uint64_t idx = estimate_index(header.sequence);
  // Refusing replays before decrypting keeps duplicates (every frame during a path switch)
  // cheap; nothing here changes state, so a forged frame gains nothing by reaching it.
  if (started_ && idx <= highest_) {
    if (highest_ - idx >= kReplayWindow) {
      ++stats_.too_old;
      return kErrMediaReplay;
    }
    if (seen(idx)) {
      ++stats_.replayed;
      return kErrMediaReplay;
    }
  }
  const uint8_t *key = epoch_key(idx >> 32);
  if (key == nullptr) return kErrCrypto;
  uint8_t nonce[kFrameNonceSize];
  frame_nonce(idx, nonce);
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
          out, nullptr, frame + kFrameHeaderSize, plain_len, frame + kFrameHeaderSize + plain_len,
          frame, kFrameHeaderSize, nonce, key) != 0) {
    ++stats_.auth_failed;
    return kErrMediaAuth;
  }
  mark(idx);
  ++stats_.opened;
  *out_len = plain_len;
  if (h != nullptr) *h = header;
  if (index != nullptr) *index = idx;
  return kOk;
}

}  // namespace parley::media

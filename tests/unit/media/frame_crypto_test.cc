#include "media/frame_crypto.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "identity/identity.h"
#include "media/e2e_keys.h"

namespace parley::media {
namespace {

constexpr uint64_t k2p32 = uint64_t(1) << 32;

struct Sealed {
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> payload;
  uint64_t index = 0;
  uint32_t timestamp = 0;
};

std::vector<uint8_t> payload_for(uint64_t i) {
  std::vector<uint8_t> p(20 + i % 61);
  for (size_t k = 0; k < p.size(); ++k) p[k] = uint8_t(i * 131 + k);
  return p;
}

class FrameCrypto : public ::testing::Test {
 protected:
  void SetUp() override {
    for (size_t i = 0; i < kFrameKeyLen; ++i) key_[i] = uint8_t(0xa0 + i);
  }

  // Seals `n` frames with stream id 7 and 20 ms (960-unit) timestamps starting at `ts0`.
  std::vector<Sealed> seal(FrameSealer &s, size_t n, uint32_t ts0 = 1000) {
    std::vector<Sealed> v;
    for (size_t i = 0; i < n; ++i) {
      Sealed f;
      const uint64_t expect_index = s.next_index();
      f.payload = payload_for(expect_index);
      f.timestamp = uint32_t(ts0 + 960 * i);  // wraps like RTP timestamps do
      FrameHeader h;
      h.flags = 0x01;
      h.profile = 2;
      h.stream_id = 7;
      h.sequence = 0xdeadbeef;  // overwritten by seal
      h.timestamp = f.timestamp;
      f.bytes.resize(f.payload.size() + kFrameOverhead);
      size_t len = 0;
      EXPECT_EQ(kOk, s.seal(h, f.payload.data(), f.payload.size(), f.bytes.data(),
                            f.bytes.size(), &len, &f.index));
      EXPECT_EQ(f.bytes.size(), len);
      EXPECT_EQ(expect_index, f.index);
      v.push_back(std::move(f));
    }
    return v;
  }

  // Opens `f` and checks everything that comes out of it.
  void expect_opens(FrameOpener &o, const Sealed &f) {
    uint8_t out[256];
    memset(out, 0xee, sizeof out);
    FrameHeader h;
    uint64_t index = 0;
    size_t len = 0;
    ASSERT_EQ(kOk, o.open(f.bytes.data(), f.bytes.size(), &h, &index, out, sizeof out, &len))
        << "index " << f.index;
    EXPECT_EQ(f.index, index);
    EXPECT_EQ(uint32_t(f.index), h.sequence);
    EXPECT_EQ(f.timestamp, h.timestamp);
    EXPECT_EQ(7u, h.stream_id);
    EXPECT_EQ(2, h.profile);
    EXPECT_EQ(1, h.flags);
    ASSERT_EQ(f.payload.size(), len);
    EXPECT_EQ(0, memcmp(out, f.payload.data(), len));
  }

  // Expects `f` to be refused with `code` without anything written to the output.
  void expect_refused(FrameOpener &o, const std::vector<uint8_t> &bytes, int code) {
    uint8_t out[256];
    memset(out, 0xee, sizeof out);
    FrameHeader h;
    h.stream_id = 12345;
    uint64_t index = 99;
    size_t len = 77;
    EXPECT_EQ(code, o.open(bytes.data(), bytes.size(), &h, &index, out, sizeof out, &len));
    EXPECT_EQ(99u, index);
    EXPECT_EQ(77u, len);
    EXPECT_EQ(12345u, h.stream_id);
    if (code == kErrMediaReplay) {
      for (uint8_t b : out) ASSERT_EQ(0xee, b);  // the payload is never returned twice
    }
  }

  uint8_t key_[kFrameKeyLen];
};

TEST_F(FrameCrypto, InOrder) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 12345));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 50);
  EXPECT_EQ(12345u + 50, s.next_index());
  for (const auto &f : frames) expect_opens(o, f);
  EXPECT_EQ(50u, o.stats().opened);
  EXPECT_EQ(12345u + 49, o.highest_index());
}

TEST_F(FrameCrypto, WireFormatMatchesTheProtocolDoc) {
  FrameSealer s;
  ASSERT_EQ(kOk, s.init(key_, k2p32 + 5));  // epoch 1
  const auto frames = seal(s, 1);
  const Sealed &f = frames[0];
  // Header in the clear, sequence = low 32 bits of the index.
  FrameHeader h;
  ASSERT_EQ(kOk, parse_frame_header(f.bytes.data(), f.bytes.size(), &h));
  EXPECT_EQ(5u, h.sequence);
  // Independently: epoch key via crypto_kdf, nonce 0000 || index BE, header as AD.
  uint8_t ek[32];
  ASSERT_EQ(0, crypto_kdf_derive_from_key(ek, 32, 1, "parleyfr", key_));
  uint8_t nonce[12] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5};
  std::vector<uint8_t> plain(f.bytes.size() - kFrameOverhead);
  unsigned long long plain_len = 0;
  ASSERT_EQ(0, crypto_aead_chacha20poly1305_ietf_decrypt(
                   plain.data(), &plain_len, nullptr, f.bytes.data() + 16, f.bytes.size() - 16,
                   f.bytes.data(), 16, nonce, ek));
  EXPECT_EQ(f.payload, plain);
  uint8_t n2[12];
  frame_nonce(k2p32 + 5, n2);
  EXPECT_EQ(0, memcmp(nonce, n2, 12));
  uint8_t ek2[32];
  ASSERT_EQ(kOk, derive_epoch_key(key_, 1, ek2));
  EXPECT_EQ(0, memcmp(ek, ek2, 32));
  // crypto_kdf spelled out as the doc gives it: keyed BLAKE2b-256 of nothing, salt = epoch
  // little-endian padded with zeros, personal = "parleyfr" padded with zeros.
  uint8_t salt[16] = {1}, personal[16] = {'p', 'a', 'r', 'l', 'e', 'y', 'f', 'r'};
  ASSERT_EQ(0, crypto_generichash_blake2b_salt_personal(ek2, 32, nullptr, 0, key_, 32, salt,
                                                        personal));
  EXPECT_EQ(0, memcmp(ek, ek2, 32));
  // The epoch-0 key does not open it.
  ASSERT_EQ(kOk, derive_epoch_key(key_, 0, ek2));
  EXPECT_NE(0, crypto_aead_chacha20poly1305_ietf_decrypt(
                   plain.data(), &plain_len, nullptr, f.bytes.data() + 16, f.bytes.size() - 16,
                   f.bytes.data(), 16, nonce, ek2));
}

TEST(FrameCryptoVector, MatchesTheProtocolDocExample) {
  // docs/protocol.md "Media encryption", example frame (also fuzz/corpus/media_frame/sealed-frame).
  uint8_t key[kFrameKeyLen];
  for (size_t i = 0; i < kFrameKeyLen; ++i) key[i] = uint8_t(i);
  static const uint8_t kExpect[] = {
      0x01, 0x01, 0x02, 0x00, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x07, 0x00,
      0x00, 0xbb, 0x80, 0x28, 0x96, 0x68, 0xfc, 0x7f, 0x65, 0x8f, 0x33, 0xad, 0x55,
      0xcf, 0x33, 0x97, 0x0f, 0x97, 0xef, 0xc8, 0xe4, 0x3f, 0x60, 0xba, 0x08, 0x03,
      0x87, 0x20, 0x47, 0xb0, 0xc5, 0x6a, 0xcc, 0x8b, 0x5d, 0x5c, 0x04};
  const char kPayload[] = "opus packet, 20 ms";
  FrameSealer s;
  ASSERT_EQ(kOk, s.init(key, 7));
  FrameHeader h;
  h.flags = 1;
  h.profile = 2;
  h.stream_id = 0x00010203;
  h.timestamp = 48000;
  uint8_t out[64];
  size_t len = 0;
  ASSERT_EQ(kOk, s.seal(h, reinterpret_cast<const uint8_t *>(kPayload), sizeof kPayload - 1,
                        out, sizeof out, &len, nullptr));
  ASSERT_EQ(sizeof kExpect, len);
  EXPECT_EQ(0, memcmp(kExpect, out, len));
  FrameOpener o;
  ASSERT_EQ(kOk, o.init(key));
  uint8_t plain[64];
  uint64_t index = 0;
  ASSERT_EQ(kOk, o.open(kExpect, sizeof kExpect, nullptr, &index, plain, sizeof plain, &len));
  EXPECT_EQ(7u, index);
  EXPECT_EQ(std::string(kPayload), std::string(reinterpret_cast<char *>(plain), len));
}

TEST_F(FrameCrypto, Reordering) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 777));
  ASSERT_EQ(kOk, o.init(key_));
  auto frames = seal(s, 600);
  std::mt19937 rng(1);
  // Shuffle within blocks of 100 (a jittery path), then swap a few frames far apart.
  for (size_t b = 0; b < frames.size(); b += 100) {
    std::shuffle(frames.begin() + b, frames.begin() + b + 100, rng);
  }
  std::swap(frames[10], frames[500]);
  for (const auto &f : frames) expect_opens(o, f);
  EXPECT_EQ(600u, o.stats().opened);
  EXPECT_EQ(777u + 599, o.highest_index());
}

TEST_F(FrameCrypto, Loss) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 0));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 3000);
  size_t delivered = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (i % 3 == 1 || (i >= 1000 && i < 2500)) continue;  // 1/3 loss and a 1500-frame outage
    expect_opens(o, frames[i]);
    ++delivered;
  }
  EXPECT_EQ(delivered, o.stats().opened);
  EXPECT_EQ(2999u, o.highest_index());
}

TEST_F(FrameCrypto, DuplicatesAreReplays) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 40));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 100);
  // A relay→direct switch: every frame arrives on both paths, in varying order.
  for (size_t i = 0; i < frames.size(); ++i) {
    expect_opens(o, frames[i]);
    expect_refused(o, frames[i].bytes, kErrMediaReplay);
    if (i >= 5) expect_refused(o, frames[i - 5].bytes, kErrMediaReplay);
  }
  EXPECT_EQ(100u, o.stats().opened);
  EXPECT_EQ(195u, o.stats().replayed);
  EXPECT_EQ(0u, o.stats().too_old);
}

TEST_F(FrameCrypto, ForgedFramesFailAndChangeNothing) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 500));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 3);
  expect_opens(o, frames[0]);
  // Not frames[1]: flipping its lowest sequence bit would give frames[0]'s index, a replay.
  const Sealed &g = frames[2];
  // Header bytes that still parse (flags, profile, stream id, sequence, timestamp),
  // ciphertext bytes, tag bytes.
  const size_t n = g.bytes.size();
  const size_t positions[] = {1, 2, 4, 7, 8, 11, 12, 15, 16, 17, n / 2, n - 17, n - 16, n - 1};
  uint64_t auth_failed = 0;
  for (size_t pos : positions) {
    for (uint8_t bit : {0x01, 0x80}) {
      std::vector<uint8_t> bad = g.bytes;
      bad[pos] ^= bit;
      expect_refused(o, bad, kErrMediaAuth);
      ++auth_failed;
      EXPECT_EQ(500u, o.highest_index());
    }
  }
  // Truncated by one byte: the tag is then wrong.
  expect_refused(o, std::vector<uint8_t>(g.bytes.begin(), g.bytes.end() - 1), kErrMediaAuth);
  ++auth_failed;
  EXPECT_EQ(auth_failed, o.stats().auth_failed);
  // Header bytes that make it unparseable are malformed, not forged.
  std::vector<uint8_t> bad = g.bytes;
  bad[0] = 2;
  expect_refused(o, bad, kErrMediaMalformed);
  bad = g.bytes;
  bad[3] = 1;
  expect_refused(o, bad, kErrMediaMalformed);
  EXPECT_EQ(2u, o.stats().malformed);
  // The genuine frame still opens: no forgery marked its index as seen.
  expect_opens(o, g);
  expect_opens(o, frames[1]);
}

TEST_F(FrameCrypto, ForgedFarAheadSequenceCannotMoveTheWindow) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 100));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 20);
  for (size_t i = 10; i < 20; ++i) expect_opens(o, frames[i]);
  for (uint32_t ahead : {2000u, 100000u, 0x7fffffffu, 0x80000000u, 0xfffffff0u}) {
    std::vector<uint8_t> forged = frames[19].bytes;
    const uint32_t seq = uint32_t(frames[19].index) + ahead;
    forged[8] = uint8_t(seq >> 24);
    forged[9] = uint8_t(seq >> 16);
    forged[10] = uint8_t(seq >> 8);
    forged[11] = uint8_t(seq);
    expect_refused(o, forged, kErrMediaAuth);
    EXPECT_EQ(119u, o.highest_index());
  }
  // Had the window moved 2000 ahead, these would now be too old.
  for (size_t i = 0; i < 10; ++i) expect_opens(o, frames[i]);
}

TEST_F(FrameCrypto, OldFramesAfterTheWindowMovedAreReplays) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 0));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 2000);
  for (const auto &f : frames) expect_opens(o, f);
  expect_refused(o, frames[1500].bytes, kErrMediaReplay);  // inside the window: duplicate
  EXPECT_EQ(1u, o.stats().replayed);
  expect_refused(o, frames[5].bytes, kErrMediaReplay);  // long gone: too old
  EXPECT_EQ(1u, o.stats().too_old);
  // The boundary: highest - kReplayWindow + 1 is tracked, highest - kReplayWindow is not.
  expect_refused(o, frames[1999 - kReplayWindow + 1].bytes, kErrMediaReplay);
  EXPECT_EQ(2u, o.stats().replayed);
  expect_refused(o, frames[1999 - kReplayWindow].bytes, kErrMediaReplay);
  EXPECT_EQ(2u, o.stats().too_old);
}

TEST_F(FrameCrypto, FramesOlderThanTheWindowAreTooOld) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 300));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 2100);
  expect_opens(o, frames[2000]);  // the first to arrive: everything before it was late
  // Never opened, but too old to tell apart from a replay.
  expect_refused(o, frames[2000 - kReplayWindow].bytes, kErrMediaReplay);
  expect_refused(o, frames[0].bytes, kErrMediaReplay);
  EXPECT_EQ(2u, o.stats().too_old);
  // Still inside the window: opens once.
  expect_opens(o, frames[2000 - kReplayWindow + 1]);
  expect_refused(o, frames[2000 - kReplayWindow + 1].bytes, kErrMediaReplay);
  EXPECT_EQ(1u, o.stats().replayed);
  // The lower edge moves with the highest index.
  expect_opens(o, frames[2099]);
  expect_refused(o, frames[2099 - kReplayWindow].bytes, kErrMediaReplay);
  expect_opens(o, frames[2099 - kReplayWindow + 1]);
  expect_opens(o, frames[2050]);
}

TEST_F(FrameCrypto, LateFramesAfterAJumpAreNotMistakenForReplays) {
  // The window is a ring of kReplayWindow bits: when the highest index jumps ahead, the bits
  // of the indices it skipped still describe frames kReplayWindow older and must be cleared.
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 0));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 4000);
  for (size_t i = 0; i < kReplayWindow; ++i) expect_opens(o, frames[i]);  // every bit set
  expect_opens(o, frames[kReplayWindow + 6]);  // skips 6, whose slots held 0..5
  for (size_t i = kReplayWindow; i < kReplayWindow + 6; ++i) expect_opens(o, frames[i]);
  // A jump by more than the whole window.
  expect_opens(o, frames[3500]);
  for (size_t i = 3500 - kReplayWindow + 1; i < 3500; i += 37) expect_opens(o, frames[i]);
  EXPECT_EQ(0u, o.stats().replayed);
}

TEST_F(FrameCrypto, WrapOfTheWireSequenceChangesEpochAndKeepsIndicesContinuous) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, k2p32 - 100));
  ASSERT_EQ(kOk, o.init(key_));
  auto frames = seal(s, 200, 0xffffff00u);  // the timestamp wraps too
  EXPECT_EQ(k2p32 + 100, s.next_index());
  // The sequence wraps on the wire.
  EXPECT_EQ(0xffffffffu, uint32_t(frames[99].index));
  EXPECT_EQ(0u, frames[100].bytes[8] | frames[100].bytes[9] | frames[100].bytes[10] |
                    frames[100].bytes[11]);
  // Reorder in blocks of 8 so frames from both epochs interleave around the wrap, but
  // keep the first frame first (the opener's starting point lies in epoch 0).
  std::mt19937 rng(7);
  for (size_t b = 8; b + 8 <= frames.size(); b += 8) {
    std::shuffle(frames.begin() + b, frames.begin() + b + 8, rng);
  }
  std::swap(frames[96], frames[104]);  // 2^32 - 4 arrives after 2^32 + 4, and vice versa
  std::set<uint64_t> epochs;
  for (const auto &f : frames) {
    expect_opens(o, f);
    epochs.insert(f.index >> 32);
  }
  EXPECT_EQ((std::set<uint64_t>{0, 1}), epochs);
  EXPECT_EQ(200u, o.stats().opened);
  EXPECT_EQ(k2p32 + 99, o.highest_index());
  // Frames from before the wrap still count as seen afterwards.
  for (const auto &f : frames) expect_refused(o, f.bytes, kErrMediaReplay);
}

TEST_F(FrameCrypto, SixteenBitBoundaryIsNothingSpecial) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 65500));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 100);
  for (size_t i = 0; i < frames.size(); ++i) {
    expect_opens(o, frames[i]);
    EXPECT_EQ(65500u + i, frames[i].index);
  }
}

TEST_F(FrameCrypto, TimestampPassesThroughUntouchedAcrossItsWrap) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 9));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 20, 0xffffffffu - 960 * 10);
  EXPECT_LT(frames[19].timestamp, frames[0].timestamp);
  for (const auto &f : frames) expect_opens(o, f);  // checks the timestamp field
}

TEST_F(FrameCrypto, SeveralWrapsInARow) {
  // A receiver that follows the sender through consecutive epochs, re-deriving keys as the
  // highest index moves on. The sealer skips ahead (as if ~2^31 frames were lost, the most
  // index estimation can bridge) so the test visits five wraps quickly.
  FrameSealer s;
  FrameOpener o;
  uint64_t start = k2p32 - 3;
  ASSERT_EQ(kOk, o.init(key_));
  for (uint64_t e = 1; e <= 5; ++e) {
    ASSERT_EQ(kOk, s.init(key_, start));
    for (const auto &f : seal(s, 6)) expect_opens(o, f);  // crosses into epoch e
    EXPECT_EQ(e * k2p32 + 2, o.highest_index());
    ASSERT_EQ(kOk, s.init(key_, e * k2p32 + (uint64_t(1) << 31)));
    for (const auto &f : seal(s, 1)) expect_opens(o, f);
    start = (e + 1) * k2p32 - 3;
  }
  EXPECT_EQ(35u, o.stats().opened);
  EXPECT_EQ(5 * k2p32 + (uint64_t(1) << 31), o.highest_index());
}

TEST_F(FrameCrypto, SealerRefusesToExhaustTheIndex) {
  FrameSealer s;
  ASSERT_EQ(kOk, s.init(key_, UINT64_MAX - 2));
  const uint8_t p[3] = {1, 2, 3};
  uint8_t out[64];
  size_t len = 0;
  uint64_t index = 0;
  EXPECT_EQ(kOk, s.seal(FrameHeader{}, p, 3, out, sizeof out, &len, &index));
  EXPECT_EQ(UINT64_MAX - 2, index);
  EXPECT_EQ(kOk, s.seal(FrameHeader{}, p, 3, out, sizeof out, &len, &index));
  EXPECT_EQ(UINT64_MAX - 1, index);
  EXPECT_EQ(kFrameIndexExhausted, s.next_index());
  EXPECT_EQ(kErrLimitReached, s.seal(FrameHeader{}, p, 3, out, sizeof out, &len, &index));
  EXPECT_EQ(kErrLimitReached, s.seal(FrameHeader{}, p, 3, out, sizeof out, &len, &index));
  EXPECT_EQ(UINT64_MAX - 1, index);
  EXPECT_EQ(kFrameIndexExhausted, s.next_index());
}

TEST_F(FrameCrypto, OneDirectionsFramesDoNotOpenWithTheOthersKey) {
  std::unique_ptr<identity::Identity> alice, bob;
  ASSERT_EQ(kOk, identity::Identity::generate(&alice));
  ASSERT_EQ(kOk, identity::Identity::generate(&bob));
  const signal::CallId call = signal::Id16::random();
  LocalMediaKey ak, bk;
  ASSERT_EQ(kOk, make_local_media_key(*alice, call, bob->fingerprint(), KeyRole::kCaller, 1, &ak));
  ASSERT_EQ(kOk, make_local_media_key(*bob, call, alice->fingerprint(), KeyRole::kCallee, 1, &bk));
  CallKeys ac, bc;
  ASSERT_EQ(kOk, derive_call_keys(ak, bk.signed_key, true, call, alice->fingerprint(),
                                  bob->fingerprint(), &ac));
  ASSERT_EQ(kOk, derive_call_keys(bk, ak.signed_key, false, call, alice->fingerprint(),
                                  bob->fingerprint(), &bc));
  FrameSealer a_to_b;
  FrameOpener b_from_a, wrong;
  ASSERT_EQ(kOk, a_to_b.init(ac.send.data(), 5));
  ASSERT_EQ(kOk, b_from_a.init(bc.recv.data()));
  ASSERT_EQ(kOk, wrong.init(bc.send.data()));  // B→A's key
  const auto frames = seal(a_to_b, 3);
  for (const auto &f : frames) {
    expect_refused(wrong, f.bytes, kErrMediaAuth);
    expect_opens(b_from_a, f);
  }
  EXPECT_FALSE(wrong.started());
  EXPECT_EQ(3u, wrong.stats().auth_failed);
}

TEST_F(FrameCrypto, BufferSizesAndMisuse) {
  FrameSealer s;
  FrameOpener o;
  const uint8_t p[10] = {};
  uint8_t out[64];
  size_t len = 0;
  EXPECT_EQ(kErrInvalidArgument, s.seal(FrameHeader{}, p, 10, out, sizeof out, &len, nullptr));
  EXPECT_EQ(kErrInvalidArgument, o.open(out, sizeof out, nullptr, nullptr, out, 64, &len));
  EXPECT_EQ(kErrInvalidArgument, s.init(nullptr, 0));
  EXPECT_EQ(kErrInvalidArgument, o.init(nullptr));
  ASSERT_EQ(kOk, s.init(key_, 0));
  ASSERT_EQ(kOk, o.init(key_));
  EXPECT_EQ(kErrInvalidArgument, s.seal(FrameHeader{}, nullptr, 10, out, sizeof out, &len,
                                        nullptr));
  EXPECT_EQ(kErrMessageTooLarge, s.seal(FrameHeader{}, p, 10, out, 10 + kFrameOverhead - 1,
                                        &len, nullptr));
  EXPECT_EQ(kErrMessageTooLarge, s.seal(FrameHeader{}, p, 0, out, kFrameOverhead - 1, &len,
                                        nullptr));
  EXPECT_EQ(0u, s.next_index());  // failures do not use up an index
  ASSERT_EQ(kOk, s.seal(FrameHeader{}, p, 10, out, 10 + kFrameOverhead, &len, nullptr));
  ASSERT_EQ(10 + kFrameOverhead, len);

  uint8_t plain[10];
  size_t plain_len = 0;
  EXPECT_EQ(kErrMessageTooLarge, o.open(out, len, nullptr, nullptr, plain, 9, &plain_len));
  EXPECT_EQ(1u, o.stats().too_large);
  EXPECT_EQ(kErrMediaMalformed, o.open(out, kFrameOverhead - 1, nullptr, nullptr, plain,
                                       sizeof plain, &plain_len));
  EXPECT_EQ(1u, o.stats().malformed);
  EXPECT_EQ(kErrInvalidArgument, o.open(out, len, nullptr, nullptr, plain, sizeof plain,
                                        nullptr));
  EXPECT_EQ(kOk, o.open(out, len, nullptr, nullptr, plain, sizeof plain, &plain_len));
  EXPECT_EQ(10u, plain_len);

  // An empty payload: only the header is authenticated; no output buffer needed.
  ASSERT_EQ(kOk, s.seal(FrameHeader{}, nullptr, 0, out, sizeof out, &len, nullptr));
  ASSERT_EQ(kFrameOverhead, len);
  EXPECT_EQ(kOk, o.open(out, len, nullptr, nullptr, nullptr, 0, &plain_len));
  EXPECT_EQ(0u, plain_len);
}

TEST_F(FrameCrypto, SealInPlace) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 0));
  ASSERT_EQ(kOk, o.init(key_));
  uint8_t buf[kFrameOverhead + 5] = {};
  memcpy(buf + kFrameHeaderSize, "hello", 5);
  size_t len = 0;
  ASSERT_EQ(kOk, s.seal(FrameHeader{}, buf + kFrameHeaderSize, 5, buf, sizeof buf, &len,
                        nullptr));
  EXPECT_NE(0, memcmp(buf + kFrameHeaderSize, "hello", 5));
  uint8_t plain[5];
  size_t plain_len = 0;
  ASSERT_EQ(kOk, o.open(buf, len, nullptr, nullptr, plain, sizeof plain, &plain_len));
  EXPECT_EQ(0, memcmp(plain, "hello", 5));
}

TEST_F(FrameCrypto, InitStartsOver) {
  FrameSealer s;
  FrameOpener o;
  ASSERT_EQ(kOk, s.init(key_, 0));
  ASSERT_EQ(kOk, o.init(key_));
  const auto frames = seal(s, 2);
  expect_opens(o, frames[0]);
  ASSERT_EQ(kOk, o.init(key_));
  EXPECT_FALSE(o.started());
  EXPECT_EQ(0u, o.stats().opened);
  expect_opens(o, frames[0]);  // forgotten, so it opens again
}

}  // namespace
}  // namespace parley::media

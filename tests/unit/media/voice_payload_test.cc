#include "media/voice_payload.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "base/error.h"

namespace parley::media {
namespace {

// Block contents that differ per block and per byte, so a block read from the wrong offset
// or with the wrong length never compares equal by accident.
std::vector<uint8_t> pattern(size_t len, uint8_t seed) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = uint8_t(seed * 31 + i * 7 + 1);
  return v;
}

struct Built {
  std::vector<std::vector<uint8_t>> red_data;
  std::vector<VoiceBlock> red;
  std::vector<uint8_t> primary;
  std::vector<uint8_t> bytes;
};

// A valid payload with `count` earlier blocks (lengths 3, 5, 7 bytes; ts_back 2880, 1920,
// 960) and a `primary_len`-byte primary.
Built build(size_t count, size_t primary_len = 11, uint8_t feedback = 0x42) {
  Built b;
  const uint16_t backs[] = {2880, 1920, 960};
  for (size_t i = 0; i < count; ++i) b.red_data.push_back(pattern(3 + 2 * i, uint8_t(i + 1)));
  for (size_t i = 0; i < count; ++i) {
    VoiceBlock blk;
    blk.ts_back = backs[3 - count + i];
    blk.data = b.red_data[i].data();
    blk.len = b.red_data[i].size();
    b.red.push_back(blk);
  }
  b.primary = pattern(primary_len, 9);
  b.bytes.resize(kMaxVoicePayload);
  const size_t n = write_voice_payload(feedback, b.red.data(), count, b.primary.data(),
                                       b.primary.size(), b.bytes.data(), b.bytes.size());
  EXPECT_GT(n, 0u);
  b.bytes.resize(n);
  return b;
}

TEST(VoicePayload, RoundTripsZeroToThreeRedundantBlocks) {
  for (size_t count = 0; count <= kMaxRedundancy; ++count) {
    SCOPED_TRACE(count);
    const Built b = build(count);
    size_t red_bytes = 0;
    for (const auto &d : b.red_data) red_bytes += d.size();
    ASSERT_EQ(b.bytes.size(),
              kVoicePayloadFixed + count * kVoiceRedBlockHeader + red_bytes + b.primary.size());
    VoicePayload p;
    ASSERT_EQ(kOk, parse_voice_payload(b.bytes.data(), b.bytes.size(), &p));
    EXPECT_EQ(p.feedback, 0x42);
    ASSERT_EQ(p.red_count, count);
    for (size_t i = 0; i < count; ++i) {
      EXPECT_EQ(p.red[i].ts_back, b.red[i].ts_back);
      ASSERT_EQ(p.red[i].len, b.red_data[i].size());
      // Zero-copy: the blocks point into the input.
      EXPECT_GE(p.red[i].data, b.bytes.data());
      EXPECT_LE(p.red[i].data + p.red[i].len, b.bytes.data() + b.bytes.size());
      EXPECT_EQ(0, std::memcmp(p.red[i].data, b.red_data[i].data(), p.red[i].len));
    }
    EXPECT_EQ(p.primary.ts_back, 0);
    ASSERT_EQ(p.primary.len, b.primary.size());
    EXPECT_EQ(p.primary.data + p.primary.len, b.bytes.data() + b.bytes.size());
    EXPECT_EQ(0, std::memcmp(p.primary.data, b.primary.data(), p.primary.len));
  }
}

TEST(VoicePayload, WritesTheDocumentedLayoutBigEndian) {
  const uint8_t red0[] = {0xa0, 0xa1}, red1[] = {0xb0};
  const VoiceBlock red[] = {{0x0302, red0, sizeof red0}, {0x0102, red1, sizeof red1}};
  const uint8_t primary[] = {0xc0, 0xc1, 0xc2};
  uint8_t out[64];
  ASSERT_EQ(size_t(2 + 8 + 3 + 3),
            write_voice_payload(0xfe, red, 2, primary, sizeof primary, out, sizeof out));
  const uint8_t want[] = {0xfe, 2,    0x03, 0x02, 0x00, 0x02, 0x01, 0x02,
                          0x00, 0x01, 0xa0, 0xa1, 0xb0, 0xc0, 0xc1, 0xc2};
  EXPECT_EQ(0, std::memcmp(out, want, sizeof want));
}

TEST(VoicePayload, LargestBlocksFitKMaxVoicePayloadExactly) {
  std::vector<std::vector<uint8_t>> data;
  VoiceBlock red[kMaxRedundancy];
  for (size_t i = 0; i < kMaxRedundancy; ++i) {
    data.push_back(pattern(kMaxOpusPacket, uint8_t(i)));
    red[i] = VoiceBlock{uint16_t(0xffff - i), data[i].data(), kMaxOpusPacket};
  }
  const std::vector<uint8_t> primary = pattern(kMaxOpusPacket, 7);
  std::vector<uint8_t> out(kMaxVoicePayload);
  ASSERT_EQ(kMaxVoicePayload, write_voice_payload(0, red, kMaxRedundancy, primary.data(),
                                                  primary.size(), out.data(), out.size()));
  EXPECT_EQ(0u, write_voice_payload(0, red, kMaxRedundancy, primary.data(), primary.size(),
                                    out.data(), out.size() - 1));
  VoicePayload p;
  ASSERT_EQ(kOk, parse_voice_payload(out.data(), out.size(), &p));
  EXPECT_EQ(p.red_count, kMaxRedundancy);
  EXPECT_EQ(p.red[0].ts_back, 0xffff);
  EXPECT_EQ(p.primary.len, kMaxOpusPacket);
}

// Every prefix that ends before the first primary byte is truncated; every longer prefix is
// a valid payload with a shorter primary (the primary has no length field).
TEST(VoicePayload, RejectsTruncationAtEveryLength) {
  for (size_t count = 0; count <= kMaxRedundancy; ++count) {
    const Built b = build(count);
    const size_t primary_at = b.bytes.size() - b.primary.size();
    for (size_t len = 0; len < b.bytes.size(); ++len) {
      SCOPED_TRACE(testing::Message() << count << " blocks, " << len << " bytes");
      VoicePayload p;
      const int r = parse_voice_payload(b.bytes.data(), len, &p);
      if (len <= primary_at) {
        EXPECT_EQ(kErrMediaMalformed, r);
      } else {
        ASSERT_EQ(kOk, r);
        EXPECT_EQ(p.red_count, count);
        EXPECT_EQ(p.primary.len, len - primary_at);
      }
    }
  }
  VoicePayload p;
  EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(nullptr, 0, &p));
}

TEST(VoicePayload, RejectsACountAboveKMaxRedundancy) {
  Built b = build(3);
  // Plenty of bytes behind the count, so only the count itself can be the reason.
  b.bytes.resize(b.bytes.size() + 64, 0x01);
  VoicePayload p;
  for (unsigned count = kMaxRedundancy + 1; count <= 255; ++count) {
    b.bytes[1] = uint8_t(count);
    EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(b.bytes.data(), b.bytes.size(), &p))
        << count;
  }
}

void set_back(std::vector<uint8_t> &bytes, size_t block, uint16_t back) {
  bytes[kVoicePayloadFixed + block * kVoiceRedBlockHeader] = uint8_t(back >> 8);
  bytes[kVoicePayloadFixed + block * kVoiceRedBlockHeader + 1] = uint8_t(back);
}
void set_len(std::vector<uint8_t> &bytes, size_t block, uint16_t len) {
  bytes[kVoicePayloadFixed + block * kVoiceRedBlockHeader + 2] = uint8_t(len >> 8);
  bytes[kVoicePayloadFixed + block * kVoiceRedBlockHeader + 3] = uint8_t(len);
}

TEST(VoicePayload, RejectsZeroOrNotStrictlyDecreasingTsBack) {
  const Built b = build(3);  // ts_back 2880, 1920, 960
  VoicePayload p;
  const struct {
    uint16_t backs[3];
    bool ok;
  } cases[] = {
      {{2880, 1920, 960}, true},    {{0xffff, 2, 1}, true},        {{0, 1920, 960}, false},
      {{2880, 0, 960}, false},      {{2880, 1920, 0}, false},      {{2880, 2880, 960}, false},
      {{2880, 1920, 1920}, false},  {{960, 1920, 2880}, false},    {{2880, 960, 1920}, false},
      {{1920, 2880, 960}, false},
  };
  for (const auto &c : cases) {
    std::vector<uint8_t> bytes = b.bytes;
    for (size_t i = 0; i < 3; ++i) set_back(bytes, i, c.backs[i]);
    SCOPED_TRACE(testing::Message() << c.backs[0] << " " << c.backs[1] << " " << c.backs[2]);
    EXPECT_EQ(c.ok ? kOk : kErrMediaMalformed,
              parse_voice_payload(bytes.data(), bytes.size(), &p));
  }
  // A single block with ts_back 0.
  std::vector<uint8_t> one = build(1).bytes;
  set_back(one, 0, 0);
  EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(one.data(), one.size(), &p));
}

TEST(VoicePayload, RejectsEmptyAndOversizedBlocks) {
  VoicePayload p;
  // A zero-length earlier block, in each position (the payload stays long enough).
  for (size_t i = 0; i < 3; ++i) {
    std::vector<uint8_t> bytes = build(3).bytes;
    set_len(bytes, i, 0);
    EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(bytes.data(), bytes.size(), &p)) << i;
  }
  // kMaxOpusPacket is accepted, one more is not, even with the bytes all present.
  std::vector<uint8_t> bytes = build(1).bytes;
  const size_t head = kVoicePayloadFixed + kVoiceRedBlockHeader;
  bytes.resize(head + kMaxOpusPacket + 1 + 5, 0x08);
  set_len(bytes, 0, uint16_t(kMaxOpusPacket));
  ASSERT_EQ(kOk, parse_voice_payload(bytes.data(), bytes.size(), &p));
  EXPECT_EQ(p.primary.len, size_t(6));
  set_len(bytes, 0, uint16_t(kMaxOpusPacket + 1));
  EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(bytes.data(), bytes.size(), &p));
  set_len(bytes, 0, 0xffff);
  EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(bytes.data(), bytes.size(), &p));

  // The primary: empty after the earlier blocks, or longer than one Opus packet.
  const Built b = build(2);
  const size_t primary_at = b.bytes.size() - b.primary.size();
  EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(b.bytes.data(), primary_at, &p));
  std::vector<uint8_t> big = {0, 0};
  big.resize(2 + kMaxOpusPacket, 0x08);
  ASSERT_EQ(kOk, parse_voice_payload(big.data(), big.size(), &p));
  big.push_back(0x08);
  EXPECT_EQ(kErrMediaMalformed, parse_voice_payload(big.data(), big.size(), &p));
}

TEST(VoicePayload, WriteRefusesWhatTheParserRejects) {
  const std::vector<uint8_t> d = pattern(kMaxOpusPacket + 1, 3);
  const uint8_t *x = d.data();
  std::vector<uint8_t> out(kMaxVoicePayload + 16);
  const auto write = [&](std::vector<VoiceBlock> red, size_t primary_len) {
    return write_voice_payload(0, red.data(), red.size(), x, primary_len, out.data(),
                               out.size());
  };
  EXPECT_GT(write({{960, x, 4}}, 4), 0u);  // the baseline the cases below break
  EXPECT_EQ(0u, write({{960, x, 4}}, 0));                             // empty primary
  EXPECT_EQ(0u, write({{960, x, 4}}, kMaxOpusPacket + 1));            // oversized primary
  EXPECT_EQ(0u, write({{0, x, 4}}, 4));                               // ts_back 0
  EXPECT_EQ(0u, write({{960, x, 0}}, 4));                             // empty block
  EXPECT_EQ(0u, write({{960, x, kMaxOpusPacket + 1}}, 4));            // oversized block
  EXPECT_EQ(0u, write({{960, x, 4}, {960, x, 4}}, 4));                // equal ts_back
  EXPECT_EQ(0u, write({{960, x, 4}, {1920, x, 4}}, 4));               // increasing
  EXPECT_EQ(0u, write({{3, x, 1}, {2, x, 1}, {1, x, 1}, {0, x, 1}}, 4));  // ts_back 0 too
  VoiceBlock four[4] = {{4, x, 1}, {3, x, 1}, {2, x, 1}, {1, x, 1}};
  EXPECT_EQ(0u, write_voice_payload(0, four, 4, x, 4, out.data(), out.size()));  // count 4

  // Every capacity short of the size is refused, without writing past it.
  const Built b = build(3);
  for (size_t cap = 0; cap < b.bytes.size(); ++cap) {
    std::vector<uint8_t> small(cap + 8, 0xee);
    EXPECT_EQ(0u, write_voice_payload(0x42, b.red.data(), 3, b.primary.data(),
                                      b.primary.size(), small.data(), cap))
        << cap;
    for (size_t i = cap; i < small.size(); ++i) ASSERT_EQ(small[i], 0xee) << cap;
  }
  std::vector<uint8_t> exact(b.bytes.size());
  ASSERT_EQ(b.bytes.size(), write_voice_payload(0x42, b.red.data(), 3, b.primary.data(),
                                                b.primary.size(), exact.data(), exact.size()));
  EXPECT_EQ(exact, b.bytes);
}

}  // namespace
}  // namespace parley::media

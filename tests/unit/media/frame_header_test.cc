#include "media/frame_header.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace parley::media {
namespace {

TEST(FrameHeader, RoundTripsEveryFieldBigEndian) {
  FrameHeader h;
  h.flags = 0x81;
  h.profile = 3;
  h.stream_id = 0x01020304;
  h.sequence = 0xfffffffe;
  h.timestamp = 0x0a0b0c0d;
  uint8_t b[kFrameHeaderSize + 4] = {};
  write_frame_header(h, b);
  const uint8_t expect[kFrameHeaderSize] = {1, 0x81, 3, 0, 1, 2, 3, 4,
                                            0xff, 0xff, 0xff, 0xfe, 0x0a, 0x0b, 0x0c, 0x0d};
  EXPECT_EQ(0, memcmp(b, expect, sizeof expect));
  FrameHeader back;
  ASSERT_EQ(kOk, parse_frame_header(b, sizeof b, &back));
  EXPECT_EQ(back.flags, h.flags);
  EXPECT_EQ(back.profile, h.profile);
  EXPECT_EQ(back.stream_id, h.stream_id);
  EXPECT_EQ(back.sequence, h.sequence);
  EXPECT_EQ(back.timestamp, h.timestamp);
  uint32_t sid = 0;
  EXPECT_TRUE(peek_stream_id(b, sizeof b, &sid));
  EXPECT_EQ(sid, h.stream_id);
}

TEST(FrameHeader, RejectsShortUnknownVersionAndReservedBits) {
  uint8_t b[kFrameHeaderSize] = {};
  write_frame_header(FrameHeader{}, b);
  FrameHeader h;
  uint32_t sid;
  EXPECT_EQ(kErrMediaMalformed, parse_frame_header(b, kFrameHeaderSize - 1, &h));
  EXPECT_FALSE(peek_stream_id(b, kFrameHeaderSize - 1, &sid));
  b[0] = 2;
  EXPECT_EQ(kErrMediaMalformed, parse_frame_header(b, sizeof b, &h));
  EXPECT_FALSE(peek_stream_id(b, sizeof b, &sid));
  b[0] = 1;
  b[3] = 1;
  EXPECT_EQ(kErrMediaMalformed, parse_frame_header(b, sizeof b, &h));
}

}  // namespace
}  // namespace parley::media

#include "quic/stream_buffers.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace parley::quic {
namespace {

std::vector<uint8_t> frame(const std::vector<std::vector<uint8_t>> &msgs) {
  SendBuffer b;
  for (const auto &m : msgs) b.append_message(m.data(), m.size());
  std::vector<uint8_t> out;
  const uint8_t *d;
  size_t n;
  while (b.peek(&d, &n)) {
    out.insert(out.end(), d, d + n);
    b.advance(n);
  }
  return out;
}

TEST(MessageReassembler, EverySplitPointYieldsTheSameMessages) {
  const std::vector<std::vector<uint8_t>> msgs = {{1, 2, 3}, {}, std::vector<uint8_t>(300, 9), {4}};
  const auto wire = frame(msgs);
  for (size_t split = 0; split <= wire.size(); ++split) {
    MessageReassembler r(1000);
    std::vector<std::vector<uint8_t>> got;
    auto on = [&](const uint8_t *d, size_t n) { got.emplace_back(d, d + n); };
    ASSERT_EQ(r.feed(wire.data(), split, on), kOk);
    ASSERT_EQ(r.feed(wire.data() + split, wire.size() - split, on), kOk);
    EXPECT_EQ(got, msgs) << "split at " << split;
  }
}

TEST(MessageReassembler, ByteAtATime) {
  const std::vector<std::vector<uint8_t>> msgs = {{1, 2, 3}, std::vector<uint8_t>(70, 5)};
  const auto wire = frame(msgs);
  MessageReassembler r(100);
  std::vector<std::vector<uint8_t>> got;
  for (uint8_t b : wire) {
    ASSERT_EQ(r.feed(&b, 1, [&](const uint8_t *d, size_t n) { got.emplace_back(d, d + n); }), kOk);
  }
  EXPECT_EQ(got, msgs);
}

TEST(MessageReassembler, OversizedHeaderFailsBeforeBuffering) {
  MessageReassembler r(100);
  const uint8_t hdr[4] = {0, 0, 0, 101};
  int calls = 0;
  EXPECT_EQ(r.feed(hdr, 4, [&](const uint8_t *, size_t) { ++calls; }), kErrMessageTooLarge);
  EXPECT_EQ(r.buffered(), 4u);
  const uint8_t more[1] = {0};
  EXPECT_EQ(r.feed(more, 1, [&](const uint8_t *, size_t) { ++calls; }), kErrMessageTooLarge);
  EXPECT_EQ(calls, 0);
  const uint8_t max[4] = {0xff, 0xff, 0xff, 0xff};  // 4 GiB - 1: refused, never allocated
  MessageReassembler r2(1 << 20);
  EXPECT_EQ(r2.feed(max, 4, [&](const uint8_t *, size_t) {}), kErrMessageTooLarge);
}

TEST(SendBuffer, KeepsBytesUntilAcknowledged) {
  SendBuffer b;
  const uint8_t m1[10] = {}, m2[20] = {};
  b.append_message(m1, sizeof m1);
  b.append_message(m2, sizeof m2);
  EXPECT_EQ(b.unsent(), 38u);
  const uint8_t *d;
  size_t n;
  ASSERT_TRUE(b.peek(&d, &n));
  EXPECT_EQ(n, 14u);  // first chunk only
  const uint8_t *first = d;
  b.advance(5);
  ASSERT_TRUE(b.peek(&d, &n));
  EXPECT_EQ(d, first + 5);
  b.advance(9);
  ASSERT_TRUE(b.peek(&d, &n));
  EXPECT_EQ(n, 24u);
  b.advance(24);
  EXPECT_FALSE(b.peek(&d, &n));
  EXPECT_EQ(b.unacked(), 38u);
  b.acked_to(10);  // partial: first chunk still referenced by QUIC
  EXPECT_EQ(b.unacked(), 28u);
  b.acked_to(38);
  EXPECT_EQ(b.unacked(), 0u);
}

}  // namespace
}  // namespace parley::quic

// Signaling-stream plumbing, sans-I/O: messages travel on a QUIC stream as a 4-byte
// big-endian length followed by the message; MessageReassembler cuts the received byte stream
// back into messages (refusing any larger than the configured maximum before buffering it),
// SendBuffer keeps sent bytes stable in memory until QUIC acknowledges them (ngtcp2
// retransmits straight from the application's buffers).
#ifndef PARLEY_QUIC_STREAM_BUFFERS_H
#define PARLEY_QUIC_STREAM_BUFFERS_H

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

namespace parley::quic {

constexpr size_t kMessageHeaderLen = 4;

class MessageReassembler {
 public:
  explicit MessageReassembler(size_t max_message) : max_(max_message) {}
  using OnMessage = std::function<void(const uint8_t *data, size_t len)>;
  // Feeds the next in-order bytes of the stream. kOk, or kErrMessageTooLarge once a header
  // announces more than the maximum (the stream is then unusable).
  int feed(const uint8_t *data, size_t len, const OnMessage &on_message);
  size_t buffered() const { return body_.size() + header_fill_; }

 private:
  size_t max_;
  uint8_t header_[kMessageHeaderLen] = {};
  size_t header_fill_ = 0;
  size_t expected_ = 0;  // body length of the current message (valid once header is full)
  std::vector<uint8_t> body_;
  bool failed_ = false;
};

class SendBuffer {
 public:
  // Appends a framed message (header + body) as one stable chunk.
  void append_message(const uint8_t *data, size_t len);
  // The next unsent bytes (contiguous, within one chunk); false if everything was sent.
  bool peek(const uint8_t **data, size_t *len) const;
  // `n` bytes of what peek returned were handed to QUIC.
  void advance(size_t n);
  // QUIC acknowledged the stream up to `offset` (in order): frees fully acknowledged chunks.
  void acked_to(uint64_t offset);
  uint64_t unsent() const { return end_ - sent_; }
  uint64_t unacked() const { return end_ - acked_; }

 private:
  std::deque<std::vector<uint8_t>> chunks_;
  uint64_t front_offset_ = 0;  // stream offset of chunks_.front()[0]
  uint64_t sent_ = 0, acked_ = 0, end_ = 0;
};

}  // namespace parley::quic

#endif

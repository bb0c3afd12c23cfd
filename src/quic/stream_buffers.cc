#include "quic/stream_buffers.h"

#include <cstring>

#include "base/error.h"

namespace parley::quic {

int MessageReassembler::feed(const uint8_t *data, size_t len, const OnMessage &on_message) {
  if (failed_) return kErrMessageTooLarge;
  while (len > 0) {
    if (header_fill_ < kMessageHeaderLen) {
      const size_t n = std::min(len, kMessageHeaderLen - header_fill_);
      std::memcpy(header_ + header_fill_, data, n);
      header_fill_ += n;
      data += n;
      len -= n;
      if (header_fill_ < kMessageHeaderLen) return kOk;
      expected_ = (size_t(header_[0]) << 24) | (size_t(header_[1]) << 16) |
                  (size_t(header_[2]) << 8) | header_[3];
      if (expected_ > max_) {
        failed_ = true;
        return fail(kErrMessageTooLarge, "stream message of %zu bytes exceeds the maximum %zu",
                    expected_, max_);
      }
      body_.clear();
    }
    const size_t want = expected_ - body_.size();
    if (body_.empty() && len >= want) {
      on_message(data, want);  // whole message in this chunk: no copy
    } else {
      const size_t n = std::min(len, want);
      body_.insert(body_.end(), data, data + n);
      data += n;
      len -= n;
      if (body_.size() < expected_) return kOk;
      on_message(body_.data(), body_.size());
      header_fill_ = 0;
      body_.clear();
      body_.shrink_to_fit();  // a one-off large message should not pin its memory
      continue;
    }
    data += want;
    len -= want;
    header_fill_ = 0;
  }
  return kOk;
}

void SendBuffer::append_message(const uint8_t *data, size_t len) {
  std::vector<uint8_t> chunk(kMessageHeaderLen + len);
  chunk[0] = uint8_t(len >> 24);
  chunk[1] = uint8_t(len >> 16);
  chunk[2] = uint8_t(len >> 8);
  chunk[3] = uint8_t(len);
  if (len) std::memcpy(chunk.data() + kMessageHeaderLen, data, len);
  end_ += chunk.size();
  chunks_.push_back(std::move(chunk));
}

bool SendBuffer::peek(const uint8_t **data, size_t *len) const {
  if (sent_ == end_) return false;
  uint64_t off = front_offset_;
  for (const auto &c : chunks_) {
    if (sent_ < off + c.size()) {
      *data = c.data() + (sent_ - off);
      *len = size_t(off + c.size() - sent_);
      return true;
    }
    off += c.size();
  }
  return false;
}

void SendBuffer::advance(size_t n) { sent_ += n; }

void SendBuffer::acked_to(uint64_t offset) {
  if (offset > acked_) acked_ = offset;
  while (!chunks_.empty() && front_offset_ + chunks_.front().size() <= acked_) {
    front_offset_ += chunks_.front().size();
    chunks_.pop_front();
  }
}

}  // namespace parley::quic

// RFC 8489 STUN message codec: a zero-copy parsed view (Message) and an encoder
// (MessageBuilder). Neither allocates. Parsing is strict: every length is checked against the
// datagram, padding is honoured, and FINGERPRINT, when present, is verified at parse time.
#ifndef PARLEY_STUN_MESSAGE_H
#define PARLEY_STUN_MESSAGE_H

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/address.h"

namespace parley::stun {

constexpr uint32_t kMagicCookie = 0x2112A442;
constexpr size_t kHeaderLen = 20;
// Largest message parley accepts. Requests may be padded far beyond a path MTU (RFC 5780
// PADDING, coturn's natdiscovery -P sends ~1.5 KB); what parley sends stays small.
constexpr size_t kMaxMessageLen = 4096;
// Attributes a parsed message keeps track of; more than this is malformed.
constexpr size_t kMaxAttributes = 32;
constexpr size_t kMaxUnknownAttributes = 8;

enum Class : uint8_t { kRequest = 0, kIndication = 1, kSuccessResponse = 2, kErrorResponse = 3 };
enum Method : uint16_t { kBinding = 0x001 };

enum AttributeType : uint16_t {
  kAttrMappedAddress = 0x0001,
  kAttrChangeRequest = 0x0003,         // RFC 5780
  kAttrUsername = 0x0006,
  kAttrMessageIntegrity = 0x0008,
  kAttrErrorCode = 0x0009,
  kAttrUnknownAttributes = 0x000A,
  kAttrRealm = 0x0014,
  kAttrNonce = 0x0015,
  kAttrMessageIntegritySha256 = 0x001C,
  kAttrXorMappedAddress = 0x0020,
  kAttrPriority = 0x0024,              // RFC 8445
  kAttrPadding = 0x0026,               // RFC 5780: accepted (it buys response budget), not echoed
  kAttrResponsePort = 0x0027,          // RFC 5780: not supported (420)
  kAttrUseCandidate = 0x0025,          // RFC 8445
  kAttrSoftware = 0x8022,
  kAttrFingerprint = 0x8028,
  kAttrIceControlled = 0x8029,         // RFC 8445
  kAttrIceControlling = 0x802A,        // RFC 8445
  kAttrResponseOrigin = 0x802B,        // RFC 5780
  kAttrOtherAddress = 0x802C,          // RFC 5780
};

// CHANGE-REQUEST flags (RFC 5780 7.2).
constexpr uint32_t kChangeIp = 0x4;
constexpr uint32_t kChangePort = 0x2;

struct TransactionId {
  uint8_t bytes[12] = {};
  static TransactionId random();
  bool operator==(const TransactionId &o) const;
  bool operator!=(const TransactionId &o) const { return !(*this == o); }
};

// True if `data` can only be STUN: first two bits zero, magic cookie in place, length a
// multiple of 4 matching the datagram. Cheap; for the RFC 7983 demultiplexer.
bool looks_like_stun(const uint8_t *data, size_t len);

// CRC-32 (ISO-HDLC, as zlib) of `len` bytes; FINGERPRINT is this xor 0x5354554e.
uint32_t crc32(const uint8_t *data, size_t len);

class Message {
 public:
  struct Attribute {
    uint16_t type;
    uint16_t length;
    uint16_t offset;  // of the value, from the start of the message
  };

  // Parses `len` bytes at `data` (which must outlive the Message). Returns kOk,
  // kErrStunMalformed (framing, lengths, padding, attribute count, FINGERPRINT not last) or
  // kErrStunFingerprint (FINGERPRINT present and wrong). Unknown comprehension-required
  // attributes do not fail the parse: see unknown_required().
  static int parse(const uint8_t *data, size_t len, Message *out);

  uint16_t method() const { return method_; }
  Class message_class() const { return class_; }
  const TransactionId &transaction_id() const { return txid_; }
  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

  // The first attribute of `type` before MESSAGE-INTEGRITY (attributes after it other than
  // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are ignored, as RFC 8489 14.5 requires).
  const Attribute *find(uint16_t type) const;
  bool has(uint16_t type) const { return find(type) != nullptr; }
  std::string_view value(const Attribute &a) const {
    return {reinterpret_cast<const char *>(data_ + a.offset), a.length};
  }

  // Unknown comprehension-required attribute types (for a 420 response's UNKNOWN-ATTRIBUTES).
  const uint16_t *unknown_required() const { return unknown_; }
  size_t unknown_required_count() const { return unknown_count_; }

  // Typed readers: kOk, kErrStunMalformed if present but ill-formed, kErrStunMalformed if
  // absent too (callers check has() when absence is legal).
  int xor_address(uint16_t type, SocketAddress *out) const;  // XOR-MAPPED-ADDRESS
  int address(uint16_t type, SocketAddress *out) const;      // MAPPED/RESPONSE-ORIGIN/OTHER
  int u32(uint16_t type, uint32_t *out) const;               // PRIORITY, CHANGE-REQUEST
  int u64(uint16_t type, uint64_t *out) const;               // ICE-CONTROLLING/-CONTROLLED
  int error_code(int *code, std::string_view *reason) const;

  // Verifies MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY, with `key` (the
  // short-term password, or the long-term key). kOk or kErrStunIntegrity (absent or wrong).
  int check_integrity(const uint8_t *key, size_t key_len) const;

 private:
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
  uint16_t method_ = 0;
  Class class_ = kRequest;
  TransactionId txid_;
  Attribute attrs_[kMaxAttributes];
  size_t attr_count_ = 0;
  int integrity_index_ = -1;         // MESSAGE-INTEGRITY
  int integrity_sha256_index_ = -1;  // MESSAGE-INTEGRITY-SHA256
  uint16_t unknown_[kMaxUnknownAttributes];
  size_t unknown_count_ = 0;
};

// Encodes a message into a caller-provided buffer. Attributes are appended in call order;
// integrity and fingerprint attributes must come last (in that order). Any overflow makes
// finish() fail; no call writes past the buffer.
class MessageBuilder {
 public:
  MessageBuilder(uint8_t *buf, size_t capacity);

  void start(uint16_t method, Class cls, const TransactionId &txid);
  void add_bytes(uint16_t type, const void *value, size_t len);
  void add_string(uint16_t type, std::string_view s) { add_bytes(type, s.data(), s.size()); }
  void add_u32(uint16_t type, uint32_t v);
  void add_u64(uint16_t type, uint64_t v);
  void add_flag(uint16_t type) { add_bytes(type, nullptr, 0); }
  void add_address(uint16_t type, const SocketAddress &a);
  void add_xor_address(uint16_t type, const SocketAddress &a);
  void add_error_code(int code, std::string_view reason);
  void add_unknown_attributes(const uint16_t *types, size_t count);
  void add_message_integrity(const uint8_t *key, size_t key_len);
  void add_message_integrity_sha256(const uint8_t *key, size_t key_len);
  void add_fingerprint();

  // Size the message has so far, and the size an attribute with an `value_len`-byte value
  // would add (header + padded value): for callers that budget a response.
  size_t size() const { return len_; }
  static size_t attribute_size(size_t value_len) { return 4 + ((value_len + 3) & ~size_t(3)); }

  // kOk with the total length in *len, or kErrBufferTooSmall if anything did not fit.
  int finish(size_t *len) const;

 private:
  uint8_t *reserve_attribute(uint16_t type, size_t value_len);
  void set_length(size_t body_len);
  uint8_t *buf_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

}  // namespace parley::stun

#endif

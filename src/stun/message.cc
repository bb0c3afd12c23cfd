#include "stun/message.h"

#include <sodium.h>

#include <cstring>

#include "base/error.h"
#include "crypto/backend.h"
#include "identity/secret.h"

namespace parley::stun {

namespace {

constexpr uint32_t kFingerprintXor = 0x5354554e;

uint16_t be16(const uint8_t *p) { return uint16_t((p[0] << 8) | p[1]); }
uint32_t be32(const uint8_t *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
void put16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t *p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

struct Crc32Table {
  uint32_t t[256];
  Crc32Table() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
  }
};
const Crc32Table kCrc;

// Comprehension-required attributes parley understands; any other type below 0x8000 earns a
// 420. RESPONSE-PORT is deliberately absent: parley never sends a response to another port
// than the request came from, so a request relying on it must get 420. PADDING is accepted
// and ignored (RFC 5780 lets a server answer without padding).
bool known_required(uint16_t type) {
  switch (type) {
    case kAttrMappedAddress:
    case kAttrChangeRequest:
    case kAttrUsername:
    case kAttrMessageIntegrity:
    case kAttrErrorCode:
    case kAttrUnknownAttributes:
    case kAttrRealm:
    case kAttrNonce:
    case kAttrMessageIntegritySha256:
    case kAttrXorMappedAddress:
    case kAttrPriority:
    case kAttrUseCandidate:
    case kAttrPadding:
      return true;
    default:
      return false;
  }
}

// HMAC over the message up to the integrity attribute at `attr_pos`, with the header's
// length field rewritten to end at that attribute (RFC 8489 14.5/14.6). `out` must hold the
// digest (20 bytes for SHA-1, 32 for SHA-256).
enum class Mac { kSha1, kSha256 };
int integrity_mac(Mac alg, const uint8_t *msg, size_t attr_pos, size_t attr_value_len,
                  const uint8_t *key, size_t key_len, uint8_t *out) {
  uint8_t header[kHeaderLen];
  std::memcpy(header, msg, kHeaderLen);
  put16(header + 2, uint16_t(attr_pos + 4 + attr_value_len - kHeaderLen));
  const uint8_t *body = msg + kHeaderLen;
  const size_t body_len = attr_pos - kHeaderLen;
  return alg == Mac::kSha1
             ? crypto::hmac_sha1(key, key_len, header, kHeaderLen, body, body_len, out)
             : crypto::hmac_sha256(key, key_len, header, kHeaderLen, body, body_len, out);
}

}  // namespace

uint32_t crc32(const uint8_t *data, size_t len) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) c = kCrc.t[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

TransactionId TransactionId::random() {
  TransactionId t;
  // randombytes_buf initialises its source itself; sodium_ready() is for the rest of libsodium.
  (void)identity::sodium_ready();
  randombytes_buf(t.bytes, sizeof t.bytes);
  return t;
}

bool TransactionId::operator==(const TransactionId &o) const {
  return std::memcmp(bytes, o.bytes, sizeof bytes) == 0;
}

bool looks_like_stun(const uint8_t *data, size_t len) {
  return len >= kHeaderLen && (data[0] & 0xC0) == 0 && be32(data + 4) == kMagicCookie &&
         (be16(data + 2) & 3) == 0 && size_t(be16(data + 2)) + kHeaderLen == len;
}

int Message::parse(const uint8_t *data, size_t len, Message *out) {
  if (len < kHeaderLen) {
    return fail(kErrStunMalformed, "STUN message of %zu bytes is shorter than its header", len);
  }
  if (len > kMaxMessageLen) {
    return fail(kErrStunMalformed, "STUN message of %zu bytes exceeds %zu", len, kMaxMessageLen);
  }
  if ((data[0] & 0xC0) != 0) return fail(kErrStunMalformed, "STUN type has top bits set");
  const uint16_t type = be16(data);
  const size_t body_len = be16(data + 2);
  if (body_len % 4 != 0 || body_len + kHeaderLen != len) {
    return fail(kErrStunMalformed, "STUN length field %zu does not match datagram of %zu",
                body_len, len);
  }
  if (be32(data + 4) != kMagicCookie) return fail(kErrStunMalformed, "STUN magic cookie missing");

  Message m;
  m.data_ = data;
  m.size_ = len;
  m.method_ = uint16_t(((type & 0x3E00) >> 2) | ((type & 0x00E0) >> 1) | (type & 0x000F));
  m.class_ = Class(((type & 0x0100) >> 7) | ((type & 0x0010) >> 4));
  std::memcpy(m.txid_.bytes, data + 8, 12);

  bool fingerprint_seen = false;
  size_t pos = kHeaderLen;
  while (pos < len) {
    if (len - pos < 4) return fail(kErrStunMalformed, "truncated STUN attribute header");
    const uint16_t atype = be16(data + pos);
    const size_t alen = be16(data + pos + 2);
    const size_t vpos = pos + 4;
    const size_t padded = (alen + 3) & ~size_t(3);
    if (padded > len - vpos) {
      return fail(kErrStunMalformed, "STUN attribute 0x%04x length %zu overruns the message",
                  atype, alen);
    }
    if (fingerprint_seen) return fail(kErrStunMalformed, "STUN attribute after FINGERPRINT");
    if (atype == kAttrFingerprint) {
      if (alen != 4) return fail(kErrStunMalformed, "FINGERPRINT of %zu bytes", alen);
      if ((crc32(data, pos) ^ kFingerprintXor) != be32(data + vpos)) {
        return fail(kErrStunFingerprint, "STUN FINGERPRINT does not match");
      }
      fingerprint_seen = true;
      if (m.attr_count_ < kMaxAttributes) {
        m.attrs_[m.attr_count_++] = {atype, uint16_t(alen), uint16_t(vpos)};
      }
    } else if (m.integrity_index_ >= 0 || m.integrity_sha256_index_ >= 0) {
      // After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 (and FINGERPRINT) count.
      if (atype == kAttrMessageIntegritySha256 && m.integrity_sha256_index_ < 0 &&
          m.integrity_index_ >= 0) {
        if (alen < 16 || alen > 32 || alen % 4 != 0) {
          return fail(kErrStunMalformed, "MESSAGE-INTEGRITY-SHA256 of %zu bytes", alen);
        }
        if (m.attr_count_ == kMaxAttributes) {
          return fail(kErrStunMalformed, "more than %zu STUN attributes", kMaxAttributes);
        }
        m.integrity_sha256_index_ = int(m.attr_count_);
        m.attrs_[m.attr_count_++] = {atype, uint16_t(alen), uint16_t(vpos)};
      }
    } else {
      if (atype == kAttrMessageIntegrity && alen != 20) {
        return fail(kErrStunMalformed, "MESSAGE-INTEGRITY of %zu bytes", alen);
      }
      if (atype == kAttrMessageIntegritySha256 && (alen < 16 || alen > 32 || alen % 4 != 0)) {
        return fail(kErrStunMalformed, "MESSAGE-INTEGRITY-SHA256 of %zu bytes", alen);
      }
      if (m.attr_count_ == kMaxAttributes) {
        return fail(kErrStunMalformed, "more than %zu STUN attributes", kMaxAttributes);
      }
      if (atype == kAttrMessageIntegrity) m.integrity_index_ = int(m.attr_count_);
      if (atype == kAttrMessageIntegritySha256) m.integrity_sha256_index_ = int(m.attr_count_);
      m.attrs_[m.attr_count_++] = {atype, uint16_t(alen), uint16_t(vpos)};
      if (atype < 0x8000 && !known_required(atype) &&
          m.unknown_count_ < kMaxUnknownAttributes) {
        m.unknown_[m.unknown_count_++] = atype;
      }
    }
    pos = vpos + padded;
  }
  *out = m;
  return kOk;
}

const Message::Attribute *Message::find(uint16_t type) const {
  for (size_t i = 0; i < attr_count_; ++i) {
    if (attrs_[i].type == type) return &attrs_[i];
  }
  return nullptr;
}

int Message::address(uint16_t type, SocketAddress *out) const {
  const Attribute *a = find(type);
  if (a == nullptr) return fail(kErrStunMalformed, "STUN attribute 0x%04x absent", type);
  const uint8_t *v = data_ + a->offset;
  const size_t ip_len = a->length == 8 ? 4 : a->length == 20 ? 16 : 0;
  if (ip_len == 0 || v[1] != (ip_len == 4 ? 1 : 2)) {
    return fail(kErrStunMalformed, "STUN address attribute 0x%04x is ill-formed", type);
  }
  return SocketAddress::from_ip_bytes(v + 4, ip_len, be16(v + 2), out) == kOk
             ? kOk
             : fail(kErrStunMalformed, "STUN address attribute 0x%04x is ill-formed", type);
}

int Message::xor_address(uint16_t type, SocketAddress *out) const {
  SocketAddress raw;
  const int r = address(type, &raw);
  if (r != kOk) return r;
  uint8_t mask[16];
  put32(mask, kMagicCookie);
  std::memcpy(mask + 4, txid_.bytes, 12);
  uint8_t ip[16];
  for (size_t i = 0; i < raw.ip_len(); ++i) ip[i] = raw.ip_bytes()[i] ^ mask[i];
  return SocketAddress::from_ip_bytes(ip, raw.ip_len(),
                                      uint16_t(raw.port() ^ (kMagicCookie >> 16)), out);
}

int Message::u32(uint16_t type, uint32_t *out) const {
  const Attribute *a = find(type);
  if (a == nullptr || a->length != 4) {
    return fail(kErrStunMalformed, "STUN attribute 0x%04x is absent or not 4 bytes", type);
  }
  *out = be32(data_ + a->offset);
  return kOk;
}

int Message::u64(uint16_t type, uint64_t *out) const {
  const Attribute *a = find(type);
  if (a == nullptr || a->length != 8) {
    return fail(kErrStunMalformed, "STUN attribute 0x%04x is absent or not 8 bytes", type);
  }
  *out = (uint64_t(be32(data_ + a->offset)) << 32) | be32(data_ + a->offset + 4);
  return kOk;
}

int Message::error_code(int *code, std::string_view *reason) const {
  const Attribute *a = find(kAttrErrorCode);
  if (a == nullptr || a->length < 4) return fail(kErrStunMalformed, "ERROR-CODE absent or short");
  const uint8_t *v = data_ + a->offset;
  const int cls = v[2] & 0x7, number = v[3];
  if (cls < 3 || cls > 6 || number > 99) {
    return fail(kErrStunMalformed, "ERROR-CODE %d%02d out of range", cls, number);
  }
  *code = cls * 100 + number;
  if (reason) *reason = std::string_view(reinterpret_cast<const char *>(v + 4), a->length - 4);
  return kOk;
}

int Message::check_integrity(const uint8_t *key, size_t key_len) const {
  uint8_t mac[32];
  if (integrity_sha256_index_ >= 0) {
    const Attribute &a = attrs_[integrity_sha256_index_];
    int r = integrity_mac(Mac::kSha256, data_, a.offset - 4u, a.length, key, key_len, mac);
    if (r != kOk) return r;
    if (sodium_memcmp(mac, data_ + a.offset, a.length) != 0) {
      return fail(kErrStunIntegrity, "MESSAGE-INTEGRITY-SHA256 does not verify");
    }
    return kOk;
  }
  if (integrity_index_ >= 0) {
    const Attribute &a = attrs_[integrity_index_];
    int r = integrity_mac(Mac::kSha1, data_, a.offset - 4u, 20, key, key_len, mac);
    if (r != kOk) return r;
    if (sodium_memcmp(mac, data_ + a.offset, 20) != 0) {
      return fail(kErrStunIntegrity, "MESSAGE-INTEGRITY does not verify");
    }
    return kOk;
  }
  return fail(kErrStunIntegrity, "STUN message carries no MESSAGE-INTEGRITY");
}

MessageBuilder::MessageBuilder(uint8_t *buf, size_t capacity) : buf_(buf), cap_(capacity) {}

void MessageBuilder::start(uint16_t method, Class cls, const TransactionId &txid) {
  overflow_ = cap_ < kHeaderLen;
  len_ = 0;
  if (overflow_) return;
  const uint16_t type = uint16_t(((method & 0x0F80) << 2) | ((method & 0x0070) << 1) |
                                 (method & 0x000F) | ((cls & 2) << 7) | ((cls & 1) << 4));
  put16(buf_, type);
  put16(buf_ + 2, 0);
  put32(buf_ + 4, kMagicCookie);
  std::memcpy(buf_ + 8, txid.bytes, 12);
  len_ = kHeaderLen;
}

void MessageBuilder::set_length(size_t body_len) { put16(buf_ + 2, uint16_t(body_len)); }

uint8_t *MessageBuilder::reserve_attribute(uint16_t type, size_t value_len) {
  const size_t need = attribute_size(value_len);
  if (overflow_ || value_len > 0xFFFF || need > cap_ - len_) {
    overflow_ = true;
    return nullptr;
  }
  uint8_t *p = buf_ + len_;
  put16(p, type);
  put16(p + 2, uint16_t(value_len));
  std::memset(p + 4 + value_len, 0, need - 4 - value_len);  // padding
  len_ += need;
  set_length(len_ - kHeaderLen);
  return p + 4;
}

void MessageBuilder::add_bytes(uint16_t type, const void *value, size_t len) {
  uint8_t *v = reserve_attribute(type, len);
  if (v != nullptr && len > 0) std::memcpy(v, value, len);
}

void MessageBuilder::add_u32(uint16_t type, uint32_t value) {
  if (uint8_t *v = reserve_attribute(type, 4)) put32(v, value);
}

void MessageBuilder::add_u64(uint16_t type, uint64_t value) {
  if (uint8_t *v = reserve_attribute(type, 8)) {
    put32(v, uint32_t(value >> 32));
    put32(v + 4, uint32_t(value));
  }
}

void MessageBuilder::add_address(uint16_t type, const SocketAddress &a) {
  const size_t ip_len = a.ip_len();
  if (ip_len == 0) {
    overflow_ = true;  // nothing sensible to encode; fail finish()
    return;
  }
  if (uint8_t *v = reserve_attribute(type, 4 + ip_len)) {
    v[0] = 0;
    v[1] = ip_len == 4 ? 1 : 2;
    put16(v + 2, a.port());
    std::memcpy(v + 4, a.ip_bytes(), ip_len);
  }
}

void MessageBuilder::add_xor_address(uint16_t type, const SocketAddress &a) {
  const size_t start = len_;
  add_address(type, a);
  if (overflow_ || len_ == start) return;
  uint8_t *v = buf_ + start + 4;
  uint8_t mask[16];
  put32(mask, kMagicCookie);
  std::memcpy(mask + 4, buf_ + 8, 12);
  put16(v + 2, uint16_t(a.port() ^ (kMagicCookie >> 16)));
  for (size_t i = 0; i < a.ip_len(); ++i) v[4 + i] ^= mask[i];
}

void MessageBuilder::add_error_code(int code, std::string_view reason) {
  if (reason.size() > 763) reason = reason.substr(0, 763);  // RFC 8489 14.8
  if (uint8_t *v = reserve_attribute(kAttrErrorCode, 4 + reason.size())) {
    v[0] = 0;
    v[1] = 0;
    v[2] = uint8_t(code / 100);
    v[3] = uint8_t(code % 100);
    std::memcpy(v + 4, reason.data(), reason.size());
  }
}

void MessageBuilder::add_unknown_attributes(const uint16_t *types, size_t count) {
  if (uint8_t *v = reserve_attribute(kAttrUnknownAttributes, 2 * count)) {
    for (size_t i = 0; i < count; ++i) put16(v + 2 * i, types[i]);
  }
}

void MessageBuilder::add_message_integrity(const uint8_t *key, size_t key_len) {
  const size_t pos = len_;
  if (uint8_t *v = reserve_attribute(kAttrMessageIntegrity, 20)) {
    uint8_t mac[32];
    if (integrity_mac(Mac::kSha1, buf_, pos, 20, key, key_len, mac) != kOk) {
      overflow_ = true;
      return;
    }
    std::memcpy(v, mac, 20);
  }
}

void MessageBuilder::add_message_integrity_sha256(const uint8_t *key, size_t key_len) {
  const size_t pos = len_;
  if (uint8_t *v = reserve_attribute(kAttrMessageIntegritySha256, 32)) {
    if (integrity_mac(Mac::kSha256, buf_, pos, 32, key, key_len, v) != kOk) {
      overflow_ = true;
    }
  }
}

void MessageBuilder::add_fingerprint() {
  const size_t pos = len_;
  if (uint8_t *v = reserve_attribute(kAttrFingerprint, 4)) {
    put32(v, crc32(buf_, pos) ^ kFingerprintXor);
  }
}

int MessageBuilder::finish(size_t *len) const {
  if (overflow_) return fail(kErrBufferTooSmall, "STUN message does not fit %zu bytes", cap_);
  *len = len_;
  return kOk;
}

}  // namespace parley::stun

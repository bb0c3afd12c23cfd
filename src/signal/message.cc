#include "signal/message.h"

#include <sodium.h>

#include <cstring>

#include "base/error.h"
#include "identity/secret.h"

namespace parley::signal {

namespace {

bool ice_chars(const std::string &s, size_t min, size_t max) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool utf8(const std::string &s) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

bool has_scope(const Message &m) { return m.call_id.has_value() || m.room_id.has_value(); }

// The rules both directions enforce. Returns nullptr if `m` is valid, else what is wrong.
const char *problem(const Message &m) {
  if (!m.ice_ufrag.empty() && !ice_chars(m.ice_ufrag, 4, 32)) return "ICE ufrag: 4-32 ice-chars";
  if (!m.ice_pwd.empty() && !ice_chars(m.ice_pwd, 22, 64)) return "ICE pwd: 22-64 ice-chars";
  if (m.candidates.size() > kMaxCandidates) return "too many candidates";
  if (m.codecs.size() > kMaxCodecs) return "too many codecs";
  if (m.participants.size() > kMaxParticipants) return "too many participants";
  if (m.members.size() > kMaxParticipants) return "too many members";
  if (m.text.size() > kMaxText) return "text too long";
  if (m.software.size() > 64) return "software too long";
  if (!utf8(m.text) || !utf8(m.software)) return "text must be UTF-8";
  if (m.path && *m.path != PathKind::kRelay && *m.path != PathKind::kDirect) return "bad path";
  for (const auto &c : m.candidates) {
    ice::Candidate check;
    if (ice::Candidate::parse(c.to_string(), &check) != kOk) return "invalid candidate";
  }
  const bool call = m.call_id && m.from && m.to;
  switch (m.type) {
    case Type::kRegister:
      return nullptr;
    case Type::kRegisterAck:
      return m.observed_address.is_set() ? nullptr : "register-ack needs the observed address";
    case Type::kCallInvite:
    case Type::kCallAccept:
      if (!call) return "call id, from and to are required";
      if (m.ice_ufrag.empty() || m.ice_pwd.empty()) return "ICE credentials are required";
      if (!m.media_key) return "the signed media key is required";
      if (!m.identity_key) return "the identity key is required";
      if (m.codecs.empty()) return "at least one codec is required";
      return nullptr;
    case Type::kCallRinging:
    case Type::kCallReject:
    case Type::kCallHangup:
      return call ? nullptr : "call id, from and to are required";
    case Type::kCandidate:
      return m.call_id && !m.candidates.empty() ? nullptr : "call id and a candidate required";
    case Type::kEndOfCandidates:
      return m.call_id ? nullptr : "call id required";
    case Type::kPathSwitchPropose:
    case Type::kPathSwitchAck:
      return m.call_id && m.sequence && m.path ? nullptr : "call id, sequence and path required";
    case Type::kQualityReport:
      return has_scope(m) && m.loss_permille && m.rtt_ms && m.jitter_ms
                 ? nullptr
                 : "call or room id, loss, rtt and jitter required";
    case Type::kQualityDirective:
      return has_scope(m) && m.profile ? nullptr : "call or room id and profile required";
    case Type::kUpgradePropose:
    case Type::kUpgradeConfirm:
      return has_scope(m) && m.sequence && m.profile && m.media_timestamp
                 ? nullptr
                 : "call or room id, sequence, profile and media timestamp required";
    case Type::kUpgradeAck:
      return has_scope(m) && m.sequence ? nullptr : "call or room id and sequence required";
    case Type::kRoomJoin:
    case Type::kRoomLeave:
    case Type::kRoomUpdate:
      return m.room_id ? nullptr : "room id required";
    case Type::kError:
      return m.error_code ? nullptr : "error code required";
    case Type::kIceRestart:
      return m.call_id && m.sequence && !m.ice_ufrag.empty() && !m.ice_pwd.empty()
                 ? nullptr
                 : "call id, generation (sequence), ICE ufrag and password required";
    case Type::kCallResume:
      if (!call || !m.stream_id) return "call id, from, to and stream id are required";
      return m.media_key && m.identity_key ? nullptr
                                           : "the peer's signed media key and identity key are required";
  }
  return "unknown type";
}

class Writer {
 public:
  explicit Writer(std::vector<uint8_t> *out) : out_(out) {}
  void u8(uint8_t v) { out_->push_back(v); }
  void u16(uint16_t v) {
    u8(uint8_t(v >> 8));
    u8(uint8_t(v));
  }
  void u32(uint32_t v) {
    u16(uint16_t(v >> 16));
    u16(uint16_t(v));
  }
  void u64(uint64_t v) {
    u32(uint32_t(v >> 32));
    u32(uint32_t(v));
  }
  void bytes(const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    out_->insert(out_->end(), b, b + n);
  }
  void field(Field id, const void *p, size_t n) {
    u16(uint16_t(id));
    u16(uint16_t(n));
    bytes(p, n);
  }
  template <typename T>
  void field_int(Field id, T v) {
    uint8_t buf[8];
    for (size_t i = 0; i < sizeof(T); ++i) buf[i] = uint8_t(uint64_t(v) >> (8 * (sizeof(T) - 1 - i)));
    field(id, buf, sizeof(T));
  }

 private:
  std::vector<uint8_t> *out_;
};

uint64_t read_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

int malformed(const char *why, unsigned field = 0) {
  if (field) return fail(kErrSignalMalformed, "signaling field %u: %s", field, why);
  return fail(kErrSignalMalformed, "signaling message: %s", why);
}

}  // namespace

const char *type_name(Type t) {
  static const char *const kNames[] = {
      "?", "register", "register-ack", "call-invite", "call-ringing", "call-accept",
      "call-reject", "call-hangup", "candidate", "end-of-candidates", "path-switch-propose",
      "path-switch-ack", "quality-report", "quality-directive", "upgrade-propose",
      "upgrade-ack", "upgrade-confirm", "room-join", "room-leave", "room-update", "error", "call-resume",
      "ice-restart"};
  const size_t i = size_t(t);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "?";
}

Id16 Id16::random() {
  Id16 id;
  if (identity::sodium_ready() == kOk) randombytes_buf(id.bytes, sizeof id.bytes);
  return id;
}

bool Id16::operator==(const Id16 &o) const { return std::memcmp(bytes, o.bytes, 16) == 0; }
bool Id16::operator<(const Id16 &o) const { return std::memcmp(bytes, o.bytes, 16) < 0; }

bool SignedKey::operator==(const SignedKey &o) const {
  return std::memcmp(public_key, o.public_key, 32) == 0 && issued_at_ms == o.issued_at_ms &&
         std::memcmp(signature, o.signature, 64) == 0;
}

bool Message::operator==(const Message &o) const {
  return type == o.type && call_id == o.call_id && room_id == o.room_id && from == o.from &&
         to == o.to && ice_ufrag == o.ice_ufrag && ice_pwd == o.ice_pwd &&
         candidates == o.candidates && media_key == o.media_key && codecs == o.codecs &&
         observed_address == o.observed_address && error_code == o.error_code &&
         text == o.text && participants == o.participants && stream_id == o.stream_id &&
         profile == o.profile && media_timestamp == o.media_timestamp &&
         sequence == o.sequence && path == o.path && loss_permille == o.loss_permille &&
         rtt_ms == o.rtt_ms && jitter_ms == o.jitter_ms && queue_ms == o.queue_ms && nat == o.nat &&
         software == o.software &&
         members == o.members && identity_key == o.identity_key;
}

int encode(const Message &m, std::vector<uint8_t> *out) {
  if (const char *why = problem(m)) {
    return fail(kErrInvalidArgument, "cannot encode %s: %s", type_name(m.type), why);
  }
  out->clear();
  Writer w(out);
  w.u8(kVersion);
  w.u8(uint8_t(m.type));
  w.u16(0);
  w.u32(0);  // body length, patched below
  if (m.call_id) w.field(Field::kCallId, m.call_id->bytes, 16);
  if (m.room_id) w.field(Field::kRoomId, m.room_id->bytes, 16);
  if (m.from) w.field(Field::kFrom, m.from->bytes, 32);
  if (m.to) w.field(Field::kTo, m.to->bytes, 32);
  if (!m.ice_ufrag.empty()) w.field(Field::kIceUfrag, m.ice_ufrag.data(), m.ice_ufrag.size());
  if (!m.ice_pwd.empty()) w.field(Field::kIcePwd, m.ice_pwd.data(), m.ice_pwd.size());
  for (const auto &c : m.candidates) {
    const std::string s = c.to_string();
    w.field(Field::kCandidate, s.data(), s.size());
  }
  if (m.media_key) {
    uint8_t k[kSignedKeySize];
    std::memcpy(k, m.media_key->public_key, 32);
    for (int i = 0; i < 8; ++i) k[32 + i] = uint8_t(m.media_key->issued_at_ms >> (56 - 8 * i));
    std::memcpy(k + 40, m.media_key->signature, 64);
    w.field(Field::kMediaKey, k, sizeof k);
  }
  if (!m.codecs.empty()) {
    std::vector<uint8_t> c;
    for (uint16_t id : m.codecs) {
      c.push_back(uint8_t(id >> 8));
      c.push_back(uint8_t(id));
    }
    w.field(Field::kCodecs, c.data(), c.size());
  }
  if (m.observed_address.is_set()) {
    uint8_t a[19];
    a[0] = m.observed_address.is_v4() ? 4 : 6;
    a[1] = uint8_t(m.observed_address.port() >> 8);
    a[2] = uint8_t(m.observed_address.port());
    std::memcpy(a + 3, m.observed_address.ip_bytes(), m.observed_address.ip_len());
    w.field(Field::kObservedAddress, a, 3 + m.observed_address.ip_len());
  }
  if (m.error_code) w.field_int(Field::kErrorCode, uint32_t(*m.error_code));
  if (!m.text.empty()) w.field(Field::kText, m.text.data(), m.text.size());
  for (const auto &p : m.participants) w.field(Field::kParticipant, p.bytes, 32);
  if (m.stream_id) w.field_int(Field::kStreamId, *m.stream_id);
  if (m.profile) w.field_int(Field::kProfile, *m.profile);
  if (m.media_timestamp) w.field_int(Field::kMediaTimestamp, *m.media_timestamp);
  if (m.sequence) w.field_int(Field::kSequence, *m.sequence);
  if (m.path) w.field_int(Field::kPath, uint8_t(*m.path));
  if (m.loss_permille) w.field_int(Field::kLossPermille, *m.loss_permille);
  if (m.rtt_ms) w.field_int(Field::kRttMs, *m.rtt_ms);
  if (m.jitter_ms) w.field_int(Field::kJitterMs, *m.jitter_ms);
  if (m.queue_ms) w.field_int(Field::kQueueMs, *m.queue_ms);
  if (m.nat) {
    const uint8_t b[2] = {m.nat->mapping, m.nat->allocation};
    w.field(Field::kNat, b, sizeof b);
  }
  if (!m.software.empty()) w.field(Field::kSoftware, m.software.data(), m.software.size());
  if (m.identity_key) w.field(Field::kIdentityKey, m.identity_key->data(), m.identity_key->size());
  for (const auto &mb : m.members) {
    uint8_t b[36];
    std::memcpy(b, mb.fingerprint.bytes, 32);
    for (int i = 0; i < 4; ++i) b[32 + i] = uint8_t(mb.stream_id >> (24 - 8 * i));
    w.field(Field::kMember, b, sizeof b);
  }
  if (out->size() > kMaxMessageSize) {
    return fail(kErrInvalidArgument, "%s of %zu bytes exceeds %zu", type_name(m.type),
                out->size(), kMaxMessageSize);
  }
  const uint32_t body = uint32_t(out->size() - kHeaderSize);
  (*out)[4] = uint8_t(body >> 24);
  (*out)[5] = uint8_t(body >> 16);
  (*out)[6] = uint8_t(body >> 8);
  (*out)[7] = uint8_t(body);
  return kOk;
}

std::optional<NatInfo> nat_info(const ice::NatBehavior &b) {
  if (b.mapping == ice::NatMapping::kUnknown) return std::nullopt;
  return NatInfo{uint8_t(b.mapping), uint8_t(b.allocation)};
}

int decode(const uint8_t *data, size_t len, Message *out) {
  if (len < kHeaderSize) return malformed("shorter than its header");
  if (len > kMaxMessageSize) return malformed("larger than the maximum message size");
  if (data[0] != kVersion) {
    return fail(kErrSignalVersion, "signaling version %u, this library speaks %u", data[0],
                kVersion);
  }
  if (read_be(data + 4, 4) != len - kHeaderSize) return malformed("body length mismatch");
  const uint8_t type = data[1];
  if (type < uint8_t(Type::kRegister) || type > uint8_t(kLastType)) {
    return fail(kErrSignalUnknownType, "unknown signaling message type %u", type);
  }
  Message m;
  m.type = Type(type);
  uint64_t seen = 0;  // singular fields already present (bit per field id < 64)
  size_t pos = kHeaderSize;
  while (pos < len) {
    if (len - pos < 4) return malformed("truncated field header");
    const unsigned id = unsigned(read_be(data + pos, 2));
    const size_t n = size_t(read_be(data + pos + 2, 2));
    pos += 4;
    if (n > len - pos) return malformed("field overruns the message", id);
    const uint8_t *v = data + pos;
    pos += n;
    const bool repeated = id == unsigned(Field::kCandidate) ||
                          id == unsigned(Field::kParticipant) || id == unsigned(Field::kMember);
    const bool known = id >= unsigned(Field::kCallId) && id <= unsigned(kLastField);
    if (known && !repeated) {  // unknown fields, repeated or not, are simply skipped
      if (seen & (uint64_t(1) << id)) return malformed("appears twice", id);
      seen |= uint64_t(1) << id;
    }
    auto need = [&](size_t want) { return n == want; };
    switch (Field(id)) {
      case Field::kCallId:
      case Field::kRoomId: {
        if (!need(16)) return malformed("must be 16 bytes", id);
        Id16 x;
        std::memcpy(x.bytes, v, 16);
        (Field(id) == Field::kCallId ? m.call_id : m.room_id) = x;
        break;
      }
      case Field::kFrom:
      case Field::kTo:
      case Field::kParticipant: {
        if (!need(32)) return malformed("a fingerprint is 32 bytes", id);
        identity::Fingerprint fp;
        std::memcpy(fp.bytes, v, 32);
        if (Field(id) == Field::kFrom) m.from = fp;
        else if (Field(id) == Field::kTo) m.to = fp;
        else if (m.participants.size() == kMaxParticipants) return malformed("too many", id);
        else m.participants.push_back(fp);
        break;
      }
      case Field::kIceUfrag:
        m.ice_ufrag.assign(reinterpret_cast<const char *>(v), n);
        break;
      case Field::kIcePwd:
        m.ice_pwd.assign(reinterpret_cast<const char *>(v), n);
        break;
      case Field::kCandidate: {
        if (m.candidates.size() == kMaxCandidates) return malformed("too many candidates", id);
        ice::Candidate c;
        if (ice::Candidate::parse(std::string_view(reinterpret_cast<const char *>(v), n), &c) !=
            kOk) {
          return malformed("invalid candidate", id);
        }
        m.candidates.push_back(c);
        break;
      }
      case Field::kMediaKey: {
        if (!need(kSignedKeySize)) return malformed("a signed key is 104 bytes", id);
        SignedKey k;
        std::memcpy(k.public_key, v, 32);
        k.issued_at_ms = read_be(v + 32, 8);
        std::memcpy(k.signature, v + 40, 64);
        m.media_key = k;
        break;
      }
      case Field::kCodecs:
        if (n == 0 || n % 2 != 0 || n / 2 > kMaxCodecs) return malformed("bad codec list", id);
        for (size_t i = 0; i < n; i += 2) m.codecs.push_back(uint16_t(read_be(v + i, 2)));
        break;
      case Field::kObservedAddress: {
        const size_t ip = n >= 1 && v[0] == 4 ? 4 : n >= 1 && v[0] == 6 ? 16 : 0;
        if (ip == 0 || n != 3 + ip ||
            SocketAddress::from_ip_bytes(v + 3, ip, uint16_t(read_be(v + 1, 2)),
                                         &m.observed_address) != kOk) {
          return malformed("bad address", id);
        }
        break;
      }
      case Field::kErrorCode:
        if (!need(4)) return malformed("must be 4 bytes", id);
        m.error_code = int32_t(uint32_t(read_be(v, 4)));
        break;
      case Field::kText:
        m.text.assign(reinterpret_cast<const char *>(v), n);
        break;
      case Field::kStreamId:
        if (!need(4)) return malformed("must be 4 bytes", id);
        m.stream_id = uint32_t(read_be(v, 4));
        break;
      case Field::kProfile:
        if (!need(1)) return malformed("must be 1 byte", id);
        m.profile = v[0];
        break;
      case Field::kMediaTimestamp:
        if (!need(4)) return malformed("must be 4 bytes", id);
        m.media_timestamp = uint32_t(read_be(v, 4));
        break;
      case Field::kSequence:
        if (!need(8)) return malformed("must be 8 bytes", id);
        m.sequence = read_be(v, 8);
        break;
      case Field::kPath:
        if (!need(1) || v[0] > 1) return malformed("must be 0 (relay) or 1 (direct)", id);
        m.path = PathKind(v[0]);
        break;
      case Field::kLossPermille:
        if (!need(2)) return malformed("must be 2 bytes", id);
        m.loss_permille = uint16_t(read_be(v, 2));
        break;
      case Field::kRttMs:
      case Field::kJitterMs:
      case Field::kQueueMs:
        if (!need(4)) return malformed("must be 4 bytes", id);
        (Field(id) == Field::kRttMs     ? m.rtt_ms
         : Field(id) == Field::kJitterMs ? m.jitter_ms
                                         : m.queue_ms) = uint32_t(read_be(v, 4));
        break;
      case Field::kNat:
        if (!need(2)) return malformed("must be 2 bytes", id);
        m.nat = NatInfo{v[0], v[1]};
        break;
      case Field::kSoftware:
        m.software.assign(reinterpret_cast<const char *>(v), n);
        break;
      case Field::kIdentityKey: {
        if (!need(identity::kPublicKeyLen)) return malformed("an identity key is 32 bytes", id);
        m.identity_key.emplace();
        std::memcpy(m.identity_key->data(), v, n);
        break;
      }
      case Field::kMember: {
        if (!need(36)) return malformed("a member is 36 bytes", id);
        if (m.members.size() == kMaxParticipants) return malformed("too many", id);
        Member mb;
        std::memcpy(mb.fingerprint.bytes, v, 32);
        mb.stream_id = uint32_t(read_be(v + 32, 4));
        m.members.push_back(mb);
        break;
      }
      default:
        break;  // a field of a later version: skipped
    }
  }
  if (const char *why = problem(m)) return malformed(why);
  *out = std::move(m);
  return kOk;
}

}  // namespace parley::signal

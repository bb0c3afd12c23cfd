// Signaling messages and their versioned binary codec (docs/protocol.md has every byte).
//
//   header: version u8 (=1) | type u8 | flags u16 (0; ignored) | body length u32
//   body:   fields, each  id u16 | length u16 | value
//
// All integers big-endian. Unknown field ids are skipped (so later versions can add fields);
// unknown types are an error the relay answers with an Error message. Every field has a fixed
// or bounded size, repeated fields a bounded count, and a whole message at most
// kMaxMessageSize bytes. Type and field numbers are append-only.
#ifndef PARLEY_SIGNAL_MESSAGE_H
#define PARLEY_SIGNAL_MESSAGE_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/address.h"
#include "ice/candidate.h"
#include "ice/nat_behavior.h"
#include "identity/fingerprint.h"

namespace parley::signal {

constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 8;
constexpr size_t kMaxMessageSize = 64 * 1024;
constexpr size_t kMaxCandidates = 32;
constexpr size_t kMaxCodecs = 16;
constexpr size_t kMaxParticipants = 64;
constexpr size_t kMaxText = 512;
// A media key field: X25519 public key (32) | issued at (u64) | Ed25519 signature (64).
constexpr size_t kSignedKeySize = 104;

// Application error codes the relay closes a client's QUIC connection with (docs/protocol.md).
constexpr uint64_t kCloseShuttingDown = 1;  // reconnect later
constexpr uint64_t kCloseReplaced = 2;      // the same identity registered from elsewhere

enum class Type : uint8_t {
  kRegister = 1,
  kRegisterAck = 2,
  kCallInvite = 3,
  kCallRinging = 4,
  kCallAccept = 5,
  kCallReject = 6,
  kCallHangup = 7,
  kCandidate = 8,
  kEndOfCandidates = 9,
  kPathSwitchPropose = 10,
  kPathSwitchAck = 11,
  kQualityReport = 12,
  kQualityDirective = 13,
  kUpgradePropose = 14,
  kUpgradeAck = 15,
  kUpgradeConfirm = 16,
  kRoomJoin = 17,
  kRoomLeave = 18,
  kRoomUpdate = 19,
  kError = 20,
  // A party re-announces an active call to a relay that may have lost it (restarted, or the
  // party's connection timed out): call id, from, to, stream id, and the peer's signed media
  // key with the peer's identity key, the proof that the peer agreed to this call with us.
  kCallResume = 21,
  // An ICE restart of an active call (RFC 8445 9): `sequence` is the generation, with the
  // sender's new ufrag and password and its candidates of that generation. Sent by the side
  // that restarts, and by the other side as its answer, with the same generation.
  kIceRestart = 22,
};
constexpr Type kLastType = Type::kIceRestart;
const char *type_name(Type t);

enum class Field : uint16_t {
  kCallId = 1,           // 16 bytes
  kFrom = 2,             // 32-byte fingerprint
  kTo = 3,               // 32-byte fingerprint
  kIceUfrag = 4,         // 4..32 ice-chars
  kIcePwd = 5,           // 22..64 ice-chars
  kCandidate = 6,        // candidate string (ice/candidate.h), repeated
  kMediaKey = 7,         // X25519 public key (32) || Ed25519 signature (64)
  kCodecs = 8,           // u16 codec ids
  kObservedAddress = 9,  // family u8 (4|6) | port u16 | ip (4|16)
  kErrorCode = 10,       // i32 (a PARLEY_ERR_* value)
  kText = 11,            // UTF-8, at most kMaxText bytes
  kRoomId = 12,          // 16 bytes
  kParticipant = 13,     // 32-byte fingerprint, repeated
  kStreamId = 14,        // u32
  kProfile = 15,         // u8 quality profile id
  kMediaTimestamp = 16,  // u32, 48 kHz units
  kSequence = 17,        // u64 proposal number
  kPath = 18,            // u8: 0 relay, 1 direct
  kLossPermille = 19,    // u16
  kRttMs = 20,           // u32
  kJitterMs = 21,        // u32
  kSoftware = 22,        // at most 64 bytes
  kMember = 23,          // 32-byte fingerprint || u32 media stream id, repeated
  kIdentityKey = 24,     // 32-byte Ed25519 public key of the sender (fingerprint = its SHA-256)
  kQueueMs = 25,         // u32: smoothed RTT minus minimum RTT of the sender's media path
  kNat = 26,             // u8 mapping | u8 port allocation (ice/nat_behavior.h), of IPv4
};
constexpr Field kLastField = Field::kNat;

// What the sender learned of its IPv4 NAT (ice::NatMapping, ice::PortAllocation values; a
// receiver treats values it does not know as unknown).
struct NatInfo {
  uint8_t mapping = 0, allocation = 0;
  bool operator==(const NatInfo &o) const {
    return mapping == o.mapping && allocation == o.allocation;
  }
};
// The field for a classified NAT; none while its mapping is unknown.
std::optional<NatInfo> nat_info(const ice::NatBehavior &b);

struct Id16 {
  uint8_t bytes[16] = {};
  static Id16 random();
  bool operator==(const Id16 &o) const;
  bool operator!=(const Id16 &o) const { return !(*this == o); }
  bool operator<(const Id16 &o) const;  // byte order: a map key without copying
};
using CallId = Id16;
using RoomId = Id16;

struct SignedKey {
  uint8_t public_key[32] = {};
  uint64_t issued_at_ms = 0;  // the signer's wall clock, ms since the Unix epoch
  uint8_t signature[64] = {};
  bool operator==(const SignedKey &o) const;
};

// A room member and the media stream id its frames carry (so receivers know who speaks).
struct Member {
  identity::Fingerprint fingerprint;
  uint32_t stream_id = 0;
  bool operator==(const Member &o) const {
    return fingerprint == o.fingerprint && stream_id == o.stream_id;
  }
};

enum class PathKind : uint8_t { kRelay = 0, kDirect = 1 };

// One message; which fields are required depends on the type (docs/protocol.md).
struct Message {
  Type type = Type::kError;
  std::optional<CallId> call_id;
  std::optional<RoomId> room_id;
  std::optional<identity::Fingerprint> from, to;
  std::string ice_ufrag, ice_pwd;
  std::vector<ice::Candidate> candidates;
  std::optional<SignedKey> media_key;
  std::vector<uint16_t> codecs;
  SocketAddress observed_address;
  std::optional<int32_t> error_code;
  std::string text;
  std::vector<identity::Fingerprint> participants;
  std::optional<uint32_t> stream_id;
  std::optional<uint8_t> profile;
  std::optional<uint32_t> media_timestamp;
  std::optional<uint64_t> sequence;
  std::optional<PathKind> path;
  std::optional<uint16_t> loss_permille;
  std::optional<uint32_t> rtt_ms, jitter_ms, queue_ms;
  std::string software;
  std::vector<Member> members;  // at most kMaxParticipants
  std::optional<std::array<uint8_t, identity::kPublicKeyLen>> identity_key;
  std::optional<NatInfo> nat;

  bool operator==(const Message &o) const;
};

// Encodes `m` (replacing `out`'s contents). kOk, or kErrInvalidArgument if a required field
// is missing or a value is out of its bounds (the same rules the decoder enforces).
int encode(const Message &m, std::vector<uint8_t> *out);

// Decodes one message of exactly `len` bytes. kOk, kErrSignalVersion, kErrSignalUnknownType
// (the header is otherwise valid: `out->type` is untouched), or kErrSignalMalformed.
int decode(const uint8_t *data, size_t len, Message *out);

}  // namespace parley::signal

#endif

// The error codes: the one table that the internal enum (base/error.h), the descriptions
// (parley_strerror), the names (parley_error_name) and the public header's static_asserts
// (capi/error.cc) are generated from. tests/integration/api_tables.py checks the public
// header and the bindings' tables against it. Append-only: a number is never reused.
//
// X(PUBLIC_NAME, CamelName, number, "description"): PARLEY_ERR_<PUBLIC_NAME> in parley.h,
// parley::kErr<CamelName> inside. Success (0, PARLEY_OK, kOk) is not an error, so not here.
#ifndef PARLEY_BASE_ERROR_TABLE_H
#define PARLEY_BASE_ERROR_TABLE_H

// One line per code (tests/integration/api_tables.py reads them so), whatever the width:
// clang-format off
#define PARLEY_ERROR_TABLE(X) \
  X(INVALID_ARGUMENT, InvalidArgument, -1, "invalid argument") \
  X(NO_MEMORY, NoMemory, -2, "out of memory") \
  X(INTERNAL, Internal, -3, "internal error") \
  X(BUFFER_TOO_SMALL, BufferTooSmall, -4, "buffer too small") \
  X(IO, Io, -5, "I/O error") \
  X(SEED_FILE_NOT_FOUND, SeedFileNotFound, -6, "seed file not found") \
  X(SEED_FILE_INVALID, SeedFileInvalid, -7, "seed file invalid") \
  X(SEED_FILE_PERMISSIONS, SeedFilePermissions, -8, "seed file permissions too open") \
  X(SEED_FILE_EXISTS, SeedFileExists, -9, "seed file already exists") \
  X(CERT_MALFORMED, CertMalformed, -10, "certificate malformed") \
  X(CERT_KEY_TYPE, CertKeyType, -11, "certificate key is not Ed25519") \
  X(FINGERPRINT_INVALID, FingerprintInvalid, -12, "fingerprint invalid") \
  X(CRYPTO, Crypto, -13, "cryptographic operation failed") \
  X(CLOSED, Closed, -14, "closed") \
  X(STUN_MALFORMED, StunMalformed, -15, "malformed STUN message") \
  X(STUN_UNKNOWN_ATTRIBUTE, StunUnknownAttribute, -16, "unknown comprehension-required STUN attribute") \
  X(STUN_INTEGRITY, StunIntegrity, -17, "STUN message integrity check failed") \
  X(STUN_FINGERPRINT, StunFingerprint, -18, "STUN fingerprint mismatch") \
  X(TIMEOUT, Timeout, -19, "timed out") \
  X(ADDRESS_INVALID, AddressInvalid, -20, "invalid address") \
  X(CANDIDATE_INVALID, CandidateInvalid, -21, "invalid ICE candidate") \
  X(SOCKET, Socket, -22, "socket error") \
  X(PEER_IDENTITY, PeerIdentity, -23, "peer identity mismatch") \
  X(TRANSPORT, Transport, -24, "transport error") \
  X(MESSAGE_TOO_LARGE, MessageTooLarge, -25, "message too large") \
  X(QUEUE_FULL, QueueFull, -26, "queue full") \
  X(SIGNAL_MALFORMED, SignalMalformed, -27, "malformed signaling message") \
  X(SIGNAL_UNKNOWN_TYPE, SignalUnknownType, -28, "unknown signaling message type") \
  X(SIGNAL_VERSION, SignalVersion, -29, "unsupported signaling protocol version") \
  X(MEDIA_MALFORMED, MediaMalformed, -30, "malformed media frame") \
  X(PEER_UNAVAILABLE, PeerUnavailable, -31, "peer not registered with the relay") \
  X(CALL_NOT_FOUND, CallNotFound, -32, "no such call") \
  X(RATE_LIMITED, RateLimited, -33, "rate limit exceeded") \
  X(LIMIT_REACHED, LimitReached, -34, "limit reached") \
  X(CALL_REJECTED, CallRejected, -35, "call rejected") \
  X(NOT_REGISTERED, NotRegistered, -36, "not registered with the relay") \
  X(MEDIA_AUTH, MediaAuth, -37, "media frame failed authentication") \
  X(MEDIA_REPLAY, MediaReplay, -38, "media frame replayed or too old") \
  X(MEDIA_KEY, MediaKey, -39, "peer media key missing or not signed by the peer") \
  X(ICE_FAILED, IceFailed, -40, "no direct path") \
  X(CODEC, Codec, -41, "audio codec error") \
  X(AUDIO_FORMAT, AudioFormat, -42, "unsupported audio format") \
  X(WRONG_THREAD, WrongThread, -43, "not allowed on this thread") \
  X(INVALID_HANDLE, InvalidHandle, -44, "not a live handle (freed, or never created)") \
  X(CALL_ENDED, CallEnded, -45, "the call has ended") \
  X(NO_PATH, NoPath, -46, "no path to the peer for too long") \
  X(NAME_NOT_FOUND, NameNotFound, -47, "the name does not resolve") \
  X(NO_USABLE_ADDRESS, NoUsableAddress, -48, "the name has no usable address") \
  X(ADDRESS_FAMILY, AddressFamily, -49, "the addresses are of different families") \
  X(ALL_ADDRESSES_FAILED, AllAddressesFailed, -50, "every address of the name failed") \
  X(NOT_A_MEMBER, NotAMember, -51, "not a member of the room (not joined yet, or left)") \
  X(CALL_NOT_ACTIVE, CallNotActive, -52, "the call is not active yet") \
  X(WRONG_CALL_STATE, WrongCallState, -53, "the call's state does not allow it")
// clang-format on

#endif  // PARLEY_BASE_ERROR_TABLE_H

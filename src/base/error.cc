#include "base/error.h"

#include <cstdarg>
#include <cstdio>

#include "base/log.h"

namespace parley {

const char *error_description(int code) {
  switch (code) {
    case kOk: return "success";
    case kErrInvalidArgument: return "invalid argument";
    case kErrNoMemory: return "out of memory";
    case kErrInternal: return "internal error";
    case kErrBufferTooSmall: return "buffer too small";
    case kErrIo: return "I/O error";
    case kErrSeedFileNotFound: return "seed file not found";
    case kErrSeedFileInvalid: return "seed file invalid";
    case kErrSeedFilePermissions: return "seed file permissions too open";
    case kErrSeedFileExists: return "seed file already exists";
    case kErrCertMalformed: return "certificate malformed";
    case kErrCertKeyType: return "certificate key is not Ed25519";
    case kErrFingerprintInvalid: return "fingerprint invalid";
    case kErrCrypto: return "cryptographic operation failed";
    case kErrClosed: return "closed";
    case kErrStunMalformed: return "malformed STUN message";
    case kErrStunUnknownAttribute: return "unknown comprehension-required STUN attribute";
    case kErrStunIntegrity: return "STUN message integrity check failed";
    case kErrStunFingerprint: return "STUN fingerprint mismatch";
    case kErrTimeout: return "timed out";
    case kErrAddressInvalid: return "invalid address";
    case kErrCandidateInvalid: return "invalid ICE candidate";
    case kErrSocket: return "socket error";
    case kErrPeerIdentity: return "peer identity mismatch";
    case kErrTransport: return "transport error";
    case kErrMessageTooLarge: return "message too large";
    case kErrQueueFull: return "queue full";
    case kErrSignalMalformed: return "malformed signaling message";
    case kErrSignalUnknownType: return "unknown signaling message type";
    case kErrSignalVersion: return "unsupported signaling protocol version";
    case kErrMediaMalformed: return "malformed media frame";
    case kErrPeerUnavailable: return "peer not registered with the relay";
    case kErrCallNotFound: return "no such call";
    case kErrRateLimited: return "rate limit exceeded";
    case kErrLimitReached: return "limit reached";
    case kErrCallRejected: return "call rejected";
    case kErrNotRegistered: return "not registered with the relay";
    case kErrMediaAuth: return "media frame failed authentication";
    case kErrMediaReplay: return "media frame replayed or too old";
    case kErrMediaKey: return "peer media key missing or not signed by the peer";
    case kErrIceFailed: return "no direct path";
    case kErrCodec: return "audio codec error";
    case kErrAudioFormat: return "unsupported audio format";
    case kErrWrongThread: return "not allowed on this thread";
    case kErrInvalidHandle: return "not a live handle (freed, or never created)";
    case kErrCallEnded: return "the call has ended";
    case kErrNoPath: return "no path to the peer for too long";
    case kErrNameNotFound: return "the name does not resolve";
    case kErrNoUsableAddress: return "the name has no usable address";
    case kErrAddressFamily: return "the addresses are of different families";
    case kErrAllAddressesFailed: return "every address of the name failed";
  }
  return "unknown error";
}

namespace {
thread_local char t_last_error[512];
}

int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
  va_end(ap);
  PARLEY_LOG(kLogDebug, "error", "%s (%s)", t_last_error, error_description(code));
  return code;
}

const char *last_error_message() { return t_last_error; }

void restore_last_error_message(const std::string &saved) {
  std::snprintf(t_last_error, sizeof t_last_error, "%s", saved.c_str());
}

}  // namespace parley

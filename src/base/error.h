// Error codes shared by every layer, and the per-thread detailed error message.
//
// The numbers are the public PARLEY_ERR_* values (capi/ static_asserts that they match), so a
// code travels up unchanged from the layer that detected it to the host.
#ifndef PARLEY_BASE_ERROR_H
#define PARLEY_BASE_ERROR_H

#include <string>

namespace parley {

enum Error : int {
  kOk = 0,
  kErrInvalidArgument = -1,
  kErrNoMemory = -2,
  kErrInternal = -3,
  kErrBufferTooSmall = -4,
  kErrIo = -5,
  kErrSeedFileNotFound = -6,
  kErrSeedFileInvalid = -7,
  kErrSeedFilePermissions = -8,
  kErrSeedFileExists = -9,
  kErrCertMalformed = -10,
  kErrCertKeyType = -11,
  kErrFingerprintInvalid = -12,
  kErrCrypto = -13,
  kErrClosed = -14,
  kErrStunMalformed = -15,
  kErrStunUnknownAttribute = -16,
  kErrStunIntegrity = -17,
  kErrStunFingerprint = -18,
  kErrTimeout = -19,
  kErrAddressInvalid = -20,
  kErrCandidateInvalid = -21,
  kErrSocket = -22,
  kErrPeerIdentity = -23,
  kErrTransport = -24,
  kErrMessageTooLarge = -25,
  kErrQueueFull = -26,
  kErrSignalMalformed = -27,
  kErrSignalUnknownType = -28,
  kErrSignalVersion = -29,
  kErrMediaMalformed = -30,
  kErrPeerUnavailable = -31,
  kErrCallNotFound = -32,
  kErrRateLimited = -33,
  kErrLimitReached = -34,
  kErrCallRejected = -35,
  kErrNotRegistered = -36,
  kErrMediaAuth = -37,
  kErrMediaReplay = -38,
  kErrMediaKey = -39,
  kErrIceFailed = -40,
  kErrCodec = -41,
  kErrAudioFormat = -42,
  kErrWrongThread = -43,
  kErrInvalidHandle = -44,
  kErrCallEnded = -45,
  kErrNoPath = -46,
  kErrNameNotFound = -47,
  kErrNoUsableAddress = -48,
  kErrAddressFamily = -49,
  kErrAllAddressesFailed = -50,
};

// The fixed one-line description of `code` ("unknown error" for codes parley never returns).
const char *error_description(int code);

// Records a detailed message for `code` as the calling thread's last error and returns
// `code`, so a failing path reads `return fail(kErrIo, "open %s: %s", path, strerror(e));`.
// The message is also logged at debug level.
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The calling thread's last detailed error message ("" if none yet).
const char *last_error_message();
// Puts back a message saved from last_error_message() (capi: a successful call must leave the
// previous error's message as it was, even if it recorded errors it then recovered from).
void restore_last_error_message(const std::string &saved);

}  // namespace parley

#endif

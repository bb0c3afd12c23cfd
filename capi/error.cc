#include "base/error.h"

#include "parley/parley.h"

// The public numbers and the internal ones are one set; keep them from drifting apart.
#define PARLEY_SAME(pub, internal) \
  static_assert(static_cast<int>(pub) == static_cast<int>(parley::internal), #pub)
PARLEY_SAME(PARLEY_OK, kOk);
PARLEY_SAME(PARLEY_ERR_INVALID_ARGUMENT, kErrInvalidArgument);
PARLEY_SAME(PARLEY_ERR_NO_MEMORY, kErrNoMemory);
PARLEY_SAME(PARLEY_ERR_INTERNAL, kErrInternal);
PARLEY_SAME(PARLEY_ERR_BUFFER_TOO_SMALL, kErrBufferTooSmall);
PARLEY_SAME(PARLEY_ERR_IO, kErrIo);
PARLEY_SAME(PARLEY_ERR_SEED_FILE_NOT_FOUND, kErrSeedFileNotFound);
PARLEY_SAME(PARLEY_ERR_SEED_FILE_INVALID, kErrSeedFileInvalid);
PARLEY_SAME(PARLEY_ERR_SEED_FILE_PERMISSIONS, kErrSeedFilePermissions);
PARLEY_SAME(PARLEY_ERR_SEED_FILE_EXISTS, kErrSeedFileExists);
PARLEY_SAME(PARLEY_ERR_CERT_MALFORMED, kErrCertMalformed);
PARLEY_SAME(PARLEY_ERR_CERT_KEY_TYPE, kErrCertKeyType);
PARLEY_SAME(PARLEY_ERR_FINGERPRINT_INVALID, kErrFingerprintInvalid);
PARLEY_SAME(PARLEY_ERR_CRYPTO, kErrCrypto);
PARLEY_SAME(PARLEY_ERR_CLOSED, kErrClosed);
PARLEY_SAME(PARLEY_ERR_STUN_MALFORMED, kErrStunMalformed);
PARLEY_SAME(PARLEY_ERR_STUN_UNKNOWN_ATTRIBUTE, kErrStunUnknownAttribute);
PARLEY_SAME(PARLEY_ERR_STUN_INTEGRITY, kErrStunIntegrity);
PARLEY_SAME(PARLEY_ERR_STUN_FINGERPRINT, kErrStunFingerprint);
PARLEY_SAME(PARLEY_ERR_TIMEOUT, kErrTimeout);
PARLEY_SAME(PARLEY_ERR_ADDRESS_INVALID, kErrAddressInvalid);
PARLEY_SAME(PARLEY_ERR_CANDIDATE_INVALID, kErrCandidateInvalid);
PARLEY_SAME(PARLEY_ERR_SOCKET, kErrSocket);
PARLEY_SAME(PARLEY_ERR_PEER_IDENTITY, kErrPeerIdentity);
PARLEY_SAME(PARLEY_ERR_TRANSPORT, kErrTransport);
PARLEY_SAME(PARLEY_ERR_MESSAGE_TOO_LARGE, kErrMessageTooLarge);
PARLEY_SAME(PARLEY_ERR_QUEUE_FULL, kErrQueueFull);
PARLEY_SAME(PARLEY_ERR_SIGNAL_MALFORMED, kErrSignalMalformed);
PARLEY_SAME(PARLEY_ERR_SIGNAL_UNKNOWN_TYPE, kErrSignalUnknownType);
PARLEY_SAME(PARLEY_ERR_SIGNAL_VERSION, kErrSignalVersion);
#undef PARLEY_SAME

const char *parley_strerror(int err) { return parley::error_description(err); }

const char *parley_last_error_message(void) { return parley::last_error_message(); }

/*
 * parley — end-to-end encrypted direct voice between apps.
 *
 * This is the whole public C ABI of libparley. Nothing else is exported.
 *
 * ABI rules (SQLite/curl style):
 *  - A function's signature never changes; a changed behaviour gets a new `_v2` function.
 *  - Enums and structs only grow; error codes keep their numbers forever and are never reused.
 *  - Config structs carry their own size in their first member.
 *  - No C++ type or exception crosses this boundary.
 *
 * Threading contract (stated once; exceptions are marked on each function):
 *  - Every function is safe to call from any thread.
 *  - An object handle (e.g. parley_identity) is immutable after creation unless its
 *    functions say otherwise, so it can be shared between threads; freeing it must not race
 *    with any other use of the same handle.
 *  - If a function returns an error, any callback it was given never fires.
 *
 * Errors: functions return 0 (PARLEY_OK) or a negative PARLEY_ERR_* code. parley_strerror()
 * gives the code's fixed description; parley_last_error_message() gives the detailed message
 * of the last error on the calling thread (which file, which permission, ...).
 */
#ifndef PARLEY_PARLEY_H
#define PARLEY_PARLEY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PARLEY_API
#elif defined(__GNUC__)
#define PARLEY_API __attribute__((visibility("default")))
#else
#define PARLEY_API
#endif

/* ---------------------------------------------------------------------------------------- */
/* Version                                                                                  */
/* ---------------------------------------------------------------------------------------- */

#define PARLEY_VERSION_MAJOR 0
#define PARLEY_VERSION_MINOR 1
#define PARLEY_VERSION_PATCH 0
/* The header's version as one number: 0xMMmmpp (major, minor, patch). */
#define PARLEY_VERSION_NUM \
  ((PARLEY_VERSION_MAJOR << 16) | (PARLEY_VERSION_MINOR << 8) | PARLEY_VERSION_PATCH)
#define PARLEY_VERSION_STRING "0.1.0"

/*
 * parley_version returns the version of the linked library as PARLEY_VERSION_NUM encodes it,
 * which may differ from the header the caller compiled against. Never fails.
 */
PARLEY_API uint32_t parley_version(void);

/*
 * parley_version_string returns the linked library's version as a static NUL-terminated
 * string such as "0.1.0". The caller must not free it. Never fails, never returns NULL.
 */
PARLEY_API const char *parley_version_string(void);

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Error codes. The numbers are part of the ABI: append only, never renumber or reuse. */
typedef enum parley_error {
  PARLEY_OK = 0,
  /* A required pointer was NULL, or an argument is out of range. */
  PARLEY_ERR_INVALID_ARGUMENT = -1,
  /* Memory (including secure memory for keys) could not be allocated. */
  PARLEY_ERR_NO_MEMORY = -2,
  /* A bug or an unexpected failure inside parley or a library it uses. */
  PARLEY_ERR_INTERNAL = -3,
  /* A caller-provided buffer is too small; the needed size is reported where possible. */
  PARLEY_ERR_BUFFER_TOO_SMALL = -4,
  /* An operating-system I/O call failed (see parley_last_error_message for errno text). */
  PARLEY_ERR_IO = -5,
  /* The seed file does not exist. */
  PARLEY_ERR_SEED_FILE_NOT_FOUND = -6,
  /* The seed file is not exactly PARLEY_SEED_LEN bytes, or not a regular file. */
  PARLEY_ERR_SEED_FILE_INVALID = -7,
  /* The seed file is readable or writable by group or others; it was not read. */
  PARLEY_ERR_SEED_FILE_PERMISSIONS = -8,
  /* The seed file to be written already exists; it was left untouched. */
  PARLEY_ERR_SEED_FILE_EXISTS = -9,
  /* A certificate is not valid DER X.509. */
  PARLEY_ERR_CERT_MALFORMED = -10,
  /* A certificate's key is not Ed25519, so it cannot carry a parley identity. */
  PARLEY_ERR_CERT_KEY_TYPE = -11,
  /* A fingerprint string is not 64 hexadecimal characters. */
  PARLEY_ERR_FINGERPRINT_INVALID = -12,
  /* A cryptographic library call failed (libsodium / GnuTLS). */
  PARLEY_ERR_CRYPTO = -13,
  /* The object is shut down or shutting down; the request was not queued. */
  PARLEY_ERR_CLOSED = -14,
  /* A STUN message violates RFC 8489 framing (lengths, padding, cookie, attribute values). */
  PARLEY_ERR_STUN_MALFORMED = -15,
  /* A STUN message carries a comprehension-required attribute parley does not know. */
  PARLEY_ERR_STUN_UNKNOWN_ATTRIBUTE = -16,
  /* A STUN MESSAGE-INTEGRITY(-SHA256) is missing or does not verify. */
  PARLEY_ERR_STUN_INTEGRITY = -17,
  /* A STUN FINGERPRINT does not match the message. */
  PARLEY_ERR_STUN_FINGERPRINT = -18,
  /* An operation did not complete before its deadline. */
  PARLEY_ERR_TIMEOUT = -19,
  /* An address is not a valid IPv4/IPv6 address (with port where one is required). */
  PARLEY_ERR_ADDRESS_INVALID = -20,
  /* An ICE candidate string is malformed. */
  PARLEY_ERR_CANDIDATE_INVALID = -21,
  /* A socket could not be created, bound or used (see parley_last_error_message). */
  PARLEY_ERR_SOCKET = -22,
  /* The peer's certificate key does not match the pinned fingerprint, was refused by the
   * trust-on-first-use decision, or the peer refused ours. The connection was aborted during
   * the handshake: nothing was exchanged. */
  PARLEY_ERR_PEER_IDENTITY = -23,
  /* The QUIC connection failed (protocol violation, handshake failure other than identity,
   * stateless reset). */
  PARLEY_ERR_TRANSPORT = -24,
  /* A message or datagram is larger than the connection allows. */
  PARLEY_ERR_MESSAGE_TOO_LARGE = -25,
  /* A send queue is full; the data was not queued (try again after it drains). */
  PARLEY_ERR_QUEUE_FULL = -26,
  /* A signaling message violates the wire format (lengths, field sizes, required fields). */
  PARLEY_ERR_SIGNAL_MALFORMED = -27,
  /* A signaling message has a type this version does not know. */
  PARLEY_ERR_SIGNAL_UNKNOWN_TYPE = -28,
  /* A signaling message has a protocol version this library does not speak. */
  PARLEY_ERR_SIGNAL_VERSION = -29,
  /* A media frame is too short, has an unknown version or fails authentication. */
  PARLEY_ERR_MEDIA_MALFORMED = -30,
  /* The called fingerprint is not registered with the relay (offline, or never was). */
  PARLEY_ERR_PEER_UNAVAILABLE = -31,
  /* No call (or room) with that id exists, or it does not involve the requester. */
  PARLEY_ERR_CALL_NOT_FOUND = -32,
  /* The relay refused a message because the sender exceeded its rate limit. */
  PARLEY_ERR_RATE_LIMITED = -33,
  /* A server limit (connections, calls, rooms, room size) is reached. */
  PARLEY_ERR_LIMIT_REACHED = -34,
  /* The callee rejected the call. */
  PARLEY_ERR_CALL_REJECTED = -35,
  /* The request needs a registration with the relay that does not exist (yet). */
  PARLEY_ERR_NOT_REGISTERED = -36,
  /* A media frame failed authentication (forged, corrupted, or sealed with another key). */
  PARLEY_ERR_MEDIA_AUTH = -37,
  /* A media frame was already received (duplicate or replay) or is older than the replay
   * window. */
  PARLEY_ERR_MEDIA_REPLAY = -38,
  /* The peer's media key is missing or its signature does not verify with the peer's
   * identity. */
  PARLEY_ERR_MEDIA_KEY = -39,
  /* No direct path could be established (ICE checks failed or ran out of time); the call
   * stays on the relay. */
  PARLEY_ERR_ICE_FAILED = -40,
  /* The Opus encoder or decoder failed (a corrupt packet from an authentic peer, or an
   * internal codec error). */
  PARLEY_ERR_CODEC = -41,
  /* An audio format parley cannot use: a sample rate other than 8000, 12000, 16000, 24000
   * or 48000 Hz, a channel count other than 1 or 2, or a frame length Opus lacks. */
  PARLEY_ERR_AUDIO_FORMAT = -42
} parley_error;

/*
 * parley_strerror returns a static, NUL-terminated, English description of `err` (e.g.
 * "seed file permissions too open"). Unknown codes give "unknown error". Never returns NULL;
 * the caller must not free the string.
 */
PARLEY_API const char *parley_strerror(int err);

/*
 * parley_last_error_message returns a detailed description of the most recent error that a
 * parley function returned on the calling thread, e.g. "seed file '/x/id.seed' has mode 0644:
 * group/others may read it; run chmod 600". Successful calls do not clear it. The string is
 * owned by parley and stays valid until the next parley call on the same thread. Returns ""
 * when no error happened yet on this thread. Never returns NULL.
 */
PARLEY_API const char *parley_last_error_message(void);

/* ---------------------------------------------------------------------------------------- */
/* Logging                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef enum parley_log_level {
  PARLEY_LOG_OFF = 0, /* only valid for parley_log_set_level */
  PARLEY_LOG_ERROR = 1,
  PARLEY_LOG_WARN = 2,
  PARLEY_LOG_INFO = 3,
  PARLEY_LOG_DEBUG = 4,
  PARLEY_LOG_TRACE = 5
} parley_log_level;

/*
 * A log sink. `level` is a parley_log_level, `message` a NUL-terminated line without a
 * trailing newline, valid only during the call. Called on whichever thread logs (a library
 * thread or a thread calling into parley), possibly concurrently: it must be thread-safe,
 * must not block for long, and must not call parley functions (lines parley would log from
 * inside the sink are dropped).
 */
typedef void (*parley_log_fn)(void *user_data, int level, const char *message);

/*
 * parley_log_set_callback replaces the process-wide log sink. `cb` NULL restores the default
 * sink, which writes to stderr. `user_data` is passed to `cb` untouched and may be NULL.
 * Once this returns, the previous sink is no longer called.
 * Returns 0. Never fails.
 */
PARLEY_API int parley_log_set_callback(parley_log_fn cb, void *user_data);

/*
 * parley_log_set_level sets the most verbose level delivered to the sink (default
 * PARLEY_LOG_WARN); PARLEY_LOG_OFF silences parley.
 * Returns 0, or PARLEY_ERR_INVALID_ARGUMENT if `level` is not a parley_log_level.
 */
PARLEY_API int parley_log_set_level(int level);

/* ---------------------------------------------------------------------------------------- */
/* Identity                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* An identity seed is 32 bytes; the Ed25519 key pair is derived from it. */
#define PARLEY_SEED_LEN 32
/* An Ed25519 public key is 32 bytes. */
#define PARLEY_PUBLIC_KEY_LEN 32
/* Fingerprint text: 64 lowercase hex characters (SHA-256 of the public key). */
#define PARLEY_FINGERPRINT_HEX_LEN 64
/* Buffer size for fingerprint text including its terminating NUL. */
#define PARLEY_FINGERPRINT_BUF_LEN 65

/*
 * An identity: the Ed25519 key pair derived from a seed, its fingerprint and its
 * deterministic self-signed certificate. Opaque. Secrets live in guarded memory (libsodium's
 * sodium_malloc: guard pages, mlock where the system allows it) that is wiped on free.
 * Immutable: safe to share between threads.
 */
typedef struct parley_identity parley_identity;

/* Flags for parley_identity_save_file. */
#define PARLEY_SAVE_OVERWRITE 0x1u /* replace an existing file (atomically) */

/*
 * parley_identity_generate creates a new identity from 32 bytes of the system's CSPRNG.
 * `out` must not be NULL; on success *out owns a new identity the caller frees with
 * parley_identity_free; on error *out is set to NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_NO_MEMORY or PARLEY_ERR_CRYPTO.
 */
PARLEY_API int parley_identity_generate(parley_identity **out);

/*
 * parley_identity_from_seed recreates the identity of a seed, e.g. one the host keeps in the
 * platform key store. `seed` must point to `seed_len` bytes; `seed_len` must be
 * PARLEY_SEED_LEN. The bytes are copied; the caller may wipe its copy afterwards. `out` as in
 * parley_identity_generate. The same seed always yields the same keys, fingerprint and
 * byte-identical certificate.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL pointer or wrong length), PARLEY_ERR_NO_MEMORY
 * or PARLEY_ERR_CRYPTO.
 */
PARLEY_API int parley_identity_from_seed(const uint8_t *seed, size_t seed_len,
                                         parley_identity **out);

/*
 * parley_identity_load_file reads a seed file written by parley_identity_save_file: a regular
 * file of exactly PARLEY_SEED_LEN raw bytes, with no permission bit for group or others, owned
 * by the calling process's user (or by root).
 * The file is only read, never modified, whatever the outcome. `path` and `out` must not be
 * NULL; `out` as in parley_identity_generate.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_SEED_FILE_NOT_FOUND,
 * PARLEY_ERR_SEED_FILE_PERMISSIONS (mode allows group/other access: fix with chmod 600; or
 * the file belongs to another user),
 * PARLEY_ERR_SEED_FILE_INVALID (wrong size, or not a regular file), PARLEY_ERR_IO,
 * PARLEY_ERR_NO_MEMORY or PARLEY_ERR_CRYPTO.
 */
PARLEY_API int parley_identity_load_file(const char *path, parley_identity **out);

/*
 * parley_identity_save_file writes the identity's seed to `path` with mode 0600, atomically:
 * a temporary file in the same directory is written and synced, then moved into place, so a
 * crash leaves either no file or the complete file. Unless `flags` has PARLEY_SAVE_OVERWRITE
 * an existing `path` is left untouched and PARLEY_ERR_SEED_FILE_EXISTS is returned.
 * `id` and `path` must not be NULL; `flags` is 0 or PARLEY_SAVE_OVERWRITE.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_SEED_FILE_EXISTS or PARLEY_ERR_IO.
 */
PARLEY_API int parley_identity_save_file(const parley_identity *id, const char *path,
                                         unsigned flags);

/*
 * parley_identity_fingerprint writes the identity's fingerprint — 64 lowercase hex
 * characters and a NUL — to `out`, which must hold `out_len` >= PARLEY_FINGERPRINT_BUF_LEN
 * bytes. `id` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT or PARLEY_ERR_BUFFER_TOO_SMALL.
 */
PARLEY_API int parley_identity_fingerprint(const parley_identity *id, char *out,
                                           size_t out_len);

/*
 * parley_identity_public_key copies the 32-byte Ed25519 public key to `out`, which must hold
 * PARLEY_PUBLIC_KEY_LEN bytes. `id` and `out` must not be NULL.
 * Returns 0 or PARLEY_ERR_INVALID_ARGUMENT.
 */
PARLEY_API int parley_identity_public_key(const parley_identity *id, uint8_t *out);

/*
 * parley_identity_export_seed copies the secret 32-byte seed to `out` (PARLEY_SEED_LEN
 * bytes), for hosts that keep it in a platform key store instead of a file. The caller owns
 * the copy and should wipe it when done. `id` and `out` must not be NULL.
 * Returns 0 or PARLEY_ERR_INVALID_ARGUMENT.
 */
PARLEY_API int parley_identity_export_seed(const parley_identity *id, uint8_t *out);

/*
 * parley_identity_certificate_der gives the identity's self-signed X.509 certificate (DER).
 * On entry *len is the capacity of `buf`; on return it is the certificate's length. With
 * `buf` NULL (or too small) only the length is reported. `id` and `len` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT or PARLEY_ERR_BUFFER_TOO_SMALL (*len then holds the
 * size needed).
 */
PARLEY_API int parley_identity_certificate_der(const parley_identity *id, uint8_t *buf,
                                               size_t *len);

/*
 * parley_identity_free wipes and frees `id`. NULL is a no-op.
 */
PARLEY_API void parley_identity_free(parley_identity *id);

/*
 * parley_certificate_fingerprint verifies that `der` (`der_len` bytes) is a DER X.509
 * certificate with an Ed25519 key and writes that key's fingerprint (64 lowercase hex + NUL)
 * to `out` (`out_len` >= PARLEY_FINGERPRINT_BUF_LEN). This is how parley identifies a peer;
 * it does not consult any CA. `der` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_BUFFER_TOO_SMALL,
 * PARLEY_ERR_CERT_MALFORMED or PARLEY_ERR_CERT_KEY_TYPE.
 */
PARLEY_API int parley_certificate_fingerprint(const uint8_t *der, size_t der_len, char *out,
                                              size_t out_len);

/*
 * parley_fingerprint_normalize checks that `text` is a fingerprint — 64 hex characters of
 * either case, optionally grouped with spaces, ':' or '-' as a human may have copied it —
 * and writes its canonical form (64 lowercase hex + NUL) to `out` (`out_len` >=
 * PARLEY_FINGERPRINT_BUF_LEN). `text` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_BUFFER_TOO_SMALL or
 * PARLEY_ERR_FINGERPRINT_INVALID.
 */
PARLEY_API int parley_fingerprint_normalize(const char *text, char *out, size_t out_len);

/* ---------------------------------------------------------------------------------------- */
/* Network diagnosis (netcheck)                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Output formats for parley_netcheck_run. */
#define PARLEY_NETCHECK_JSON 0 /* one JSON object (documented in docs/netcheck.md) */
#define PARLEY_NETCHECK_TEXT 1 /* a human-readable report */
/* A buffer this large holds any report of a host with up to 64 interface addresses. */
#define PARLEY_NETCHECK_REPORT_MAX 16384

typedef struct parley_netcheck_options {
  /* sizeof(parley_netcheck_options): lets later versions grow the struct. */
  size_t struct_size;
  /* STUN servers as "ip:port", "[ipv6]:port" or "hostname:port". Every server is used for
   * candidate gathering; the first is also used for RFC 5780 NAT behaviour discovery, which
   * needs a server with an alternate address (parley-relay with --alt, or coturn with two
   * listening IPs). At least one. */
  const char *const *stun_servers;
  size_t stun_server_count;
  /* Local address to bind, "ip:port"; NULL for one IPv4 and one IPv6 socket on any address
   * and port (as a call context does; IPv6 is skipped quietly where unavailable). */
  const char *bind_address;
  /* Gathering deadline in milliseconds; 0 for the default (2000). A server that does not
   * answer within it is reported as such and does not delay the result further. */
  uint32_t deadline_ms;
  /* Non-zero: also offer loopback addresses as host candidates. */
  int include_loopback;
  /* PARLEY_NETCHECK_JSON or PARLEY_NETCHECK_TEXT. */
  int format;
  /* The relay's public address "ip:port", announced as the relay candidate; NULL for none. */
  const char *relay_address;
  /* Fields added by later versions go here; parley reads them only when struct_size covers
   * them, so callers built against this header keep working. */
} parley_netcheck_options;

/*
 * parley_netcheck_run diagnoses the network from fresh UDP sockets (one per address family,
 * or the one `bind_address` names): it gathers host, server-reflexive and relay candidates
 * and classifies the NAT (mapping and filtering behaviour, port preservation, hairpinning;
 * open internet, firewalled, full cone, restricted cone, port-restricted cone, symmetric, UDP
 * blocked). It BLOCKS the calling thread: gathering ends by its deadline, NAT discovery runs
 * its tests with 1.4 s timeouts in up to three rounds, so the call takes up to about
 * max(deadline, 4.5 s). Call it from a worker thread, never from a UI or audio thread.
 * `options` must not be NULL and options->struct_size must be set (an older, smaller layout
 * is accepted). The report is written to `out` as a NUL-terminated string: on entry *out_len
 * is the capacity of `out`, on return the length needed including the NUL. Every call runs a
 * fresh probe, so a second call may produce a different (even longer) report: pass a buffer
 * of PARLEY_NETCHECK_REPORT_MAX bytes rather than querying the size first.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL, bad struct_size, no servers, bad format),
 * PARLEY_ERR_ADDRESS_INVALID (a server or bind address that does not parse or resolve),
 * PARLEY_ERR_SOCKET (cannot bind), PARLEY_ERR_BUFFER_TOO_SMALL, PARLEY_ERR_NO_MEMORY or
 * PARLEY_ERR_INTERNAL. UDP being blocked is a result (in the report), not an error.
 */
PARLEY_API int parley_netcheck_run(const parley_netcheck_options *options, char *out,
                                   size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* PARLEY_PARLEY_H */

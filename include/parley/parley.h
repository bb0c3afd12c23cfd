/**
 * @file parley.h
 *
 * parley — end-to-end encrypted direct voice between apps.
 *
 * This is the whole public C ABI of libparley. Nothing else is exported.
 *
 * ABI rules (SQLite/curl style; docs/abi.md says what 0.2.0 freezes):
 *  - A function's signature never changes; a changed behaviour gets a new function.
 *  - Enums and structs only grow; error codes keep their numbers forever and are never reused.
 *  - Structs that cross the boundary carry or are passed with their size: a function that
 *    fills one takes it (the `_sized` functions, which a macro of the natural name calls
 *    with the header's sizeof), so a host and a library of different versions agree.
 *  - No C++ type or exception crosses this boundary.
 *
 * Lifetime: every handle is freed by its one `_destroy` function (parley_identity_destroy,
 * parley_context_destroy, parley_call_destroy, parley_room_destroy). NULL is a no-op there;
 * a second destroy is ignored and returns PARLEY_ERR_INVALID_HANDLE.
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

/**
 * Marks the exported functions (default visibility; everything else in libparley is hidden).
 * On Windows a DLL's functions must be imported explicitly: a program linking the static
 * library defines PARLEY_STATIC (CMake's parley::parley_static does that for it); libparley's
 * own build defines PARLEY_BUILDING.
 */
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(PARLEY_STATIC)
#define PARLEY_API
#elif defined(PARLEY_BUILDING)
#define PARLEY_API __declspec(dllexport)
#else
#define PARLEY_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define PARLEY_API __attribute__((visibility("default")))
#else
#define PARLEY_API
#endif

/* ---------------------------------------------------------------------------------------- */
/* Version                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/** The header's major version: changes only with an incompatible ABI (and the SONAME). */
#define PARLEY_VERSION_MAJOR 0
/** The header's minor version: grows when functions, enum values or struct fields are added. */
#define PARLEY_VERSION_MINOR 2
/** The header's patch version: fixes without interface changes. */
#define PARLEY_VERSION_PATCH 0
/** The header's version as one number: 0xMMmmpp (major, minor, patch). */
#define PARLEY_VERSION_NUM \
  ((PARLEY_VERSION_MAJOR << 16) | (PARLEY_VERSION_MINOR << 8) | PARLEY_VERSION_PATCH)
/** The header's version as text. */
#define PARLEY_VERSION_STRING "0.2.0"

/**
 * parley_version returns the version of the linked library as PARLEY_VERSION_NUM encodes it,
 * which may differ from the header the caller compiled against. Never fails.
 */
PARLEY_API uint32_t parley_version(void);

/**
 * parley_version_string returns the linked library's version as a static NUL-terminated
 * string such as "0.2.0". The caller must not free it. Never fails, never returns NULL.
 */
PARLEY_API const char *parley_version_string(void);

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/** Error codes. The numbers are part of the ABI: append only, never renumber or reuse. */
typedef enum parley_error {
  PARLEY_OK = 0,
  /** A required pointer was NULL, or an argument is out of range. */
  PARLEY_ERR_INVALID_ARGUMENT = -1,
  /** Memory (including secure memory for keys) could not be allocated. */
  PARLEY_ERR_NO_MEMORY = -2,
  /** A bug or an unexpected failure inside parley or a library it uses. */
  PARLEY_ERR_INTERNAL = -3,
  /** A caller-provided buffer is too small; the needed size is reported where possible. */
  PARLEY_ERR_BUFFER_TOO_SMALL = -4,
  /** An operating-system I/O call failed (see parley_last_error_message for errno text). */
  PARLEY_ERR_IO = -5,
  /** The seed file does not exist. */
  PARLEY_ERR_SEED_FILE_NOT_FOUND = -6,
  /** The seed file is not exactly PARLEY_SEED_LEN bytes, or not a regular file. */
  PARLEY_ERR_SEED_FILE_INVALID = -7,
  /** The seed file is readable or writable by group or others; it was not read. */
  PARLEY_ERR_SEED_FILE_PERMISSIONS = -8,
  /** The seed file to be written already exists; it was left untouched. */
  PARLEY_ERR_SEED_FILE_EXISTS = -9,
  /** A certificate is not valid DER X.509. */
  PARLEY_ERR_CERT_MALFORMED = -10,
  /** A certificate's key is not Ed25519, so it cannot carry a parley identity. */
  PARLEY_ERR_CERT_KEY_TYPE = -11,
  /** A fingerprint string is not 64 hexadecimal characters. */
  PARLEY_ERR_FINGERPRINT_INVALID = -12,
  /** A cryptographic library call failed (libsodium / GnuTLS). */
  PARLEY_ERR_CRYPTO = -13,
  /** The object is shut down or shutting down; the request was not queued. */
  PARLEY_ERR_CLOSED = -14,
  /** A STUN message violates RFC 8489 framing (lengths, padding, cookie, attribute values). */
  PARLEY_ERR_STUN_MALFORMED = -15,
  /** A STUN message carries a comprehension-required attribute parley does not know. */
  PARLEY_ERR_STUN_UNKNOWN_ATTRIBUTE = -16,
  /** A STUN MESSAGE-INTEGRITY(-SHA256) is missing or does not verify. */
  PARLEY_ERR_STUN_INTEGRITY = -17,
  /** A STUN FINGERPRINT does not match the message. */
  PARLEY_ERR_STUN_FINGERPRINT = -18,
  /** An operation did not complete before its deadline. */
  PARLEY_ERR_TIMEOUT = -19,
  /** An address is not a valid IPv4/IPv6 address (with port where one is required). */
  PARLEY_ERR_ADDRESS_INVALID = -20,
  /** An ICE candidate string is malformed. */
  PARLEY_ERR_CANDIDATE_INVALID = -21,
  /** A socket could not be created, bound or used (see parley_last_error_message). */
  PARLEY_ERR_SOCKET = -22,
  /** The peer's certificate key does not match the pinned fingerprint, was refused by the
   * trust-on-first-use decision, or the peer refused ours. The connection was aborted during
   * the handshake: nothing was exchanged. */
  PARLEY_ERR_PEER_IDENTITY = -23,
  /** The QUIC connection failed (protocol violation, handshake failure other than identity,
   * stateless reset). */
  PARLEY_ERR_TRANSPORT = -24,
  /** A message or datagram is larger than the connection allows. */
  PARLEY_ERR_MESSAGE_TOO_LARGE = -25,
  /** A send queue is full; the data was not queued (try again after it drains). */
  PARLEY_ERR_QUEUE_FULL = -26,
  /** A signaling message violates the wire format (lengths, field sizes, required fields). */
  PARLEY_ERR_SIGNAL_MALFORMED = -27,
  /** A signaling message has a type this version does not know. */
  PARLEY_ERR_SIGNAL_UNKNOWN_TYPE = -28,
  /** A signaling message has a protocol version this library does not speak. */
  PARLEY_ERR_SIGNAL_VERSION = -29,
  /** A media frame is too short, has an unknown version or fails authentication. */
  PARLEY_ERR_MEDIA_MALFORMED = -30,
  /** The called fingerprint is not registered with the relay (offline, or never was), or
   * an answered call's peer left the relay and did not come back (its app died). */
  PARLEY_ERR_PEER_UNAVAILABLE = -31,
  /** The relay (or the peer) knows no call with that id, or the call does not involve the
   * requester. The host's own requests on a call that ended get PARLEY_ERR_CALL_ENDED. */
  PARLEY_ERR_CALL_NOT_FOUND = -32,
  /** The relay refused a message because the sender exceeded its rate limit. */
  PARLEY_ERR_RATE_LIMITED = -33,
  /** A server limit (connections, calls, rooms, room size) is reached. */
  PARLEY_ERR_LIMIT_REACHED = -34,
  /** The callee rejected the call. */
  PARLEY_ERR_CALL_REJECTED = -35,
  /** The request needs a registration with the relay that does not exist (yet). */
  PARLEY_ERR_NOT_REGISTERED = -36,
  /** A media frame failed authentication (forged, corrupted, or sealed with another key). */
  PARLEY_ERR_MEDIA_AUTH = -37,
  /** A media frame was already received (duplicate or replay) or is older than the replay
   * window. */
  PARLEY_ERR_MEDIA_REPLAY = -38,
  /** The peer's media key is missing or its signature does not verify with the peer's
   * identity. */
  PARLEY_ERR_MEDIA_KEY = -39,
  /** No direct path could be established (ICE checks failed or ran out of time); the call
   * stays on the relay. */
  PARLEY_ERR_ICE_FAILED = -40,
  /** The Opus encoder or decoder failed (a corrupt packet from an authentic peer, or an
   * internal codec error). */
  PARLEY_ERR_CODEC = -41,
  /** An audio format parley cannot use: a sample rate other than 8000, 12000, 16000, 24000
   * or 48000 Hz, a channel count other than 1 or 2, or a frame length Opus lacks. */
  PARLEY_ERR_AUDIO_FORMAT = -42,
  /** The function may not be called on this thread (e.g. destroying a context from inside
   * its own event callback). */
  PARLEY_ERR_WRONG_THREAD = -43,
  /** A handle that is not live: already destroyed, or never returned by parley. Nothing was
   * done. (A destroyed handle's memory may be reused by a later handle of the same type,
   * which then answers to it: do not keep using destroyed handles.) */
  PARLEY_ERR_INVALID_HANDLE = -44,
  /** The call has ended (hung up by either side, rejected, failed): the request needs a call
   * that is still going. */
  PARLEY_ERR_CALL_ENDED = -45,
  /** The call ended because it had no path to the peer for no_path_timeout_ms: the relay
   * was unreachable (or had not taken the call back) and no direct path carried it. A call
   * on a working direct path never ends for the relay's absence. */
  PARLEY_ERR_NO_PATH = -46,
  /** A host name (the relay's) does not resolve: it does not exist, or no DNS answer could
   * be had. The message names the name and what the resolver said. */
  PARLEY_ERR_NAME_NOT_FOUND = -47,
  /** A host name resolves, but to no address this context can use (none of its socket's
   * family; or no IPv4/IPv6 address at all). The message names the name. */
  PARLEY_ERR_NO_USABLE_ADDRESS = -48,
  /** Two addresses that must share a family do not, e.g. an IPv6 bind_address with an IPv4
   * relay address: the socket could never reach the relay. */
  PARLEY_ERR_ADDRESS_FAMILY = -49,
  /** A host name (the relay's) resolved, but no connection to any of its addresses could be
   * made; the message lists each address tried and why it failed. */
  PARLEY_ERR_ALL_ADDRESSES_FAILED = -50,
  /** The room handle is not a member of its room (the relay has not confirmed the join yet,
   * or the room was left or refused). */
  PARLEY_ERR_NOT_A_MEMBER = -51,
  /** The call is not active yet (nothing to send or measure before it is answered). */
  PARLEY_ERR_CALL_NOT_ACTIVE = -52,
  /** The call's state does not allow the request: accepting or rejecting an outgoing call,
   * or one already answered. */
  PARLEY_ERR_WRONG_CALL_STATE = -53
} parley_error;

/**
 * parley_strerror returns a static, NUL-terminated, English description of `err` (e.g.
 * "seed file permissions too open"). Unknown codes give "unknown error". Never returns NULL;
 * the caller must not free the string.
 */
PARLEY_API const char *parley_strerror(int err);

/**
 * parley_error_name returns the name of `err` as the header spells it ("PARLEY_OK",
 * "PARLEY_ERR_TIMEOUT"), for logs and bindings. A number that is not a code of this library
 * gives "unknown". Never returns NULL; the caller must not free the string.
 */
PARLEY_API const char *parley_error_name(int err);

/**
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

/** Log levels, from the most severe; append-only numbering. */
typedef enum parley_log_level {
  PARLEY_LOG_OFF = 0, /**< only valid for parley_log_set_level */
  PARLEY_LOG_ERROR = 1,
  PARLEY_LOG_WARN = 2,
  PARLEY_LOG_INFO = 3,
  PARLEY_LOG_DEBUG = 4,
  PARLEY_LOG_TRACE = 5
} parley_log_level;

/**
 * A log sink. `level` is a parley_log_level, `message` a NUL-terminated line without a
 * trailing newline, valid only during the call. Called on whichever thread logs (a library
 * thread or a thread calling into parley), possibly concurrently: it must be thread-safe,
 * must not block for long, and must not call parley functions (lines parley would log from
 * inside the sink are dropped).
 */
typedef void (*parley_log_fn)(void *user_data, int level, const char *message);

/**
 * parley_log_set_callback replaces the process-wide log sink. `cb` NULL restores the default
 * sink, which writes to stderr. `user_data` is passed to `cb` untouched and may be NULL.
 * Once this returns, the previous sink is no longer called.
 * Returns 0. Never fails.
 */
PARLEY_API int parley_log_set_callback(parley_log_fn cb, void *user_data);

/**
 * parley_log_set_level sets the most verbose level delivered to the sink (default
 * PARLEY_LOG_WARN); PARLEY_LOG_OFF silences parley.
 * Returns 0, or PARLEY_ERR_INVALID_ARGUMENT if `level` is not a parley_log_level.
 */
PARLEY_API int parley_log_set_level(int level);

/* ---------------------------------------------------------------------------------------- */
/* Identity                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/** An identity seed is 32 bytes; the Ed25519 key pair is derived from it. */
#define PARLEY_SEED_LEN 32
/** An Ed25519 public key is 32 bytes. */
#define PARLEY_PUBLIC_KEY_LEN 32
/** Fingerprint text: 64 lowercase hex characters (SHA-256 of the public key). */
#define PARLEY_FINGERPRINT_HEX_LEN 64
/** Buffer size for fingerprint text including its terminating NUL. */
#define PARLEY_FINGERPRINT_BUF_LEN 65

/**
 * An identity: the Ed25519 key pair derived from a seed, its fingerprint and its
 * deterministic self-signed certificate. Opaque. Secrets live in guarded memory (libsodium's
 * sodium_malloc: guard pages, mlock where the system allows it) that is wiped on free.
 * Immutable: safe to share between threads.
 */
typedef struct parley_identity parley_identity;

/** Flags for parley_identity_save_file. */
#define PARLEY_SAVE_OVERWRITE 0x1u /**< replace an existing file (atomically) */

/**
 * parley_identity_generate creates a new identity from 32 bytes of the system's CSPRNG.
 * `out` must not be NULL; on success *out owns a new identity the caller frees with
 * parley_identity_destroy; on error *out is set to NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_NO_MEMORY or PARLEY_ERR_CRYPTO.
 */
PARLEY_API int parley_identity_generate(parley_identity **out);

/**
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

/**
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

/**
 * parley_identity_save_file writes the identity's seed to `path` with mode 0600, atomically:
 * a temporary file in the same directory is written and synced, then moved into place, so a
 * crash leaves either no file or the complete file. Unless `flags` has PARLEY_SAVE_OVERWRITE
 * an existing `path` is left untouched and PARLEY_ERR_SEED_FILE_EXISTS is returned.
 * `id` and `path` must not be NULL; `flags` is 0 or PARLEY_SAVE_OVERWRITE.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE,
 * PARLEY_ERR_SEED_FILE_EXISTS or PARLEY_ERR_IO.
 */
PARLEY_API int parley_identity_save_file(const parley_identity *id, const char *path,
                                         unsigned flags);

/**
 * parley_identity_fingerprint writes the identity's fingerprint — 64 lowercase hex
 * characters and a NUL — to `out`, which must hold `out_len` >= PARLEY_FINGERPRINT_BUF_LEN
 * bytes. `id` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE or
 * PARLEY_ERR_BUFFER_TOO_SMALL.
 */
PARLEY_API int parley_identity_fingerprint(const parley_identity *id, char *out,
                                           size_t out_len);

/**
 * parley_identity_public_key copies the 32-byte Ed25519 public key to `out`, which must hold
 * PARLEY_PUBLIC_KEY_LEN bytes. `id` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT or PARLEY_ERR_INVALID_HANDLE.
 */
PARLEY_API int parley_identity_public_key(const parley_identity *id, uint8_t *out);

/**
 * parley_identity_export_seed copies the secret 32-byte seed to `out` (PARLEY_SEED_LEN
 * bytes), for hosts that keep it in a platform key store instead of a file. The caller owns
 * the copy and should wipe it when done. `id` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT or PARLEY_ERR_INVALID_HANDLE.
 */
PARLEY_API int parley_identity_export_seed(const parley_identity *id, uint8_t *out);

/**
 * parley_identity_certificate_der gives the identity's self-signed X.509 certificate (DER).
 * On entry *len is the capacity of `buf`; on return it is the certificate's length. With
 * `buf` NULL (or too small) only the length is reported. `id` and `len` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE or
 * PARLEY_ERR_BUFFER_TOO_SMALL (*len then holds the
 * size needed).
 */
PARLEY_API int parley_identity_certificate_der(const parley_identity *id, uint8_t *buf,
                                               size_t *len);

/**
 * parley_identity_destroy wipes and frees `id`. A context keeps its own copy, so the identity
 * may be destroyed once parley_context_create returned.
 * Returns 0 (also for NULL, a no-op) or PARLEY_ERR_INVALID_HANDLE (destroyed twice: ignored,
 * and logged).
 */
PARLEY_API int parley_identity_destroy(parley_identity *id);

/**
 * parley_certificate_fingerprint verifies that `der` (`der_len` bytes) is a DER X.509
 * certificate with an Ed25519 key and writes that key's fingerprint (64 lowercase hex + NUL)
 * to `out` (`out_len` >= PARLEY_FINGERPRINT_BUF_LEN). This is how parley identifies a peer;
 * it does not consult any CA. `der` and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_BUFFER_TOO_SMALL,
 * PARLEY_ERR_CERT_MALFORMED or PARLEY_ERR_CERT_KEY_TYPE.
 */
PARLEY_API int parley_certificate_fingerprint(const uint8_t *der, size_t der_len, char *out,
                                              size_t out_len);

/**
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

/** Output formats for parley_netcheck_run. */
#define PARLEY_NETCHECK_JSON 0 /**< one JSON object (documented in docs/netcheck.md) */
#define PARLEY_NETCHECK_TEXT 1 /**< a human-readable report */
/** A buffer this large holds any report of a host with up to 64 interface addresses. */
#define PARLEY_NETCHECK_REPORT_MAX 16384

/** Options of parley_netcheck_run: set them to their defaults with
 * parley_netcheck_options_init, then set the fields. */
typedef struct parley_netcheck_options {
  /** sizeof(parley_netcheck_options): lets later versions grow the struct. */
  size_t struct_size;
  /** STUN servers as "ip:port", "[ipv6]:port" or "hostname:port". Every server is used for
   * candidate gathering; the first is also used for RFC 5780 NAT behaviour discovery, which
   * needs a server with an alternate address (parley-relay with --alt, or coturn with two
   * listening IPs). At least one. */
  const char *const *stun_servers;
  /** The number of entries in stun_servers. */
  size_t stun_server_count;
  /** Local address to bind, "ip:port"; NULL for one IPv4 and one IPv6 socket on any address
   * and port (as a call context does; IPv6 is skipped quietly where unavailable). */
  const char *bind_address;
  /** Gathering deadline in milliseconds; 0 for the default (2000). A server that does not
   * answer within it is reported as such and does not delay the result further. */
  uint32_t deadline_ms;
  /** Non-zero: also offer loopback addresses as host candidates. */
  int include_loopback;
  /** PARLEY_NETCHECK_JSON or PARLEY_NETCHECK_TEXT. */
  int format;
  /** The relay's public address "ip:port", announced as the relay candidate; NULL for none. */
  const char *relay_address;
  /** Fields added by later versions go here; parley reads them only when struct_size covers
   * them, so callers built against this header keep working. */
} parley_netcheck_options;

/**
 * parley_netcheck_options_init_sized zeroes `options` (min(`options_size`, the library's
 * sizeof) bytes) and sets struct_size to that. Call it through the
 * parley_netcheck_options_init macro, which passes the header's sizeof. `options` must not
 * be NULL; `options_size` must cover at least the fields up to and including
 * relay_address (the first layout).
 * Returns 0 or PARLEY_ERR_INVALID_ARGUMENT.
 */
PARLEY_API int parley_netcheck_options_init_sized(parley_netcheck_options *options,
                                                  size_t options_size);

/** Sets `options` (a parley_netcheck_options *) to its defaults: see
 * parley_netcheck_options_init_sized. */
#define parley_netcheck_options_init(options) \
  parley_netcheck_options_init_sized((options), sizeof(parley_netcheck_options))

/**
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
 * PARLEY_ERR_ADDRESS_INVALID (a server or bind address that does not parse),
 * PARLEY_ERR_NAME_NOT_FOUND (a server name that does not resolve),
 * PARLEY_ERR_NO_USABLE_ADDRESS (a server name without an address of a family this host has),
 * PARLEY_ERR_SOCKET (cannot bind), PARLEY_ERR_BUFFER_TOO_SMALL, PARLEY_ERR_NO_MEMORY or
 * PARLEY_ERR_INTERNAL. UDP being blocked is a result (in the report), not an error.
 */
PARLEY_API int parley_netcheck_run(const parley_netcheck_options *options, char *out,
                                   size_t *out_len);


/* ---------------------------------------------------------------------------------------- */
/* Contexts and calls                                                                       */
/* ---------------------------------------------------------------------------------------- */
/*
 * Threading (docs/design.md "Threading contract"; the full rules are in docs/c-api.md):
 *  - A context runs its own event loop on one internal thread (the context's thread). Every
 *    function below may be called from any thread, except where marked.
 *  - Events go either to the callback given in the config, on the context's thread, one at a
 *    time, or to a queue the host drains with parley_context_poll_event (e.g. once per frame
 *    of a game loop, or whenever parley_context_event_fd becomes readable).
 *  - The callback may call any function here: calls made from inside it run at once and
 *    never re-enter the callback (events they cause are delivered after it returns).
 *    parley_context_destroy is the exception: from inside the context's own callback it is
 *    refused with PARLEY_ERR_WRONG_THREAD and does nothing. A request on *another* context
 *    waits for that context's thread: two contexts whose callbacks wait on each other
 *    deadlock, so from a callback use the other contexts only if their callbacks never
 *    wait on this one.
 *  - The audio functions (parley_call_push_audio, parley_call_pull_audio, their _float twins,
 *    parley_call_set_muted) are the real-time exceptions: they never lock, block or allocate,
 *    and each of push and pull must be called from one thread at a time (one capture thread
 *    pushes, one playout thread pulls). They do not validate handles (that would take a
 *    lock): a destroyed call handle there is undefined behaviour.
 *  - Handles: every other function checks that its handle is live and returns
 *    PARLEY_ERR_INVALID_HANDLE for a destroyed one. On parley_context_destroy, every call is
 *    hung up and no event is delivered after it returns; call and room handles stay valid
 *    until destroyed (requests on them return PARLEY_ERR_CALL_ENDED or PARLEY_ERR_CLOSED,
 *    pull gives silence).
 */

/** A client context: an identity, a relay connection, one UDP socket, and calls. Opaque. */
typedef struct parley_context parley_context;
/** One call. Opaque; owned by the host from parley_call_start or the INCOMING_CALL event
 * until parley_call_destroy. */
typedef struct parley_call parley_call;
/** Membership of one room on the relay. Opaque; owned by the host from parley_room_join
 * until parley_room_destroy. */
typedef struct parley_room parley_room;

/**
 * Event types; append-only numbering (hosts ignore types they do not know). Each type lists
 * the parley_event fields it sets; every other field is zero (NULL, ""). Every event of a
 * call sets `call` and `user_data` (the call's, parley_call_set_user_data); every event of a
 * room sets `room` and `user_data` (the room's).
 */
typedef enum parley_event_type {
  PARLEY_EVENT_NONE = 0, /**< not an event (a zeroed struct) */
  /** The relay connection's state changed. relay_state: the new parley_relay_state; error:
   * why the connection was lost or refused, or 0; text: the detail; origin; peer: the
   * relay's fingerprint when relay_state is PARLEY_RELAY_UNTRUSTED. */
  PARLEY_EVENT_RELAY_STATE = 1,
  /** A call to us. call: a new handle the host owns (accept, reject, destroy); peer: the
   * caller's fingerprint; call_state: PARLEY_CALL_INCOMING; user_data: NULL (set it now). */
  PARLEY_EVENT_INCOMING_CALL = 2,
  /** A call's state changed. call, user_data; call_state: the new parley_call_state; peer;
   * error: why the call ended (0: a normal hangup), text: the detail, origin: who said so. */
  PARLEY_EVENT_CALL_STATE = 3,
  /** An application datagram from the peer (parley_call_send_datagram). call, user_data,
   * peer; data/len: the payload. */
  PARLEY_EVENT_DATAGRAM = 4,
  /** A call's media moved between paths. call, user_data, peer; path_from -> path
   * (parley_path); text: the reason (parley_call_get_stats' direct_error says why a direct
   * path was lost). */
  PARLEY_EVENT_PATH_CHANGED = 5,
  /** An error not tied to a call. error, text, origin; and either room, user_data: the relay
   * refused a room join (the room handle then counts as left: destroy it); or peer with
   * error PARLEY_ERR_MEDIA_KEY: an invite from `peer` that parley refused without ringing,
   * because its media key was forged, stale or replayed (someone learned that this identity
   * is online, which the host may want to know); or neither: the relay's word on something
   * else. */
  PARLEY_EVENT_ERROR = 6,
  /** The voice profile we send with changed, on a call (call, user_data, peer) or in a room
   * (room, user_data). profile_from -> profile (0 best .. 4); quality_reason: a
   * parley_quality_reason; text: its name; timestamp: our media timestamp (48 kHz units)
   * from which it applies. Downgrades apply at once; upgrades at a timestamp agreed with the
   * peer (or the relay), shortly after the event. */
  PARLEY_EVENT_QUALITY_CHANGED = 7,
  /** No longer raised: the host decides on the relay's identity before registration
   * (PARLEY_RELAY_UNTRUSTED and parley_context_trust_relay). The number stays reserved. */
  PARLEY_EVENT_RELAY_TRUSTED = 8,
  /** A room's membership changed, or our join took effect. room, user_data; member_count:
   * members, ourselves included; stream_id: our own stream in the room.
   * parley_room_members lists the members. */
  PARLEY_EVENT_ROOM_UPDATE = 9,
  /** A frame from a room member. room, user_data; peer: the sender's fingerprint, as the
   * relay announced it; stream_id: the sender's stream; sequence, timestamp: the sender's;
   * data/len: the payload exactly as the sender passed it to parley_room_send. */
  PARLEY_EVENT_ROOM_FRAME = 10
} parley_event_type;

/**
 * parley_event_type_name returns the name of event type `type` as the header spells it
 * ("PARLEY_EVENT_CALL_STATE"), for logs and bindings. A number that is not an event type of
 * this library gives "unknown". Never returns NULL; the caller must not free the string.
 */
PARLEY_API const char *parley_event_type_name(int type);

/** parley_context_config.quality_mode; append-only numbering. */
typedef enum parley_quality_mode {
  /** The voice profile follows the path (the default; docs/quality.md). */
  PARLEY_QUALITY_MODE_ADAPTIVE = 0,
  /** Always send with parley_context_config.quality_profile. */
  PARLEY_QUALITY_MODE_FIXED = 1
} parley_quality_mode;

/** Why the voice profile changed; append-only numbering. */
typedef enum parley_quality_reason {
  /** packet loss above what the profile tolerates */
  PARLEY_QUALITY_REASON_LOSS = 1,
  /** a standing queue on the path: it carries less than sent */
  PARLEY_QUALITY_REASON_CONGESTION = 2,
  /** arrival jitter above the profile's limit */
  PARLEY_QUALITY_REASON_JITTER = 3,
  /** an upgrade: conditions were good long enough */
  PARLEY_QUALITY_REASON_RECOVERED = 4,
  /** the peer or the relay (the judge) said so */
  PARLEY_QUALITY_REASON_DIRECTIVE = 5
} parley_quality_reason;

/** The states of a call; append-only numbering. */
typedef enum parley_call_state {
  PARLEY_CALL_INVITING = 1, /**< invite sent, nothing heard yet */
  PARLEY_CALL_RINGING = 2,  /**< the callee's device is ringing */
  PARLEY_CALL_INCOMING = 3, /**< a call to us: accept or reject it */
  PARLEY_CALL_ACTIVE = 4,   /**< audio flows */
  PARLEY_CALL_ENDED = 5     /**< terminal */
} parley_call_state;

/** The states of the context's relay connection; append-only numbering. */
typedef enum parley_relay_state {
  PARLEY_RELAY_IDLE = 0,
  PARLEY_RELAY_CONNECTING = 1,
  PARLEY_RELAY_REGISTERED = 2, /**< calls can be placed and received */
  PARLEY_RELAY_BACKOFF = 3,    /**< reconnecting after a delay */
  PARLEY_RELAY_REPLACED = 4,   /**< the same identity registered elsewhere; not retried */
  /** No relay_fingerprint was configured: the relay presented the identity in the event's
   * `peer`, and nothing of ours reached it (the handshake was aborted before our certificate
   * would have been sent). Nothing goes on until the host decides: parley_context_trust_relay
   * pins it and registers; or destroy the context. */
  PARLEY_RELAY_UNTRUSTED = 5
} parley_relay_state;

/** Who an event's `error` and `text` come from; append-only numbering. Only
 * PARLEY_ORIGIN_LOCAL is parley's own word: show the others as quoted, untrusted text. */
typedef enum parley_origin {
  PARLEY_ORIGIN_LOCAL = 0, /**< this library */
  PARLEY_ORIGIN_RELAY = 1, /**< the relay's signaling */
  /** the peer's signaling, carried by the relay unauthenticated (so the relay could have
   * written it too) */
  PARLEY_ORIGIN_PEER = 2
} parley_origin;

/** The path a call's media takes; append-only numbering. */
typedef enum parley_path {
  PARLEY_PATH_RELAY = 0, /**< through the relay (which cannot read or forge the audio) */
  PARLEY_PATH_DIRECT = 1 /**< peer to peer, identity-pinned QUIC */
} parley_path;

/**
 * One event: a tagged union in flat form. `type` says which fields carry meaning (each
 * parley_event_type lists them); the others are zero. Fields are only ever appended: poll
 * with parley_context_poll_event, whose macro passes the header's sizeof. The pointers
 * (`call`, `room` and `user_data` aside) are valid until the callback returns, or until the
 * next poll on the context.
 */
typedef struct parley_event {
  int type;            /**< a parley_event_type */
  parley_call *call;   /**< the call concerned, or NULL; owned by the host */
  int relay_state;     /**< RELAY_STATE: the new parley_relay_state */
  int call_state;      /**< CALL_STATE, INCOMING_CALL: the new parley_call_state */
  int error;           /**< 0 or a parley_error: why a call ended, the relay was lost, ... */
  int path;            /**< PATH_CHANGED: the new parley_path */
  int path_from;       /**< PATH_CHANGED: the previous parley_path */
  /** The other party's fingerprint: the peer of a call, the sender of a room frame, or (in
   * RELAY_STATE) the relay; "" when none. */
  char peer[PARLEY_FINGERPRINT_BUF_LEN];
  const char *text;    /**< a human-readable reason or name; never NULL ("" if none) */
  const uint8_t *data; /**< DATAGRAM, ROOM_FRAME: the payload */
  size_t len;          /**< DATAGRAM, ROOM_FRAME: the payload's length in bytes */
  int profile;         /**< QUALITY_CHANGED: the new voice profile (0 best .. 4) */
  int profile_from;    /**< QUALITY_CHANGED: the previous voice profile */
  int quality_reason;  /**< QUALITY_CHANGED: a parley_quality_reason */
  /** QUALITY_CHANGED: our media timestamp the change applies from; ROOM_FRAME: the frame's
   * timestamp (the sender's). */
  uint32_t timestamp;
  parley_room *room;   /**< the room concerned (ROOM_*, QUALITY_CHANGED of a room), or NULL */
  /** ROOM_UPDATE: our own stream in the room; ROOM_FRAME: the sender's stream. */
  uint32_t stream_id;
  uint32_t sequence;     /**< ROOM_FRAME: the sender's frame sequence number */
  uint32_t member_count; /**< ROOM_UPDATE: members, ourselves included */
  int origin;          /**< who `error` and `text` come from: a parley_origin */
  /** The user data of the event's call (or, without a call, its room) as last set, or NULL.
   * Read at delivery: a value set after the event was queued is the one delivered. */
  void *user_data;
} parley_event;

/** The event callback, on the context's thread, one event at a time; must not block. The
 * event and what it points to are valid until it returns. */
typedef void (*parley_event_fn)(void *user_data, const parley_event *event);

/** The configuration of parley_context_create; set with parley_context_config_init. */
typedef struct parley_context_config {
  /** sizeof(parley_context_config): lets later versions grow the struct. */
  size_t struct_size;
  /** The relay, "ip:port", "[ipv6]:port" or "host:port". Required. A name is resolved on
   * the context's own thread before every connection (never blocking the caller), so a relay
   * that moves keeps its clients. Its addresses are raced Happy-Eyeballs style (RFC 8305:
   * IPv6 first, the next address 250 ms later unless one connected), so a broken family
   * costs 250 ms. A name that does not resolve, has no address of the sockets' families, or
   * none of whose addresses answers shows as PARLEY_EVENT_RELAY_STATE (backoff) with error
   * PARLEY_ERR_NAME_NOT_FOUND, PARLEY_ERR_NO_USABLE_ADDRESS or
   * PARLEY_ERR_ALL_ADDRESSES_FAILED, and is tried again. On an IPv6-only network with NAT64
   * an IPv4 literal is reached through the network's NAT64 prefix (RFC 7050). */
  const char *relay_address;
  /** The relay's fingerprint (64 hex). NULL: the context learns the identity the relay
   * presents without sending it anything, and waits in PARLEY_RELAY_UNTRUSTED for
   * parley_context_trust_relay (persist the trusted fingerprint and pass it here next time). */
  const char *relay_fingerprint;
  /** Local address to bind, "ip:port" or "[ipv6]:port": one socket, of that family. NULL
   * (the default): a socket of each family, 0.0.0.0 and [::] on one port where it is free
   * (IPv4 only on a host without IPv6). */
  const char *bind_address;
  /** PCM sample rate of push/pull: 8000, 12000, 16000, 24000 or 48000 Hz (0: 48000). */
  int sample_rate;
  /** PCM channels of push/pull, interleaved: 1 or 2 (0: 1). */
  int channels;
  /** The jitter buffer's lowest delay in ms (0: 20). */
  uint32_t jitter_min_ms;
  /** The jitter buffer's highest delay in ms, at most 2000 (0: 500). */
  uint32_t jitter_max_ms;
  /** Non-zero: never try a direct path (calls stay on the relay). */
  int disable_direct;
  /** Non-zero: offer loopback addresses as host candidates (both parties on one machine). */
  int include_loopback;
  /** Events go to this callback; NULL: they queue for parley_context_poll_event (and
   * parley_context_event_fd signals them). */
  parley_event_fn event_callback;
  /** Passed to event_callback untouched; may be NULL. */
  void *event_user_data;
  /** A parley_quality_mode. PARLEY_QUALITY_MODE_ADAPTIVE (0, the default): the voice profile
   * follows the path (docs/quality.md). PARLEY_QUALITY_MODE_FIXED: always send with
   * quality_profile (0 best .. 4);
   * quality reports still go out, directives are ignored and upgrade proposals refused. */
  int quality_mode;
  /** With PARLEY_QUALITY_MODE_FIXED: the profile, 0 (best) .. 4. */
  int quality_profile;
  /** Non-zero: bind the first free UDP port in port_min..port_max (1..65535) on
   * bind_address's IP, whose port must then be 0 (or bind_address NULL). For firewalls that
   * open only a range. No free port: PARLEY_ERR_SOCKET. 0 (the default): any port. */
  int port_min;
  /** The last port of the range (see port_min). */
  int port_max;
  /** PARLEY_QUALITY_MODE_ADAPTIVE only: the best voice profile this side ever sends or agrees to
   * (0 .. 4; 0, the default: no cap), e.g. a data-saver setting. Calls start at the cap if
   * it is worse than the default start (1); upgrade proposals beyond it are refused. */
  int quality_best_profile;
  /** Non-zero: discontinuous transmission. Silence and mute then cost almost nothing on the
   * wire, but anyone who sees the (encrypted) frames learns when each side speaks and when
   * it is muted. 0, the default: every voice frame of a profile has one size whatever is
   * said, silence included (docs/security.md "Frame sizes"). */
  int dtx;
  /** How long an active call may have no path to the peer before it ends with
   * PARLEY_ERR_NO_PATH: the relay unreachable (or not yet holding the call again after it
   * restarted) and no direct path carrying the call. 0: 30000. A call on a working direct
   * path outlives any relay outage; a relay restart alone ends no call (docs/protocol.md
   * "What ends a call"). */
  uint32_t no_path_timeout_ms;
  /** "[ipv6]:port": the IPv6 socket's address next to the IPv4 bind_address (NULL or IPv4),
   * e.g. a fixed port. Calls offer candidates of both families and pair within each (IPv6
   * first), so two parties with IPv6 go direct over it whatever their IPv4 NATs do. NULL:
   * "[::]:0" when bind_address is NULL too, else no IPv6 socket. Not IPv6,
   * or next to an IPv6 bind_address: PARLEY_ERR_ADDRESS_FAMILY. */
  const char *bind_address6;
  /** Non-zero: do not watch the network. 0 (the default): where the OS lets a process watch
   * its interfaces (Linux: rtnetlink; not Android apps), the context notices network changes
   * by itself, 500 ms after the last event of a burst, and acts as on
   * parley_context_network_changed. Hosts that get the platform's word sooner (or on
   * platforms without a watch) call parley_context_network_changed; both together are fine. */
  int disable_network_watch;
  /** STUN servers, comma-separated "host:port", "[ipv6]:port" or "ipv4:port" (at most 8;
   * names resolve on the context's own thread): asked for this device's public mappings next
   * to the relay, when the relay registers and after every network change. Each answer is a
   * server-reflexive candidate of every call, and the mappings together classify the NAT:
   * behind one that maps per destination with sequential ports, calls also offer the ports it
   * will hand out next, so a peer behind a port-restricted NAT can still reach this side
   * directly. Calls never wait for them: a dead server costs nothing. NULL or "": the relay
   * alone. A malformed entry, or more than 8: PARLEY_ERR_INVALID_ARGUMENT. */
  const char *stun_servers;
  /** Non-zero: ask the network's gateway to forward a public port to this context's IPv4
   * socket, by PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD, whichever answers first
   * (Linux finds the gateway in its routing table). The mapping is a candidate any peer can
   * reach, whatever the NATs on either side; it is renewed at half its lifetime, asked again
   * after network changes, and deleted when the context is destroyed. Calls never wait for
   * it beyond its probe (about 1 s at most, only for calls placed while it runs). 0 (the
   * default): off, as it opens a port on the user's router; apps turn it on. */
  int port_mapping;
  /** Fields added by later versions go here. */
} parley_context_config;

/**
 * parley_context_config_init_sized sets every field of `config` to its default (zeros,
 * NULLs) and struct_size to min(`config_size`, the library's sizeof(parley_context_config)),
 * writing only that many bytes. Call it through the parley_context_config_init macro, which
 * passes the header's sizeof; a struct_size below it tells the host that the library is
 * older and ignores the fields past it. `config` must not be NULL; `config_size` must cover
 * at least the fields before quality_mode (the first layout).
 * Returns 0 or PARLEY_ERR_INVALID_ARGUMENT.
 */
PARLEY_API int parley_context_config_init_sized(parley_context_config *config, size_t config_size);

/** Sets `config` (a parley_context_config *) to its defaults: see
 * parley_context_config_init_sized. */
#define parley_context_config_init(config) \
  parley_context_config_init_sized((config), sizeof(parley_context_config))

/**
 * parley_context_create starts a context: its thread, its socket, and the connection to the
 * relay (progress arrives as PARLEY_EVENT_RELAY_STATE). `id` (copied; the caller may free it
 * afterwards), `config` and `out` must not be NULL; on error *out is NULL and the last error
 * message names the offending field.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL, struct_size, a value out of range),
 * PARLEY_ERR_INVALID_HANDLE (`id` was freed),
 * PARLEY_ERR_ADDRESS_INVALID (relay or bind address), PARLEY_ERR_FINGERPRINT_INVALID,
 * PARLEY_ERR_AUDIO_FORMAT, PARLEY_ERR_SOCKET, PARLEY_ERR_CRYPTO, PARLEY_ERR_NO_MEMORY or
 * PARLEY_ERR_INTERNAL.
 */
PARLEY_API int parley_context_create(const parley_identity *id,
                                     const parley_context_config *config,
                                     parley_context **out);

/**
 * parley_context_destroy hangs up every call, closes the relay connection and stops the
 * context's thread; no event is delivered once it returns. Call and room handles stay valid
 * until destroyed (their calls are ended: push refuses, pull gives silence). Queued events
 * that were never polled are discarded (incoming calls among them, which the host never
 * saw, are destroyed by parley). A thread blocked in parley_context_wait_event on it must
 * have returned first (parley_context_wake makes it return).
 * Returns 0 (also for NULL, a no-op), PARLEY_ERR_INVALID_HANDLE (already destroyed: nothing
 * happens), or PARLEY_ERR_WRONG_THREAD when called from the context's own event callback
 * (nothing happens then; destroy it from another thread, e.g. after the callback signalled
 * one).
 */
PARLEY_API int parley_context_destroy(parley_context *ctx);

/**
 * parley_context_poll_event_sized moves the oldest queued event to *event (poll mode only:
 * no event_callback). It writes only the first `event_size` bytes of the event, so fields a
 * later version appends never overrun the host's struct: call it through the
 * parley_context_poll_event macro, which passes the header's sizeof. Pointers in the event
 * stay valid until the next poll or wait on the context. `event_size` must cover at least
 * the fields up to and including `len` (the first layout). Up to 4096 events queue; beyond
 * that new ones are dropped (and logged), incoming calls excepted.
 * Returns 1 (an event), 0 (none), PARLEY_ERR_INVALID_HANDLE, or PARLEY_ERR_INVALID_ARGUMENT
 * (NULL, `event_size` too small, or the context delivers to a callback).
 */
PARLEY_API int parley_context_poll_event_sized(parley_context *ctx, parley_event *event,
                                               size_t event_size);

/** Moves the oldest queued event to `event` (a parley_event *): see
 * parley_context_poll_event_sized. */
#define parley_context_poll_event(ctx, event) \
  parley_context_poll_event_sized((ctx), (event), sizeof(parley_event))

/**
 * parley_context_wait_event_sized is parley_context_poll_event_sized that blocks the calling
 * thread up to `timeout_ms` milliseconds for an event when none is queued (0: do not wait;
 * UINT32_MAX: no limit), for hosts that drain events on a thread of their own. It returns 0
 * at once when parley_context_wake was called (since the last wait returned). Not from a
 * real-time thread. It must not race with parley_context_destroy of the same context (wake
 * the waiting thread and let it return first).
 * Returns as parley_context_poll_event_sized.
 */
PARLEY_API int parley_context_wait_event_sized(parley_context *ctx, parley_event *event,
                                               size_t event_size, uint32_t timeout_ms);

/** Waits up to `timeout_ms` for an event: see parley_context_wait_event_sized. */
#define parley_context_wait_event(ctx, event, timeout_ms) \
  parley_context_wait_event_sized((ctx), (event), sizeof(parley_event), (timeout_ms))

/**
 * parley_context_wake makes the thread blocked in parley_context_wait_event on `ctx` return
 * 0 at once, or, if none is waiting, the next wait (one wake per call; wakes do not add up).
 * For a host stopping its event thread. Callable from any thread, the callback included.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL) or PARLEY_ERR_INVALID_HANDLE.
 */
PARLEY_API int parley_context_wake(parley_context *ctx);

/**
 * parley_context_event_fd writes to *fd a file descriptor that is readable exactly while
 * events are queued (poll mode only), so a host's own loop (poll/epoll/kqueue, asyncio, a
 * game's frame loop) waits for events without polling on a timer: when it is readable,
 * call parley_context_poll_event until it returns 0. (An event dropped because its handle was
 * destroyed may leave it readable until that poll, which then returns 0 and clears it.)
 * The descriptor belongs to the context (an eventfd, or a pipe's read end where eventfd does
 * not exist): do not read, write or close it; it is closed by parley_context_destroy (remove
 * it from your loop first).
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL, or the context delivers to a callback),
 * PARLEY_ERR_INVALID_HANDLE or PARLEY_ERR_IO (the descriptor could not be created).
 */
PARLEY_API int parley_context_event_fd(parley_context *ctx, int *fd);

/**
 * parley_context_fingerprint writes the context's own fingerprint (64 hex + NUL) to `out`
 * (`out_len` >= PARLEY_FINGERPRINT_BUF_LEN). Returns 0, PARLEY_ERR_INVALID_ARGUMENT,
 * PARLEY_ERR_INVALID_HANDLE or PARLEY_ERR_BUFFER_TOO_SMALL.
 */
PARLEY_API int parley_context_fingerprint(parley_context *ctx, char *out, size_t out_len);

/**
 * parley_context_relay_fingerprint writes the relay's fingerprint (64 hex + NUL) to `out`
 * (`out_len` >= PARLEY_FINGERPRINT_BUF_LEN): the configured one, or the one the host trusted
 * with parley_context_trust_relay.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE,
 * PARLEY_ERR_BUFFER_TOO_SMALL or PARLEY_ERR_NOT_REGISTERED (none configured or trusted yet).
 */
PARLEY_API int parley_context_relay_fingerprint(parley_context *ctx, char *out,
                                                size_t out_len);

/**
 * parley_context_trust_relay is the host's trust decision on the relay: it pins
 * `relay_fingerprint` (64 hex; normally the `peer` of the PARLEY_RELAY_UNTRUSTED state event)
 * as the relay's identity for this context and connects; registration follows as
 * PARLEY_EVENT_RELAY_STATE events. A relay presenting another identity is refused
 * (PARLEY_ERR_PEER_IDENTITY in the BACKOFF state event). Also replaces a configured pin. Store
 * the fingerprint and pass it as relay_fingerprint from then on. `ctx` and
 * `relay_fingerprint` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE,
 * PARLEY_ERR_FINGERPRINT_INVALID (not 64 hex digits) or PARLEY_ERR_CLOSED.
 */
PARLEY_API int parley_context_trust_relay(parley_context *ctx, const char *relay_fingerprint);

/**
 * parley_context_network_changed tells the context that the device's network changed: an
 * interface came or went, Wi-Fi handed over to cellular, a VPN started. Call it from the
 * platform's network monitor (Android's ConnectivityManager.NetworkCallback, iOS's
 * NWPathMonitor) whenever the usable networks or their addresses change; extra calls cost a
 * few packets. The context then, without blocking the caller:
 * - refreshes its relay registration on the same connection (QUIC follows it to the new
 *   path) and reconnects at once if the relay does not answer within a second;
 * - learns its public addresses again (STUN to the relay, each family);
 * - restarts ICE on every active call (new credentials, new candidates, through the relay)
 *   while the call's audio keeps flowing on whatever path still works, relay included, and
 *   moves it to the new direct path once one is verified.
 * Calls on the relay also retry the direct path by themselves (2, 4, 8 ... 60 s after each
 * failure); a network change makes the next retry immediate. `ctx` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE or PARLEY_ERR_CLOSED.
 */
PARLEY_API int parley_context_network_changed(parley_context *ctx);

/**
 * parley_call_start calls `peer_fingerprint` (64 hex) through the relay. On success *out is
 * a new handle (progress as PARLEY_EVENT_CALL_STATE); on error *out is NULL and no event for
 * this call ever fires. A peer that is not registered ends the call with
 * PARLEY_ERR_PEER_UNAVAILABLE in its PARLEY_EVENT_CALL_STATE. Returns 0,
 * PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE, PARLEY_ERR_FINGERPRINT_INVALID,
 * PARLEY_ERR_NOT_REGISTERED (the relay connection is not up), PARLEY_ERR_QUEUE_FULL (the
 * relay connection is congested: try again), PARLEY_ERR_CLOSED (the context is being
 * destroyed), PARLEY_ERR_NO_MEMORY, PARLEY_ERR_CRYPTO or PARLEY_ERR_INTERNAL.
 */
PARLEY_API int parley_call_start(parley_context *ctx, const char *peer_fingerprint,
                                 parley_call **out);

/**
 * parley_call_accept answers an incoming call (PARLEY_CALL_INCOMING); it becomes active and
 * audio flows. Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL), PARLEY_ERR_INVALID_HANDLE
 * (destroyed), PARLEY_ERR_CALL_ENDED, PARLEY_ERR_WRONG_CALL_STATE (an outgoing call, or one
 * already accepted), PARLEY_ERR_NOT_REGISTERED or PARLEY_ERR_CLOSED (the context was
 * destroyed).
 */
PARLEY_API int parley_call_accept(parley_call *call);

/** parley_call_reject refuses an incoming call (the caller's call ends with
 * PARLEY_ERR_CALL_REJECTED). Returns as parley_call_accept. */
PARLEY_API int parley_call_reject(parley_call *call);

/** parley_call_hangup ends a call in any state; both sides get PARLEY_CALL_ENDED with error
 * 0. It succeeds once the call ended here, even if the relay could not be told (the peer
 * then learns it when the relay or the direct path times out). Returns as
 * parley_call_accept. */
PARLEY_API int parley_call_hangup(parley_call *call);

/**
 * parley_call_destroy ends the call if it is still going and frees the handle; no event
 * names it afterwards. The host must make sure no audio thread is inside push/pull on it.
 * Safe after parley_context_destroy.
 * Returns 0 (also for NULL, a no-op) or PARLEY_ERR_INVALID_HANDLE (destroyed twice: ignored,
 * and logged).
 */
PARLEY_API int parley_call_destroy(parley_call *call);

/**
 * parley_call_set_user_data attaches the host's `user_data` (any pointer, NULL included) to
 * the call; parley never dereferences it. Events of the call carry it in
 * parley_event.user_data from then on (queued ones too), so a binding needs no map from
 * handles to its own objects. Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL call) or
 * PARLEY_ERR_INVALID_HANDLE.
 */
PARLEY_API int parley_call_set_user_data(parley_call *call, void *user_data);

/**
 * parley_call_user_data returns what parley_call_set_user_data last attached to `call`, or
 * NULL (none yet, NULL or a destroyed handle).
 */
PARLEY_API void *parley_call_user_data(const parley_call *call);

/**
 * parley_call_peer writes the peer's fingerprint (64 hex + NUL) to `out`; also after the
 * call ended. Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE or
 * PARLEY_ERR_BUFFER_TOO_SMALL.
 */
PARLEY_API int parley_call_peer(const parley_call *call, char *out, size_t out_len);

/**
 * parley_call_push_audio hands `frames` frames of microphone PCM (frames x channels
 * interleaved samples, in the context's format) to the encoder, in any chunk size.
 * Real-time safe: never locks, blocks or allocates; one capture thread at a time. Audio
 * pushed before the call is active is dropped when it becomes active (it would only add
 * delay). Returns the number of frames taken (fewer than `frames` when about 200 ms are
 * already waiting: an oversized push is cut, not refused), PARLEY_ERR_INVALID_ARGUMENT (NULL)
 * or PARLEY_ERR_CALL_ENDED.
 */
PARLEY_API int parley_call_push_audio(parley_call *call, const int16_t *pcm, size_t frames);

/**
 * parley_call_pull_audio writes exactly `frames` frames of playout PCM to `out`: the peer's
 * voice through the jitter buffer, concealment where frames are missing, silence before the
 * call is active and after it ends. Real-time safe: never locks, blocks or allocates; one
 * playout thread at a time. Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL) or
 * PARLEY_ERR_CALL_ENDED (`out` holds silence).
 */
PARLEY_API int parley_call_pull_audio(parley_call *call, int16_t *out, size_t frames);

/**
 * parley_call_push_audio_float is parley_call_push_audio for float32 PCM (nominal range
 * -1.0 .. 1.0; values beyond it are clipped, NaN is silence), as AVAudioEngine, AAudio/Oboe
 * and game engines hand it over. The same rules: real-time safe, never locks, blocks or
 * allocates; one capture thread at a time (do not mix it with parley_call_push_audio on one
 * call at the same time). Returns as parley_call_push_audio.
 */
PARLEY_API int parley_call_push_audio_float(parley_call *call, const float *pcm, size_t frames);

/**
 * parley_call_pull_audio_float is parley_call_pull_audio for float32 PCM (-1.0 .. 1.0).
 * Real-time safe: never locks, blocks or allocates; one playout thread at a time.
 * Returns as parley_call_pull_audio.
 */
PARLEY_API int parley_call_pull_audio_float(parley_call *call, float *out, size_t frames);

/**
 * parley_call_set_muted: while muted the peer hears comfort noise (the encoder gets
 * silence: frames of the usual size, or almost nothing with `dtx`). Real-time safe. Returns 0 or
 * PARLEY_ERR_INVALID_ARGUMENT.
 */
PARLEY_API int parley_call_set_muted(parley_call *call, int muted);

/** The largest application datagram parley_call_send_datagram takes, in bytes. */
#define PARLEY_DATAGRAM_MAX 1100

/**
 * parley_call_send_datagram sends an application datagram (the host's own bytes, up to
 * PARLEY_DATAGRAM_MAX) end-to-end encrypted alongside the voice, unreliable and unordered;
 * the peer gets PARLEY_EVENT_DATAGRAM. Returns 0, PARLEY_ERR_INVALID_ARGUMENT,
 * PARLEY_ERR_INVALID_HANDLE, PARLEY_ERR_CALL_NOT_ACTIVE, PARLEY_ERR_CALL_ENDED,
 * PARLEY_ERR_MESSAGE_TOO_LARGE, PARLEY_ERR_QUEUE_FULL or PARLEY_ERR_CLOSED.
 */
PARLEY_API int parley_call_send_datagram(parley_call *call, const void *data, size_t len);

/** Statistics of an active call (parley_call_get_stats). */
typedef struct parley_call_stats {
  size_t struct_size;          /**< sizeof(parley_call_stats), set by the caller */
  int path;                    /**< parley_path in use */
  uint32_t rtt_ms;             /**< of the path in use */
  uint64_t path_changes;       /**< switches between relay and direct so far */
  int64_t time_to_direct_ms;   /**< from active to the first switch to direct; -1: never */
  uint64_t frames_sent;        /**< media frames we sent (voice and datagrams) */
  uint64_t frames_received;    /**< authentic frames we received from the peer */
  uint32_t loss_permille;      /**< of the peer's frames, last second (what we report to it) */
  uint32_t peer_loss_permille; /**< of our frames, as the peer reports */
  int profile;                 /**< the voice profile we send with */
  int fec_loss_hint;           /**< the loss (percent) our encoder protects against */
  uint64_t audio_bytes_sent;   /**< Opus bytes, for a bitrate from two readings */
  uint32_t jitter_delay_ms;    /**< the jitter buffer's current delay */
  uint32_t jitter_target_ms;   /**< and its target */
  uint64_t frames_decoded;     /**< received voice frames played */
  uint64_t fec_recovered;      /**< lost frames rebuilt from Opus FEC */
  uint64_t red_recovered;      /**< lost frames rebuilt from redundant copies */
  uint64_t concealed;          /**< frames of loss concealment */
  uint64_t late;               /**< frames that arrived after their time */
  int muted;                   /**< non-zero while muted (parley_call_set_muted) */
  uint32_t longest_gap_ms;     /**< the longest run of consecutive concealment so far */
  uint64_t quality_changes;    /**< profile changes so far (PARLEY_EVENT_QUALITY_CHANGED) */
  int quality_reason;          /**< the last change's parley_quality_reason, 0 before any */
  uint32_t quality_loss_permille; /**< loss of the peer's frames over the last second */
  /** Direct-path attempts so far: the first ICE run and every restart (a retry, a network
   * change, the peer's). */
  uint32_t direct_attempts;
  /** Why the last direct attempt failed, or why the direct path was lost (a parley_error;
   * e.g. PARLEY_ERR_ICE_FAILED, PARLEY_ERR_TIMEOUT, PARLEY_ERR_PEER_IDENTITY); 0 while the
   * call is direct or no attempt has ended yet. */
  int direct_error;
  /** Verified direct paths that died (closed, or silent until media fell back). */
  uint32_t direct_lost;
  /** Fields added by later versions go here. */
} parley_call_stats;

/**
 * parley_call_get_stats fills *stats (stats->struct_size must be set; an older, smaller
 * layout is filled as far as it goes). Returns 0, PARLEY_ERR_INVALID_ARGUMENT,
 * PARLEY_ERR_INVALID_HANDLE, PARLEY_ERR_CALL_NOT_ACTIVE, PARLEY_ERR_CALL_ENDED or
 * PARLEY_ERR_CLOSED.
 */
PARLEY_API int parley_call_get_stats(parley_call *call, parley_call_stats *stats);

/* ---------------------------------------------------------------------------------------- */
/* Rooms                                                                                    */
/* ---------------------------------------------------------------------------------------- */
/*
 * A room is a group on the relay: each member sends frames once and the relay forwards them
 * to every other member, judging the room's voice profile from what all members report
 * (PARLEY_EVENT_QUALITY_CHANGED with `room` set). Unlike calls, parley neither encrypts nor
 * decodes room frames: the payload goes to the other members exactly as given, and the relay
 * can read it. Seal it with a key the members share (e.g. libsodium's crypto_secretbox with a
 * key agreed over calls or the host's own channel) before parley_room_send.
 */

/** Room ids as text: 32 hex characters (16 bytes). */
#define PARLEY_ROOM_ID_HEX_LEN 32
/** Buffer size for a room id's text including its terminating NUL. */
#define PARLEY_ROOM_ID_BUF_LEN 33

/** One member of a room (parley_room_members). */
typedef struct parley_room_member {
  char fingerprint[PARLEY_FINGERPRINT_BUF_LEN]; /**< the member's identity (64 hex + NUL) */
  uint32_t stream_id; /**< the stream its frames carry (PARLEY_EVENT_ROOM_FRAME.stream_id) */
} parley_room_member;

/**
 * parley_room_id_generate writes a fresh random room id (32 lowercase hex + NUL) to `out`
 * (`out_len` >= PARLEY_ROOM_ID_BUF_LEN), to share with the members out of band.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT or PARLEY_ERR_BUFFER_TOO_SMALL.
 */
PARLEY_API int parley_room_id_generate(char *out, size_t out_len);

/**
 * parley_room_join asks the relay to add this context to room `room_id` (32 hex characters,
 * either case;
 * the room exists while it has members). On success *out is a new handle and membership
 * arrives as PARLEY_EVENT_ROOM_UPDATE; a refusal by the relay (room full, too many rooms for
 * this client: 4 by default) arrives as PARLEY_EVENT_ERROR with `room` set to the handle,
 * which then counts as left. On error *out is NULL and no event names the room. `ctx`, `room_id`
 * and `out` must not be NULL.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL, an id that is not 32 hex characters, or a
 * room this context is in; after parley_room_leave the id may be joined again),
 * PARLEY_ERR_INVALID_HANDLE, PARLEY_ERR_NOT_REGISTERED, PARLEY_ERR_QUEUE_FULL,
 * PARLEY_ERR_CLOSED, PARLEY_ERR_NO_MEMORY or PARLEY_ERR_INTERNAL.
 */
PARLEY_API int parley_room_join(parley_context *ctx, const char *room_id, parley_room **out);

/**
 * parley_room_leave leaves the room; no frame or update of it arrives afterwards (queued ones
 * still may). It succeeds once left here, even if the relay could not be told (the relay
 * drops the members of a client that goes away). The handle stays valid until destroyed.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE, PARLEY_ERR_NOT_A_MEMBER
 * (already left) or PARLEY_ERR_CLOSED.
 */
PARLEY_API int parley_room_leave(parley_room *room);

/**
 * parley_room_destroy leaves the room if still in it and frees the handle; no event names it
 * afterwards. Safe after parley_context_destroy.
 * Returns 0 (also for NULL, a no-op) or PARLEY_ERR_INVALID_HANDLE (destroyed twice: ignored,
 * and logged).
 */
PARLEY_API int parley_room_destroy(parley_room *room);

/**
 * parley_room_set_user_data attaches the host's `user_data` to the room, as
 * parley_call_set_user_data does to a call: events of the room carry it.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT (NULL room) or PARLEY_ERR_INVALID_HANDLE.
 */
PARLEY_API int parley_room_set_user_data(parley_room *room, void *user_data);

/**
 * parley_room_user_data returns what parley_room_set_user_data last attached to `room`, or
 * NULL (none yet, NULL or a destroyed handle).
 */
PARLEY_API void *parley_room_user_data(const parley_room *room);

/**
 * parley_room_members copies the room's members as of the latest PARLEY_EVENT_ROOM_UPDATE
 * (ourselves included) to `out`: on entry *count is the capacity of `out` in entries, on
 * return the number of members. With `out` NULL only the number is reported.
 * Returns 0, PARLEY_ERR_INVALID_ARGUMENT, PARLEY_ERR_INVALID_HANDLE or
 * PARLEY_ERR_BUFFER_TOO_SMALL (*count then holds the number needed).
 */
PARLEY_API int parley_room_members(parley_room *room, parley_room_member *out, size_t *count);

/**
 * parley_room_send sends one frame to the other members through the relay: `payload`
 * (`len` bytes, at most PARLEY_DATAGRAM_MAX; seal it first, see above) with the host's own
 * `sequence` (one more per frame: the relay judges loss from the gaps) and `timestamp`, at
 * voice `profile` (0..4: the one PARLEY_EVENT_QUALITY_CHANGED of the room last named; 1
 * before the first). A room survives a relay reconnection: parley joins it again, and a
 * PARLEY_EVENT_ROOM_UPDATE brings the (possibly new) stream ids.
 * Unreliable and unordered. Returns 0, PARLEY_ERR_INVALID_ARGUMENT,
 * PARLEY_ERR_INVALID_HANDLE, PARLEY_ERR_NOT_A_MEMBER (not a member yet, or left),
 * PARLEY_ERR_MESSAGE_TOO_LARGE, PARLEY_ERR_QUEUE_FULL, PARLEY_ERR_NOT_REGISTERED or
 * PARLEY_ERR_CLOSED.
 */
PARLEY_API int parley_room_send(parley_room *room, uint32_t sequence, uint32_t timestamp,
                                int profile, const void *payload, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* PARLEY_PARLEY_H */

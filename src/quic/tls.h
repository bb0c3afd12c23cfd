// The TLS side of a QUIC connection and QUIC's packet protection, behind a small interface with
// one file per backend (tls_gnutls.cc on ngtcp2's GnuTLS crypto helper, tls_boringssl.cc on
// BoringSSL's QUIC API with parley's own packet protection), chosen at configure time with
// crypto/backend.h's half of the seam (-DPARLEY_TLS). TLS 1.3 only, ALPN
// "parley/1", Ed25519 certificates only, mutual authentication, and no CA: the peer's
// certificate is reduced to its identity fingerprint and handed to a PeerVerifier.
// A server may also offer ALPN "h3" (the relay's HTTP/3 endpoints): it then requests a client
// certificate instead of requiring one, and requires it only when the client negotiates
// "parley/1", so ordinary HTTP/3 clients without a certificate get in.
#ifndef PARLEY_QUIC_TLS_H
#define PARLEY_QUIC_TLS_H

#include <ngtcp2/ngtcp2.h>

#include <functional>
#include <memory>
#include <string>

#include "identity/fingerprint.h"
#include "identity/identity.h"

namespace parley::quic {

extern const char kAlpn[];    // "parley/1"
extern const char kAlpnH3[];  // "h3"

// The negotiated application protocol.
enum class Alpn { kNone, kParley, kH3 };

// The protocol named by `len` bytes at `name` (NULL with 0 allowed); kNone for any other.
Alpn alpn_from_name(const uint8_t *name, size_t len);

// Decides whether a verified peer key is acceptable: returns true to continue the handshake.
// Called on the loop thread, during the handshake, exactly once per connection.
using PeerVerifier = std::function<bool(const identity::Fingerprint &peer)>;

// The endpoint's certificate and key, shared by all its sessions.
class TlsCredentials {
 public:
  virtual ~TlsCredentials() = default;
  // kOk or kErrCrypto.
  static int create(const identity::Identity &id, std::unique_ptr<TlsCredentials> *out);
};

// What a session offers beyond parley/1 with a mandatory client certificate.
struct TlsSessionOptions {
  // Server only (ignored for clients, which only ever offer parley/1): also offer "h3". The
  // client certificate is then requested, required only for parley/1; an h3 client's
  // certificate, if it sends one, must still be a usable Ed25519 certificate and is reduced to
  // its fingerprint, but the PeerVerifier is not asked (HTTP/3 is open to anyone).
  bool offer_h3 = false;
  // Server only: called once the ClientHello chose the ALPN and before the server's transport
  // parameters are encoded, so the connection can set them for the protocol (ngtcp2 allows
  // that until the handshake keys are installed). May run more than once (HelloRetryRequest).
  // Return false to abort the handshake.
  std::function<bool(Alpn)> on_alpn;
};

// How the backend finds the ngtcp2_conn of a TLS session from inside TLS callbacks.
using GetConn = ngtcp2_conn *(*)(void *user_data);

class TlsSession {
 public:
  virtual ~TlsSession() = default;
  enum class Role { kClient, kServer };

  // `get_conn(user_data)` gives the session's ngtcp2_conn (set before the first packet).
  // kOk or kErrCrypto.
  static int create(Role role, TlsCredentials &creds, PeerVerifier verifier,
                    const TlsSessionOptions &options, GetConn get_conn, void *user_data,
                    std::unique_ptr<TlsSession> *out);

  // For ngtcp2_conn_set_tls_native_handle.
  virtual void *native_handle() = 0;
  // Set once the peer's certificate was seen (verified or rejected). An h3 client may have
  // none: then it stays false and peer_fingerprint() is all zeros.
  virtual bool peer_seen() const = 0;
  virtual const identity::Fingerprint &peer_fingerprint() const = 0;
  // True if the handshake failed because the peer's identity was rejected here.
  virtual bool identity_rejected() const = 0;
  // True if the handshake failed because the peer did not negotiate an offered ALPN.
  virtual bool alpn_rejected() const = 0;
  // The negotiated protocol (kNone until the handshake chose one).
  virtual Alpn alpn() const = 0;
  // Human-readable cause of a rejection, for logs and error messages.
  virtual const std::string &rejection_reason() const = 0;
};

// TLS alerts that mean "your certificate was not accepted", as carried in a QUIC
// CRYPTO_ERROR (0x100 + alert): the peer refused our identity.
bool is_identity_alert(uint8_t alert);

// QUIC's crypto outside the TLS session, from the same backend. Each behaves as ngtcp2's
// crypto helper function of the same name (ngtcp2_crypto.h) and returns what it returns.
namespace crypto {

// The largest Retry token generate_retry_token writes.
constexpr size_t kMaxRetryTokenLen = 256;

// Installs the packet-protection and handshake callbacks (client_initial or
// recv_client_initial, recv_crypto_data, encrypt, decrypt, hp_mask, update_key, the deletes,
// get_path_challenge_data, version_negotiation, recv_retry) into `cb`.
void set_callbacks(ngtcp2_callbacks *cb, bool server);
// 0, or -1 on failure.
int generate_stateless_reset_token(uint8_t *token, const uint8_t *secret, size_t secret_len,
                                   const ngtcp2_cid *cid);
// The token's length (at most kMaxRetryTokenLen), or -1.
ngtcp2_ssize generate_retry_token(uint8_t *token, const uint8_t *secret, size_t secret_len,
                                  uint32_t version, const ngtcp2_sockaddr *remote_addr,
                                  ngtcp2_socklen remote_addr_len, const ngtcp2_cid *retry_scid,
                                  const ngtcp2_cid *odcid, ngtcp2_tstamp ts);
// 0 with the original DCID in `odcid`, or -1 (not ours, tampered or older than `timeout`).
int verify_retry_token(ngtcp2_cid *odcid, const uint8_t *token, size_t token_len,
                       const uint8_t *secret, size_t secret_len, uint32_t version,
                       const ngtcp2_sockaddr *remote_addr, ngtcp2_socklen remote_addr_len,
                       const ngtcp2_cid *dcid, ngtcp2_duration timeout, ngtcp2_tstamp ts);
// The packet's length, or -1.
ngtcp2_ssize write_retry(uint8_t *dest, size_t dest_len, uint32_t version, const ngtcp2_cid *dcid,
                         const ngtcp2_cid *scid, const ngtcp2_cid *odcid, const uint8_t *token,
                         size_t token_len);
// A server's Initial CONNECTION_CLOSE before any state: the packet's length, or -1.
ngtcp2_ssize write_connection_close(uint8_t *dest, size_t dest_len, uint32_t version,
                                    const ngtcp2_cid *dcid, const ngtcp2_cid *scid,
                                    uint64_t error_code, const uint8_t *reason,
                                    size_t reason_len);

}  // namespace crypto

}  // namespace parley::quic

#endif

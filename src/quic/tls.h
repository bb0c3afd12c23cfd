// The TLS side of a QUIC connection, behind a small interface so that everything GnuTLS is in
// tls_gnutls.cc (a BoringSSL backend would be one more tls_boringssl.cc). TLS 1.3 only, ALPN
// "parley/1", Ed25519 certificates only, mutual authentication, and no CA: the peer's
// certificate is reduced to its identity fingerprint and handed to a PeerVerifier.
// A server may also offer ALPN "h3" (the relay's HTTP/3 endpoints): it then requests a client
// certificate instead of requiring one, and requires it only when the client negotiates
// "parley/1", so ordinary HTTP/3 clients without a certificate get in.
#ifndef PARLEY_QUIC_TLS_H
#define PARLEY_QUIC_TLS_H

#include <ngtcp2/ngtcp2_crypto.h>

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

class TlsSession {
 public:
  virtual ~TlsSession() = default;
  enum class Role { kClient, kServer };

  // `get_conn`/`user_data` let ngtcp2's crypto helper find the ngtcp2_conn from the TLS
  // session. kOk or kErrCrypto.
  static int create(Role role, TlsCredentials &creds, PeerVerifier verifier,
                    const TlsSessionOptions &options, ngtcp2_crypto_get_conn get_conn,
                    void *user_data, std::unique_ptr<TlsSession> *out);

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

}  // namespace parley::quic

#endif

// GnuTLS backend of tls.h, on ngtcp2's GnuTLS crypto helper. The only file of the quic layer
// that includes GnuTLS.
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "identity/certificate.h"
#include "quic/tls.h"

namespace parley::quic {

namespace {

// TLS 1.3 only, the AEADs QUIC defines, and Ed25519 as the only signature scheme: parley
// certificates carry Ed25519 keys and nothing else is ever acceptable.
constexpr char kPriority[] =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "-SIGN-ALL:+SIGN-EDDSA-ED25519";

class GnutlsCredentials : public TlsCredentials {
 public:
  ~GnutlsCredentials() override {
    if (cred) gnutls_certificate_free_credentials(cred);
  }
  gnutls_certificate_credentials_t cred = nullptr;
};

class GnutlsSession;

// ngtcp2's helper finds its conn_ref through gnutls_session_get_ptr; the verify callback needs
// the session object too. A standard-layout box whose first member is the conn_ref serves both.
struct RefBox {
  ngtcp2_crypto_conn_ref ref;
  GnutlsSession *owner;
  GetConn get_conn;
  void *user_data;
};

ngtcp2_conn *box_conn(ngtcp2_crypto_conn_ref *ref) {
  auto *box = reinterpret_cast<RefBox *>(ref);
  return box->get_conn(box->user_data);
}

class GnutlsSession : public TlsSession {
 public:
  ~GnutlsSession() override {
    if (session) gnutls_deinit(session);
  }
  void *native_handle() override { return session; }
  bool peer_seen() const override { return peer_seen_; }
  const identity::Fingerprint &peer_fingerprint() const override { return peer_; }
  bool identity_rejected() const override { return rejected_; }
  bool alpn_rejected() const override { return alpn_failed_; }
  const std::string &rejection_reason() const override { return reason_; }
  Alpn alpn() const override { return selected(session); }

  // The negotiated protocol, kNone while GnuTLS has none (or one parley never offers).
  static Alpn selected(gnutls_session_t s) {
    gnutls_datum_t proto;
    if (s == nullptr || gnutls_alpn_get_selected_protocol(s, &proto) != 0) return Alpn::kNone;
    return alpn_from_name(proto.data, proto.size);
  }
  // Whether this side offered `a` (h3 only ever on a server that enabled it).
  bool offered(Alpn a) const { return a == Alpn::kParley || (a == Alpn::kH3 && offer_h3); }

  RefBox box{};
  gnutls_session_t session = nullptr;
  PeerVerifier verifier;
  bool offer_h3 = false;
  std::function<bool(Alpn)> on_alpn;
  bool peer_seen_ = false;
  bool rejected_ = false;
  bool alpn_failed_ = false;
  std::string reason_;
  identity::Fingerprint peer_;

  static int verify(gnutls_session_t s);
  static int client_hello_done(gnutls_session_t s, unsigned htype, unsigned when,
                               unsigned incoming, const gnutls_datum_t *msg);
};

// Server: the ClientHello has been processed, so the ALPN is chosen, and nothing of the
// server's flight is written yet (its transport parameters go out in EncryptedExtensions).
int GnutlsSession::client_hello_done(gnutls_session_t s, unsigned, unsigned, unsigned,
                                     const gnutls_datum_t *) {
  auto *self = static_cast<RefBox *>(gnutls_session_get_ptr(s))->owner;
  // GNUTLS_ALPN_MANDATORY only fails a peer that offers other protocols; one that offers
  // none would get through. QUIC requires ALPN (RFC 9001 8.1), so insist here, before the
  // certificate exchange (which would otherwise turn this into a certificate alert).
  const Alpn a = selected(s);
  if (!self->offered(a)) {
    self->alpn_failed_ = true;
    self->reason_ = std::string("peer did not negotiate ALPN ") + kAlpn +
                    (self->offer_h3 ? std::string(" or ") + kAlpnH3 : std::string());
    return GNUTLS_E_NO_APPLICATION_PROTOCOL;
  }
  if (self->on_alpn && !self->on_alpn(a)) {
    self->reason_ = "cannot serve the negotiated protocol";
    return GNUTLS_E_INTERNAL_ERROR;
  }
  return 0;
}

int GnutlsSession::verify(gnutls_session_t s) {
  auto *self = static_cast<RefBox *>(gnutls_session_get_ptr(s))->owner;
  // The client learns the ALPN here (EncryptedExtensions came before the certificate); on a
  // server client_hello_done checked it already.
  const Alpn a = selected(s);
  if (!self->offered(a)) {
    self->alpn_failed_ = true;
    self->reason_ = std::string("peer did not negotiate ALPN ") + kAlpn;
    return -1;
  }
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
  if (certs == nullptr || n == 0) {
    // Only reachable on an h3-enabled server, which requests rather than requires a client
    // certificate (with GNUTLS_CERT_REQUIRE, GnuTLS refuses an empty one before this).
    if (a == Alpn::kH3) return 0;  // an ordinary HTTP/3 client
    self->rejected_ = true;
    self->reason_ = "peer presented no certificate";
    // The alert GNUTLS_CERT_REQUIRE would have sent (certificate_required), so a cert-less
    // parley/1 client sees the same refusal whether or not the server also serves h3.
    return GNUTLS_E_CERTIFICATE_REQUIRED;
  }
  identity::Fingerprint fp;
  if (identity::certificate_fingerprint(certs[0].data, certs[0].size, &fp) != kOk) {
    self->rejected_ = true;
    self->reason_ = std::string("peer certificate unusable: ") + last_error_message();
    return -1;
  }
  self->peer_seen_ = true;
  self->peer_ = fp;
  if (a == Alpn::kH3) return 0;  // known, but HTTP/3 is not pinned
  if (!self->verifier || !self->verifier(fp)) {
    self->rejected_ = true;
    self->reason_ = "peer identity " + fp.hex() + " refused";
    return -1;
  }
  return 0;
}

}  // namespace

int TlsCredentials::create(const identity::Identity &id, std::unique_ptr<TlsCredentials> *out) {
  auto c = std::make_unique<GnutlsCredentials>();
  int r = gnutls_certificate_allocate_credentials(&c->cred);
  if (r < 0) return fail(kErrCrypto, "gnutls credentials: %s", gnutls_strerror(r));
  gnutls_x509_crt_t crt = nullptr;
  gnutls_x509_privkey_t key = nullptr;
  const auto &der = id.certificate_der();
  gnutls_datum_t d = {const_cast<uint8_t *>(der.data()), unsigned(der.size())};
  gnutls_datum_t x = {const_cast<uint8_t *>(id.public_key()), 32};
  gnutls_datum_t k = {const_cast<uint8_t *>(id.seed()), 32};
  r = gnutls_x509_crt_init(&crt);
  if (r >= 0) r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER);
  if (r >= 0) r = gnutls_x509_privkey_init(&key);
  if (r >= 0) r = gnutls_x509_privkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &x, nullptr, &k);
  // Copies both into the credentials; GnuTLS wipes its key copies when they are freed.
  if (r >= 0) r = gnutls_certificate_set_x509_key(c->cred, &crt, 1, key);
  if (key) gnutls_x509_privkey_deinit(key);
  if (crt) gnutls_x509_crt_deinit(crt);
  if (r < 0) return fail(kErrCrypto, "load identity into GnuTLS: %s", gnutls_strerror(r));
  *out = std::move(c);
  return kOk;
}

int TlsSession::create(Role role, TlsCredentials &creds, PeerVerifier verifier,
                       const TlsSessionOptions &options, GetConn get_conn, void *user_data,
                       std::unique_ptr<TlsSession> *out) {
  auto s = std::make_unique<GnutlsSession>();
  s->box.ref.get_conn = box_conn;
  s->box.ref.user_data = nullptr;
  s->box.get_conn = get_conn;
  s->box.user_data = user_data;
  s->box.owner = s.get();
  s->verifier = std::move(verifier);
  const bool server = role == Role::kServer;
  s->offer_h3 = server && options.offer_h3;
  if (server) s->on_alpn = options.on_alpn;
  const unsigned flags =
      (role == Role::kClient ? GNUTLS_CLIENT : GNUTLS_SERVER) | GNUTLS_NO_END_OF_EARLY_DATA;
  int r = gnutls_init(&s->session, flags);
  if (r < 0) return fail(kErrCrypto, "gnutls_init: %s", gnutls_strerror(r));
  const char *err_pos = nullptr;
  r = gnutls_priority_set_direct(s->session, kPriority, &err_pos);
  if (r < 0) return fail(kErrCrypto, "TLS priority at '%s': %s", err_pos, gnutls_strerror(r));
  r = role == Role::kClient ? ngtcp2_crypto_gnutls_configure_client_session(s->session)
                            : ngtcp2_crypto_gnutls_configure_server_session(s->session);
  if (r != 0) return fail(kErrCrypto, "ngtcp2_crypto_gnutls_configure_session failed");
  gnutls_session_set_ptr(s->session, &s->box);
  r = gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE,
                             static_cast<GnutlsCredentials &>(creds).cred);
  if (r < 0) return fail(kErrCrypto, "gnutls_credentials_set: %s", gnutls_strerror(r));
  if (server) {
    // With h3 the certificate is optional at the TLS level; verify() requires it for parley/1.
    gnutls_certificate_server_set_request(s->session,
                                          s->offer_h3 ? GNUTLS_CERT_REQUEST : GNUTLS_CERT_REQUIRE);
    gnutls_handshake_set_hook_function(s->session, GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                       GNUTLS_HOOK_POST, GnutlsSession::client_hello_done);
  }
  gnutls_session_set_verify_function(s->session, GnutlsSession::verify);
  gnutls_datum_t alpn[2] = {
      {reinterpret_cast<unsigned char *>(const_cast<char *>(kAlpn)), unsigned(std::strlen(kAlpn))},
      {reinterpret_cast<unsigned char *>(const_cast<char *>(kAlpnH3)),
       unsigned(std::strlen(kAlpnH3))}};
  // Server precedence: a client offering both gets parley/1.
  const unsigned alpn_flags =
      GNUTLS_ALPN_MANDATORY | (server ? unsigned(GNUTLS_ALPN_SERVER_PRECEDENCE) : 0u);
  r = gnutls_alpn_set_protocols(s->session, alpn, s->offer_h3 ? 2 : 1, alpn_flags);
  if (r < 0) return fail(kErrCrypto, "gnutls_alpn_set_protocols: %s", gnutls_strerror(r));
  *out = std::move(s);
  return kOk;
}

namespace crypto {

static_assert(kMaxRetryTokenLen >= NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN, "Retry token buffer");

void set_callbacks(ngtcp2_callbacks *cb, bool server) {
  if (server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
}

int generate_stateless_reset_token(uint8_t *token, const uint8_t *secret, size_t secret_len,
                                   const ngtcp2_cid *cid) {
  return ngtcp2_crypto_generate_stateless_reset_token(token, secret, secret_len, cid);
}

ngtcp2_ssize generate_retry_token(uint8_t *token, const uint8_t *secret, size_t secret_len,
                                  uint32_t version, const ngtcp2_sockaddr *remote_addr,
                                  ngtcp2_socklen remote_addr_len, const ngtcp2_cid *retry_scid,
                                  const ngtcp2_cid *odcid, ngtcp2_tstamp ts) {
  return ngtcp2_crypto_generate_retry_token(token, secret, secret_len, version, remote_addr,
                                            remote_addr_len, retry_scid, odcid, ts);
}

int verify_retry_token(ngtcp2_cid *odcid, const uint8_t *token, size_t token_len,
                       const uint8_t *secret, size_t secret_len, uint32_t version,
                       const ngtcp2_sockaddr *remote_addr, ngtcp2_socklen remote_addr_len,
                       const ngtcp2_cid *dcid, ngtcp2_duration timeout, ngtcp2_tstamp ts) {
  return ngtcp2_crypto_verify_retry_token(odcid, token, token_len, secret, secret_len, version,
                                          remote_addr, remote_addr_len, dcid, timeout, ts);
}

ngtcp2_ssize write_retry(uint8_t *dest, size_t dest_len, uint32_t version, const ngtcp2_cid *dcid,
                         const ngtcp2_cid *scid, const ngtcp2_cid *odcid, const uint8_t *token,
                         size_t token_len) {
  return ngtcp2_crypto_write_retry(dest, dest_len, version, dcid, scid, odcid, token, token_len);
}

ngtcp2_ssize write_connection_close(uint8_t *dest, size_t dest_len, uint32_t version,
                                    const ngtcp2_cid *dcid, const ngtcp2_cid *scid,
                                    uint64_t error_code, const uint8_t *reason,
                                    size_t reason_len) {
  return ngtcp2_crypto_write_connection_close(dest, dest_len, version, dcid, scid, error_code,
                                              reason, reason_len);
}

}  // namespace crypto

}  // namespace parley::quic

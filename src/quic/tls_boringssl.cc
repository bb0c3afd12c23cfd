// BoringSSL backend of tls.h. ngtcp2's BoringSSL crypto helper is not packaged in Debian, so
// this file drives BoringSSL's QUIC API (SSL_QUIC_METHOD) and does QUIC's packet protection
// (RFC 9001 5: key derivation, AEAD, header protection, key update, Retry) on BoringSSL's
// primitives itself. The only file of the quic layer that includes BoringSSL. Builds against
// upstream BoringSSL and AWS-LC as well (docs/building.md).
//
// Peer verification: BoringSSL calls the custom verify callback when the peer's Certificate
// arrives, before its CertificateVerify is checked. The pin is checked there; a pinned
// certificate presented without its key still fails the handshake at CertificateVerify, so
// a connection completes only with a peer that holds the pinned key.
//
// Why this file is long: the crypto seam gives each backend one file in this layer
// (tests/integration/crypto_seam.sh names it), and on BoringSSL that file also does what
// ngtcp2's GnuTLS helper library does for the other backend: packet protection, key update and
// Retry tokens. The TLS session hands its secrets to the packet protection in install_secret().
#include <openssl/aead.h>
#include <openssl/aes.h>
#include <openssl/chacha.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>
#include <openssl/pool.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "identity/certificate.h"
#include "quic/tls.h"

namespace parley::quic {

namespace {

// --- QUIC packet protection on BoringSSL primitives -------------------------------------

// The header-protection cipher, ngtcp2_crypto_cipher's native handle.
enum class HpCipher { kAes128, kAes256, kChaCha20 };
HpCipher hp_aes128 = HpCipher::kAes128, hp_aes256 = HpCipher::kAes256,
         hp_chacha20 = HpCipher::kChaCha20;

// ngtcp2_crypto_cipher_ctx's native handle: the expanded header-protection key.
struct HpContext {
  HpCipher type;
  AES_KEY aes;
  uint8_t chacha_key[32];
};

// RFC 9001 5.2 and RFC 9369 3.3.1.
constexpr uint8_t kInitialSaltV1[] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                      0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr uint8_t kInitialSaltV2[] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                      0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};
constexpr size_t kInitialSecretLen = 32, kInitialKeyLen = 16, kIvLen = 12;

// RFC 9001 6.6: confidentiality and integrity limits per AEAD.
constexpr uint64_t kMaxEncryptionAesGcm = 1ull << 23, kMaxDecryptFailAesGcm = 1ull << 52;
constexpr uint64_t kMaxEncryptionChaCha = 1ull << 62, kMaxDecryptFailChaCha = 1ull << 36;

struct Labels {
  const char *key, *iv, *hp, *ku;
};
Labels labels_for(uint32_t version) {
  if (version == NGTCP2_PROTO_VER_V2) return {"quicv2 key", "quicv2 iv", "quicv2 hp", "quicv2 ku"};
  return {"quic key", "quic iv", "quic hp", "quic ku"};
}

// Wipes a stack buffer of key material when it goes out of scope.
template <size_t N>
struct KeyBuf {
  uint8_t b[N];
  ~KeyBuf() { OPENSSL_cleanse(b, N); }
};

// RFC 8446 7.1 HKDF-Expand-Label with an empty context.
bool expand_label(uint8_t *out, size_t out_len, const EVP_MD *md, const uint8_t *secret,
                  size_t secret_len, const char *label) {
  static const char kPrefix[] = "tls13 ";
  const size_t label_len = std::strlen(label);
  uint8_t info[2 + 1 + sizeof kPrefix - 1 + 32 + 1];
  if (label_len > 32) return false;
  size_t n = 0;
  info[n++] = uint8_t(out_len >> 8);
  info[n++] = uint8_t(out_len);
  info[n++] = uint8_t(sizeof kPrefix - 1 + label_len);
  std::memcpy(info + n, kPrefix, sizeof kPrefix - 1);
  n += sizeof kPrefix - 1;
  std::memcpy(info + n, label, label_len);
  n += label_len;
  info[n++] = 0;
  return HKDF_expand(out, out_len, md, secret, secret_len, info, n) == 1;
}

ngtcp2_crypto_aead make_aead(const EVP_AEAD *a) {
  ngtcp2_crypto_aead aead;
  aead.native_handle = const_cast<EVP_AEAD *>(a);
  aead.max_overhead = EVP_AEAD_max_overhead(a);
  return aead;
}

ngtcp2_crypto_ctx initial_ctx() {
  ngtcp2_crypto_ctx c{};
  c.aead = make_aead(EVP_aead_aes_128_gcm());
  c.md.native_handle = const_cast<EVP_MD *>(EVP_sha256());
  c.hp.native_handle = &hp_aes128;
  return c;
}

// The crypto context of a negotiated TLS 1.3 cipher suite; false for one QUIC cannot use.
bool ctx_for_cipher(const SSL_CIPHER *cipher, ngtcp2_crypto_ctx *c) {
  struct Suite {
    uint16_t id;
    const EVP_AEAD *(*aead)();
    const EVP_MD *(*md)();
    HpCipher *hp;
    uint64_t max_encryption, max_decryption_failure;
  };
  static const Suite kSuites[] = {
      {0x1301, EVP_aead_aes_128_gcm, EVP_sha256, &hp_aes128, kMaxEncryptionAesGcm,
       kMaxDecryptFailAesGcm},  // TLS_AES_128_GCM_SHA256
      {0x1302, EVP_aead_aes_256_gcm, EVP_sha384, &hp_aes256, kMaxEncryptionAesGcm,
       kMaxDecryptFailAesGcm},  // TLS_AES_256_GCM_SHA384
      {0x1303, EVP_aead_chacha20_poly1305, EVP_sha256, &hp_chacha20, kMaxEncryptionChaCha,
       kMaxDecryptFailChaCha},  // TLS_CHACHA20_POLY1305_SHA256
  };
  const uint16_t id = SSL_CIPHER_get_protocol_id(cipher);
  for (const Suite &su : kSuites) {
    if (su.id != id) continue;
    *c = ngtcp2_crypto_ctx{};
    c->aead = make_aead(su.aead());
    c->md.native_handle = const_cast<EVP_MD *>(su.md());
    c->hp.native_handle = su.hp;
    c->max_encryption = su.max_encryption;
    c->max_decryption_failure = su.max_decryption_failure;
    return true;
  }
  return false;
}

const EVP_AEAD *aead_of(const ngtcp2_crypto_aead *a) {
  return static_cast<const EVP_AEAD *>(a->native_handle);
}
const EVP_MD *md_of(const ngtcp2_crypto_md *m) { return static_cast<const EVP_MD *>(m->native_handle); }

bool aead_ctx_init(ngtcp2_crypto_aead_ctx *out, const ngtcp2_crypto_aead *aead,
                   const uint8_t *key) {
  const EVP_AEAD *a = aead_of(aead);
  out->native_handle =
      EVP_AEAD_CTX_new(a, key, EVP_AEAD_key_length(a), EVP_AEAD_DEFAULT_TAG_LENGTH);
  return out->native_handle != nullptr;
}

void aead_ctx_free(ngtcp2_crypto_aead_ctx *c) {
  if (c->native_handle) EVP_AEAD_CTX_free(static_cast<EVP_AEAD_CTX *>(c->native_handle));
  c->native_handle = nullptr;
}

bool hp_ctx_init(ngtcp2_crypto_cipher_ctx *out, const ngtcp2_crypto_cipher *hp,
                 const uint8_t *key) {
  // BoringSSL's allocator, like the AEAD contexts beside it: allocation failure is a plain
  // null, and nothing depends on the host's operator new.
  auto *c = static_cast<HpContext *>(OPENSSL_malloc(sizeof(HpContext)));
  if (c == nullptr) return false;
  c->type = *static_cast<const HpCipher *>(hp->native_handle);
  bool ok = true;
  switch (c->type) {
    case HpCipher::kAes128: ok = AES_set_encrypt_key(key, 128, &c->aes) == 0; break;
    case HpCipher::kAes256: ok = AES_set_encrypt_key(key, 256, &c->aes) == 0; break;
    case HpCipher::kChaCha20: std::memcpy(c->chacha_key, key, sizeof c->chacha_key); break;
  }
  if (!ok) {
    OPENSSL_cleanse(c, sizeof *c);
    OPENSSL_free(c);
    return false;
  }
  out->native_handle = c;
  return true;
}

void hp_ctx_free(ngtcp2_crypto_cipher_ctx *c) {
  if (auto *h = static_cast<HpContext *>(c->native_handle)) {
    OPENSSL_free(h);  // wipes as it frees
  }
  c->native_handle = nullptr;
}

size_t key_len(const ngtcp2_crypto_aead *aead) { return EVP_AEAD_key_length(aead_of(aead)); }
size_t iv_len(const ngtcp2_crypto_aead *aead) {
  const size_t n = EVP_AEAD_nonce_length(aead_of(aead));
  return n < 8 ? 8 : n;
}

// RFC 9001 5.1: key, IV and (when `hp` is set) header-protection key from a secret.
bool derive_packet_keys(uint8_t *key, uint8_t *iv, uint8_t *hp, uint32_t version,
                        const ngtcp2_crypto_ctx &c, const uint8_t *secret, size_t secret_len) {
  const Labels l = labels_for(version);
  const EVP_MD *md = md_of(&c.md);
  return expand_label(key, key_len(&c.aead), md, secret, secret_len, l.key) &&
         expand_label(iv, iv_len(&c.aead), md, secret, secret_len, l.iv) &&
         (hp == nullptr || expand_label(hp, key_len(&c.aead), md, secret, secret_len, l.hp));
}

// RFC 9001 5.2: the Initial secrets of both directions from the client's first DCID.
bool derive_initial_secrets(uint8_t *client, uint8_t *server, uint32_t version,
                            const ngtcp2_cid *client_dcid) {
  const uint8_t *salt = version == NGTCP2_PROTO_VER_V2 ? kInitialSaltV2 : kInitialSaltV1;
  KeyBuf<EVP_MAX_MD_SIZE> initial;
  size_t n = 0;
  return HKDF_extract(initial.b, &n, EVP_sha256(), client_dcid->data, client_dcid->datalen, salt,
                      sizeof kInitialSaltV1) == 1 &&
         expand_label(client, kInitialSecretLen, EVP_sha256(), initial.b, n, "client in") &&
         expand_label(server, kInitialSecretLen, EVP_sha256(), initial.b, n, "server in");
}

// Keys of one direction of the Initial level, ready for ngtcp2.
struct DirectionKeys {
  ngtcp2_crypto_aead_ctx aead{};
  ngtcp2_crypto_cipher_ctx hp{};
  uint8_t iv[kIvLen];
  ~DirectionKeys() {
    aead_ctx_free(&aead);
    hp_ctx_free(&hp);
  }
  bool make(const ngtcp2_crypto_ctx &c, uint32_t version, const uint8_t *secret) {
    KeyBuf<kInitialKeyLen> key, hp_key;
    return derive_packet_keys(key.b, iv, hp_key.b, version, c, secret, kInitialSecretLen) &&
           aead_ctx_init(&aead, &c.aead, key.b) && hp_ctx_init(&hp, &c.hp, hp_key.b);
  }
  // ngtcp2 owns them once installed.
  void release() {
    aead.native_handle = nullptr;
    hp.native_handle = nullptr;
  }
};

const uint8_t *retry_key(uint32_t version) {
  return reinterpret_cast<const uint8_t *>(version == NGTCP2_PROTO_VER_V2 ? NGTCP2_RETRY_KEY_V2
                                                                           : NGTCP2_RETRY_KEY_V1);
}

// Installs the Initial keys for `version` from the client's DCID (RFC 9001 5.2). `vneg`
// installs them as the compatible-version-negotiation keys instead.
int install_initial_keys(ngtcp2_conn *conn, uint32_t version, const ngtcp2_cid *client_dcid,
                         bool vneg) {
  const bool server = ngtcp2_conn_is_server(conn);
  ngtcp2_crypto_ctx c = initial_ctx();
  if (!vneg) ngtcp2_conn_set_initial_crypto_ctx(conn, &c);
  KeyBuf<kInitialSecretLen> client, server_secret;
  if (!derive_initial_secrets(client.b, server_secret.b, version, client_dcid)) return -1;
  DirectionKeys rx, tx;
  if (!rx.make(c, version, server ? client.b : server_secret.b) ||
      !tx.make(c, version, server ? server_secret.b : client.b)) {
    return -1;
  }
  int r;
  if (vneg) {
    r = ngtcp2_conn_install_vneg_initial_key(conn, version, &rx.aead, rx.iv, &rx.hp, &tx.aead,
                                             tx.iv, &tx.hp, kIvLen);
  } else {
    r = ngtcp2_conn_install_initial_key(conn, &rx.aead, rx.iv, &rx.hp, &tx.aead, tx.iv, &tx.hp,
                                        kIvLen);
  }
  if (r != 0) return -1;
  rx.release();
  tx.release();
  if (!vneg && !server && !ngtcp2_conn_after_retry(conn)) {
    // The client checks a Retry's integrity tag with this fixed key (RFC 9001 5.8).
    ngtcp2_crypto_aead retry = make_aead(EVP_aead_aes_128_gcm());
    ngtcp2_crypto_aead_ctx retry_ctx{};
    if (!aead_ctx_init(&retry_ctx, &retry, retry_key(version))) return -1;
    ngtcp2_conn_set_retry_aead(conn, &retry, &retry_ctx);
  }
  return 0;
}

// --- ngtcp2 callbacks ---------------------------------------------------------------------

int encrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
               const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
               size_t plaintext_len, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
               size_t aad_len) {
  size_t out_len = 0;
  if (EVP_AEAD_CTX_seal(static_cast<EVP_AEAD_CTX *>(aead_ctx->native_handle), dest, &out_len,
                        plaintext_len + aead->max_overhead, nonce, nonce_len, plaintext,
                        plaintext_len, aad, aad_len) != 1) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int decrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
               const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
               size_t ciphertext_len, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
               size_t aad_len) {
  (void)aead;
  size_t out_len = 0;
  if (EVP_AEAD_CTX_open(static_cast<EVP_AEAD_CTX *>(aead_ctx->native_handle), dest, &out_len,
                        ciphertext_len, nonce, nonce_len, ciphertext, ciphertext_len, aad,
                        aad_len) != 1) {
    ERR_clear_error();  // an undecryptable packet is routine, not an error to keep
    return NGTCP2_ERR_DECRYPT;
  }
  return 0;
}

// RFC 9001 5.4.3 (AES-ECB of the sample) and 5.4.4 (ChaCha20, counter and nonce from it).
int hp_mask_cb(uint8_t *dest, const ngtcp2_crypto_cipher *hp,
               const ngtcp2_crypto_cipher_ctx *hp_ctx, const uint8_t *sample) {
  (void)hp;
  static const uint8_t kZeros[16] = {0};
  const auto *c = static_cast<const HpContext *>(hp_ctx->native_handle);
  if (c->type == HpCipher::kChaCha20) {
    const uint32_t counter = uint32_t(sample[0]) | uint32_t(sample[1]) << 8 |
                             uint32_t(sample[2]) << 16 | uint32_t(sample[3]) << 24;
    CRYPTO_chacha_20(dest, kZeros, sizeof kZeros, c->chacha_key, sample + 4, counter);
  } else {
    AES_ecb_encrypt(sample, dest, &c->aes, AES_ENCRYPT);
  }
  return 0;
}

int update_key_cb(ngtcp2_conn *conn, uint8_t *rx_secret, uint8_t *tx_secret,
                  ngtcp2_crypto_aead_ctx *rx_aead_ctx, uint8_t *rx_iv,
                  ngtcp2_crypto_aead_ctx *tx_aead_ctx, uint8_t *tx_iv,
                  const uint8_t *current_rx_secret, const uint8_t *current_tx_secret,
                  size_t secret_len, void *) {
  const ngtcp2_crypto_ctx *c = ngtcp2_conn_get_crypto_ctx(conn);
  const uint32_t version = ngtcp2_conn_get_negotiated_version(conn);
  const char *ku = labels_for(version).ku;
  const EVP_MD *md = md_of(&c->md);
  KeyBuf<64> rx_key, tx_key;
  // RFC 9001 6.1: the next secrets, then keys and IVs from them (header protection stays).
  if (!expand_label(rx_secret, secret_len, md, current_rx_secret, secret_len, ku) ||
      !expand_label(tx_secret, secret_len, md, current_tx_secret, secret_len, ku) ||
      !derive_packet_keys(rx_key.b, rx_iv, nullptr, version, *c, rx_secret, secret_len) ||
      !derive_packet_keys(tx_key.b, tx_iv, nullptr, version, *c, tx_secret, secret_len)) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (!aead_ctx_init(rx_aead_ctx, &c->aead, rx_key.b)) return NGTCP2_ERR_CALLBACK_FAILURE;
  if (!aead_ctx_init(tx_aead_ctx, &c->aead, tx_key.b)) {
    aead_ctx_free(rx_aead_ctx);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

void delete_aead_ctx_cb(ngtcp2_conn *, ngtcp2_crypto_aead_ctx *c, void *) { aead_ctx_free(c); }
void delete_cipher_ctx_cb(ngtcp2_conn *, ngtcp2_crypto_cipher_ctx *c, void *) { hp_ctx_free(c); }

int path_challenge_data_cb(ngtcp2_conn *, uint8_t *data, void *) {
  randombytes_buf(data, NGTCP2_PATH_CHALLENGE_DATALEN);
  return 0;
}

int version_negotiation_cb(ngtcp2_conn *conn, uint32_t version, const ngtcp2_cid *client_dcid,
                           void *) {
  return install_initial_keys(conn, version, client_dcid, true) == 0
             ? 0
             : NGTCP2_ERR_CALLBACK_FAILURE;
}

int recv_retry_cb(ngtcp2_conn *conn, const ngtcp2_pkt_hd *hd, void *) {
  return install_initial_keys(conn, ngtcp2_conn_get_client_chosen_version(conn), &hd->scid,
                              false) == 0
             ? 0
             : NGTCP2_ERR_CALLBACK_FAILURE;
}

int recv_client_initial_cb(ngtcp2_conn *conn, const ngtcp2_cid *dcid, void *) {
  return install_initial_keys(conn, ngtcp2_conn_get_client_chosen_version(conn), dcid, false) ==
                 0
             ? 0
             : NGTCP2_ERR_CALLBACK_FAILURE;
}

int read_write_crypto_data(ngtcp2_conn *conn, ngtcp2_encryption_level level,
                           const uint8_t *data, size_t len);
int set_local_transport_params(ngtcp2_conn *conn, SSL *ssl);

int client_initial_cb(ngtcp2_conn *conn, void *) {
  auto *ssl = static_cast<SSL *>(ngtcp2_conn_get_tls_native_handle(conn));
  if (install_initial_keys(conn, ngtcp2_conn_get_client_chosen_version(conn),
                           ngtcp2_conn_get_dcid(conn), false) != 0 ||
      set_local_transport_params(conn, ssl) != 0 ||
      read_write_crypto_data(conn, NGTCP2_ENCRYPTION_LEVEL_INITIAL, nullptr, 0) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int recv_crypto_data_cb(ngtcp2_conn *conn, ngtcp2_encryption_level level, uint64_t,
                        const uint8_t *data, size_t len, void *) {
  if (read_write_crypto_data(conn, level, data, len) != 0) {
    const int e = ngtcp2_conn_get_tls_error(conn);
    return e != 0 ? e : NGTCP2_ERR_CRYPTO;
  }
  return 0;
}

// --- the TLS session ----------------------------------------------------------------------

class BoringCredentials : public TlsCredentials {
 public:
  ~BoringCredentials() override { SSL_CTX_free(ctx); }
  SSL_CTX *ctx = nullptr;
};

class BoringSession : public TlsSession {
 public:
  ~BoringSession() override { SSL_free(ssl); }
  void *native_handle() override { return ssl; }
  bool peer_seen() const override { return peer_seen_; }
  const identity::Fingerprint &peer_fingerprint() const override { return peer_; }
  bool identity_rejected() const override { return rejected_; }
  bool alpn_rejected() const override { return alpn_failed_; }
  const std::string &rejection_reason() const override { return reason_; }
  Alpn alpn() const override { return selected(ssl); }

  static Alpn selected(const SSL *s) {
    const uint8_t *p = nullptr;
    unsigned n = 0;
    if (s == nullptr) return Alpn::kNone;
    SSL_get0_alpn_selected(s, &p, &n);
    return alpn_from_name(p, n);
  }
  static BoringSession *of(const SSL *s) { return static_cast<BoringSession *>(SSL_get_app_data(s)); }
  ngtcp2_conn *conn() const { return get_conn(user_data); }

  static ssl_verify_result_t verify(SSL *s, uint8_t *out_alert);
  static int select_alpn(SSL *s, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                         unsigned in_len, void *);
  // Server: a parley/1 client must have presented a certificate (an h3-offering server only
  // requests one, so BoringSSL lets a cert-less client through to here).
  bool check_completed_handshake(uint8_t *alert);

  SSL *ssl = nullptr;
  GetConn get_conn = nullptr;
  void *user_data = nullptr;
  PeerVerifier verifier;
  bool server = false;
  bool offer_h3 = false;
  std::function<bool(Alpn)> on_alpn;
  bool peer_seen_ = false;
  bool rejected_ = false;
  bool alpn_failed_ = false;
  std::string reason_;
  identity::Fingerprint peer_;
};

ssl_verify_result_t BoringSession::verify(SSL *s, uint8_t *out_alert) {
  BoringSession *self = of(s);
  const Alpn a = selected(s);
  if (a == Alpn::kNone || (a == Alpn::kH3 && !self->offer_h3)) {
    self->alpn_failed_ = true;
    self->reason_ = std::string("peer did not negotiate ALPN ") + kAlpn;
    *out_alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return ssl_verify_invalid;
  }
  const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(s);
  if (chain == nullptr || sk_CRYPTO_BUFFER_num(chain) == 0) {
    if (a == Alpn::kH3) return ssl_verify_ok;
    self->rejected_ = true;
    self->reason_ = "peer presented no certificate";
    *out_alert = SSL_AD_CERTIFICATE_REQUIRED;
    return ssl_verify_invalid;
  }
  const CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
  identity::Fingerprint fp;
  if (identity::certificate_fingerprint(CRYPTO_BUFFER_data(leaf), CRYPTO_BUFFER_len(leaf), &fp) !=
      kOk) {
    self->rejected_ = true;
    self->reason_ = std::string("peer certificate unusable: ") + last_error_message();
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return ssl_verify_invalid;
  }
  self->peer_seen_ = true;
  self->peer_ = fp;
  if (a == Alpn::kH3) return ssl_verify_ok;  // known, but HTTP/3 is not pinned
  if (!self->verifier || !self->verifier(fp)) {
    self->rejected_ = true;
    self->reason_ = "peer identity " + fp.hex() + " refused";
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return ssl_verify_invalid;
  }
  return ssl_verify_ok;
}

int BoringSession::select_alpn(SSL *s, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                               unsigned in_len, void *) {
  BoringSession *self = of(s);
  // Server precedence: a client offering both gets parley/1.
  auto offered = [&](const char *name) -> const uint8_t * {
    const size_t n = std::strlen(name);
    for (unsigned i = 0; i < in_len;) {
      const unsigned len = in[i];
      if (i + 1 + len > in_len) return nullptr;
      if (len == n && std::memcmp(in + i + 1, name, n) == 0) return in + i + 1;
      i += 1 + len;
    }
    return nullptr;
  };
  Alpn a = Alpn::kNone;
  const uint8_t *p = offered(kAlpn);
  if (p != nullptr) {
    a = Alpn::kParley;
  } else if (self->offer_h3 && (p = offered(kAlpnH3)) != nullptr) {
    a = Alpn::kH3;
  }
  if (a == Alpn::kNone) {
    self->alpn_failed_ = true;
    self->reason_ = std::string("peer did not negotiate ALPN ") + kAlpn +
                    (self->offer_h3 ? std::string(" or ") + kAlpnH3 : std::string());
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
  }
  if (self->on_alpn && !self->on_alpn(a)) {
    self->reason_ = "cannot serve the negotiated protocol";
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = p;
  *out_len = uint8_t(a == Alpn::kParley ? std::strlen(kAlpn) : std::strlen(kAlpnH3));
  return SSL_TLSEXT_ERR_OK;
}

bool BoringSession::check_completed_handshake(uint8_t *alert) {
  if (!server || peer_seen_ || selected(ssl) != Alpn::kParley) return true;
  rejected_ = true;
  reason_ = "peer presented no certificate";
  *alert = SSL_AD_CERTIFICATE_REQUIRED;
  return false;
}

int set_local_transport_params(ngtcp2_conn *conn, SSL *ssl) {
  uint8_t buf[256];
  const ngtcp2_ssize n = ngtcp2_conn_encode_local_transport_params(conn, buf, sizeof buf);
  if (n < 0 || SSL_set_quic_transport_params(ssl, buf, size_t(n)) != 1) return -1;
  return 0;
}

int set_remote_transport_params(ngtcp2_conn *conn, SSL *ssl) {
  const uint8_t *tp = nullptr;
  size_t len = 0;
  SSL_get_peer_quic_transport_params(ssl, &tp, &len);
  const int r = ngtcp2_conn_decode_and_set_remote_transport_params(conn, tp, len);
  if (r != 0) {
    ngtcp2_conn_set_tls_error(conn, r);
    return -1;
  }
  return 0;
}

ngtcp2_encryption_level from_ssl(ssl_encryption_level_t l) {
  switch (l) {
    case ssl_encryption_initial: return NGTCP2_ENCRYPTION_LEVEL_INITIAL;
    case ssl_encryption_early_data: return NGTCP2_ENCRYPTION_LEVEL_0RTT;
    case ssl_encryption_handshake: return NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE;
    case ssl_encryption_application: break;
  }
  return NGTCP2_ENCRYPTION_LEVEL_1RTT;
}

ssl_encryption_level_t to_ssl(ngtcp2_encryption_level l) {
  switch (l) {
    case NGTCP2_ENCRYPTION_LEVEL_INITIAL: return ssl_encryption_initial;
    case NGTCP2_ENCRYPTION_LEVEL_0RTT: return ssl_encryption_early_data;
    case NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE: return ssl_encryption_handshake;
    case NGTCP2_ENCRYPTION_LEVEL_1RTT: break;
  }
  return ssl_encryption_application;
}

// Derives and installs one direction's keys for the Handshake or 1-RTT level, exchanging
// transport parameters at the points RFC 9001 8.2 makes them available.
int install_secret(SSL *ssl, ssl_encryption_level_t ssl_level, const SSL_CIPHER *cipher,
                   const uint8_t *secret, size_t secret_len, bool rx) {
  BoringSession *self = BoringSession::of(ssl);
  ngtcp2_conn *conn = self->conn();
  const ngtcp2_encryption_level level = from_ssl(ssl_level);
  if (level == NGTCP2_ENCRYPTION_LEVEL_0RTT) return 1;  // parley never sends early data
  const bool server = ngtcp2_conn_is_server(conn);
  if (level == NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE && server &&
      ngtcp2_conn_get_negotiated_version(conn) == 0 && set_remote_transport_params(conn, ssl) != 0) {
    return 0;
  }
  if (ngtcp2_conn_get_crypto_ctx(conn)->aead.native_handle == nullptr) {
    ngtcp2_crypto_ctx c;
    if (!ctx_for_cipher(cipher, &c)) return 0;
    ngtcp2_conn_set_crypto_ctx(conn, &c);
  }
  const ngtcp2_crypto_ctx &c = *ngtcp2_conn_get_crypto_ctx(conn);
  const uint32_t version = ngtcp2_conn_get_negotiated_version(conn);
  KeyBuf<64> key, hp_key;
  uint8_t iv[64];
  ngtcp2_crypto_aead_ctx aead{};
  ngtcp2_crypto_cipher_ctx hp{};
  if (!derive_packet_keys(key.b, iv, hp_key.b, version, c, secret, secret_len) ||
      !aead_ctx_init(&aead, &c.aead, key.b) || !hp_ctx_init(&hp, &c.hp, hp_key.b)) {
    aead_ctx_free(&aead);
    hp_ctx_free(&hp);
    return 0;
  }
  const size_t ivl = iv_len(&c.aead);
  int r;
  if (level == NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE) {
    r = rx ? ngtcp2_conn_install_rx_handshake_key(conn, &aead, iv, ivl, &hp)
           : ngtcp2_conn_install_tx_handshake_key(conn, &aead, iv, ivl, &hp);
  } else {
    if (rx && !server && set_remote_transport_params(conn, ssl) != 0) {
      aead_ctx_free(&aead);
      hp_ctx_free(&hp);
      return 0;
    }
    r = rx ? ngtcp2_conn_install_rx_key(conn, secret, secret_len, &aead, iv, ivl, &hp)
           : ngtcp2_conn_install_tx_key(conn, secret, secret_len, &aead, iv, ivl, &hp);
  }
  if (r != 0) {
    aead_ctx_free(&aead);
    hp_ctx_free(&hp);
    return 0;
  }
  // The server's transport parameters go out in EncryptedExtensions, written after this; the
  // ALPN callback (and so on_alpn) has run by now.
  if (level == NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE && !rx && server &&
      set_local_transport_params(conn, ssl) != 0) {
    return 0;
  }
  return 1;
}

int set_read_secret(SSL *ssl, ssl_encryption_level_t level, const SSL_CIPHER *cipher,
                    const uint8_t *secret, size_t secret_len) {
  return install_secret(ssl, level, cipher, secret, secret_len, true);
}

int set_write_secret(SSL *ssl, ssl_encryption_level_t level, const SSL_CIPHER *cipher,
                     const uint8_t *secret, size_t secret_len) {
  return install_secret(ssl, level, cipher, secret, secret_len, false);
}

int add_handshake_data(SSL *ssl, ssl_encryption_level_t level, const uint8_t *data, size_t len) {
  ngtcp2_conn *conn = BoringSession::of(ssl)->conn();
  const int r = ngtcp2_conn_submit_crypto_data(conn, from_ssl(level), data, len);
  if (r != 0) {
    ngtcp2_conn_set_tls_error(conn, r);
    return 0;
  }
  return 1;
}

int flush_flight(SSL *) { return 1; }

int send_alert(SSL *ssl, ssl_encryption_level_t, uint8_t alert) {
  BoringSession *self = BoringSession::of(ssl);
  if (alert == SSL_AD_NO_APPLICATION_PROTOCOL && !self->alpn_failed_) {
    // BoringSSL refuses a QUIC peer that offers no ALPN at all before any callback of ours.
    self->alpn_failed_ = true;
    self->reason_ = std::string("peer did not negotiate ALPN ") + kAlpn;
  }
  ngtcp2_conn_set_tls_alert(self->conn(), alert);
  return 1;
}

const SSL_QUIC_METHOD kQuicMethod = {set_read_secret, set_write_secret, add_handshake_data,
                                     flush_flight, send_alert};

int read_write_crypto_data(ngtcp2_conn *conn, ngtcp2_encryption_level level,
                           const uint8_t *data, size_t len) {
  auto *ssl = static_cast<SSL *>(ngtcp2_conn_get_tls_native_handle(conn));
  if (len > 0 && SSL_provide_quic_data(ssl, to_ssl(level), data, len) != 1) return -1;
  if (!ngtcp2_conn_get_handshake_completed(conn)) {
    const int r = SSL_do_handshake(ssl);
    if (r <= 0) {
      const int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
      ERR_clear_error();
      return -1;
    }
    uint8_t alert = 0;
    if (!BoringSession::of(ssl)->check_completed_handshake(&alert)) {
      ngtcp2_conn_set_tls_alert(conn, alert);
      return -1;
    }
    ngtcp2_conn_tls_handshake_completed(conn);
  }
  if (SSL_process_quic_post_handshake(ssl) != 1) {
    const int e = SSL_get_error(ssl, 0);
    ERR_clear_error();
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return -1;
  }
  return 0;
}

// --- Retry tokens -------------------------------------------------------------------------
// Only this server reads its tokens, so the format is its own: a version byte, a random
// XChaCha20-Poly1305 nonce, and the sealed (timestamp, original DCID), bound as associated
// data to the QUIC version, the client's address and the Retry's source CID.
constexpr uint8_t kTokenMagic = 0xb7;
constexpr size_t kTokenNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTokenPlain = 8 + 1 + NGTCP2_MAX_CIDLEN;
constexpr size_t kTokenLen = 1 + kTokenNonce + kTokenPlain + crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kTokenLen <= crypto::kMaxRetryTokenLen, "Retry token size");

bool token_key(uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES], const uint8_t *secret,
               size_t secret_len) {
  static const char kInfo[] = "parley retry token v1";
  return HKDF(key, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, EVP_sha256(), secret, secret_len,
              nullptr, 0, reinterpret_cast<const uint8_t *>(kInfo), sizeof kInfo - 1) == 1;
}

size_t token_ad(uint8_t *ad, uint32_t version, const ngtcp2_sockaddr *addr,
                ngtcp2_socklen addr_len, const ngtcp2_cid *retry_scid) {
  size_t n = 0;
  for (int i = 3; i >= 0; --i) ad[n++] = uint8_t(version >> (8 * i));
  std::memcpy(ad + n, addr, addr_len);
  n += addr_len;
  std::memcpy(ad + n, retry_scid->data, retry_scid->datalen);
  return n + retry_scid->datalen;
}

}  // namespace

int TlsCredentials::create(const identity::Identity &id, std::unique_ptr<TlsCredentials> *out) {
  auto c = std::make_unique<BoringCredentials>();
  c->ctx = SSL_CTX_new(TLS_method());
  if (c->ctx == nullptr) return fail(kErrCrypto, "SSL_CTX_new failed");
  SSL_CTX *ctx = c->ctx;
  // TLS 1.3 only, Ed25519 the only signature scheme both ways, X25519 then P-256 for the key
  // exchange, no resumption (a resumed session would skip the pin), no early data.
  static const uint16_t kEd25519[] = {SSL_SIGN_ED25519};
  const auto &der = id.certificate_der();
  EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, id.seed(), 32);
  const bool ok =
      SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
      SSL_CTX_set_quic_method(ctx, &kQuicMethod) == 1 &&
      SSL_CTX_set_verify_algorithm_prefs(ctx, kEd25519, 1) == 1 &&
      SSL_CTX_set_signing_algorithm_prefs(ctx, kEd25519, 1) == 1 &&
      SSL_CTX_set1_curves_list(ctx, "X25519:P-256") == 1 && key != nullptr &&
      SSL_CTX_use_certificate_ASN1(ctx, der.size(), der.data()) == 1 &&
      SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);  // the context keeps its own reference; BoringSSL wipes keys it frees
  if (!ok) {
    ERR_clear_error();
    return fail(kErrCrypto, "cannot load the identity into BoringSSL");
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_alpn_select_cb(ctx, BoringSession::select_alpn, nullptr);
  *out = std::move(c);
  return kOk;
}

int TlsSession::create(Role role, TlsCredentials &creds, PeerVerifier verifier,
                       const TlsSessionOptions &options, GetConn get_conn, void *user_data,
                       std::unique_ptr<TlsSession> *out) {
  auto s = std::make_unique<BoringSession>();
  s->get_conn = get_conn;
  s->user_data = user_data;
  s->verifier = std::move(verifier);
  s->server = role == Role::kServer;
  s->offer_h3 = s->server && options.offer_h3;
  if (s->server) s->on_alpn = options.on_alpn;
  s->ssl = SSL_new(static_cast<BoringCredentials &>(creds).ctx);
  if (s->ssl == nullptr) return fail(kErrCrypto, "SSL_new failed");
  SSL_set_app_data(s->ssl, s.get());
  // The RFC 9000 codepoint for transport parameters, not the draft one.
  SSL_set_quic_use_legacy_codepoint(s->ssl, 0);
  // With h3 the certificate is optional at the TLS level; check_completed_handshake requires
  // it for parley/1.
  const int mode = SSL_VERIFY_PEER | (s->offer_h3 ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  SSL_set_custom_verify(s->ssl, mode, BoringSession::verify);
  if (s->server) {
    SSL_set_accept_state(s->ssl);
  } else {
    static const uint8_t kProtos[] = {8, 'p', 'a', 'r', 'l', 'e', 'y', '/', '1'};
    if (SSL_set_alpn_protos(s->ssl, kProtos, sizeof kProtos) != 0) {
      return fail(kErrCrypto, "SSL_set_alpn_protos failed");
    }
    SSL_set_connect_state(s->ssl);
  }
  *out = std::move(s);
  return kOk;
}

namespace crypto {

void set_callbacks(ngtcp2_callbacks *cb, bool server) {
  if (server) {
    cb->recv_client_initial = recv_client_initial_cb;
  } else {
    cb->client_initial = client_initial_cb;
    cb->recv_retry = recv_retry_cb;
  }
  cb->recv_crypto_data = recv_crypto_data_cb;
  cb->encrypt = encrypt_cb;
  cb->decrypt = decrypt_cb;
  cb->hp_mask = hp_mask_cb;
  cb->update_key = update_key_cb;
  cb->delete_crypto_aead_ctx = delete_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = delete_cipher_ctx_cb;
  cb->get_path_challenge_data = path_challenge_data_cb;
  cb->version_negotiation = version_negotiation_cb;
}

int generate_stateless_reset_token(uint8_t *token, const uint8_t *secret, size_t secret_len,
                                   const ngtcp2_cid *cid) {
  static const char kInfo[] = "stateless_reset";
  return HKDF(token, NGTCP2_STATELESS_RESET_TOKENLEN, EVP_sha256(), secret, secret_len,
              cid->data, cid->datalen, reinterpret_cast<const uint8_t *>(kInfo),
              sizeof kInfo - 1) == 1
             ? 0
             : -1;
}

ngtcp2_ssize generate_retry_token(uint8_t *token, const uint8_t *secret, size_t secret_len,
                                  uint32_t version, const ngtcp2_sockaddr *remote_addr,
                                  ngtcp2_socklen remote_addr_len, const ngtcp2_cid *retry_scid,
                                  const ngtcp2_cid *odcid, ngtcp2_tstamp ts) {
  KeyBuf<crypto_aead_xchacha20poly1305_ietf_KEYBYTES> key;
  uint8_t ad[4 + sizeof(ngtcp2_sockaddr_union) + NGTCP2_MAX_CIDLEN];
  if (remote_addr_len > sizeof(ngtcp2_sockaddr_union) || odcid->datalen > NGTCP2_MAX_CIDLEN ||
      !token_key(key.b, secret, secret_len)) {
    return -1;
  }
  uint8_t plain[kTokenPlain] = {};
  for (int i = 7; i >= 0; --i) plain[7 - i] = uint8_t(ts >> (8 * i));
  plain[8] = uint8_t(odcid->datalen);
  std::memcpy(plain + 9, odcid->data, odcid->datalen);
  token[0] = kTokenMagic;
  randombytes_buf(token + 1, kTokenNonce);
  const size_t ad_len = token_ad(ad, version, remote_addr, remote_addr_len, retry_scid);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(token + 1 + kTokenNonce, &n, plain, sizeof plain,
                                             ad, ad_len, nullptr, token + 1, key.b);
  return ngtcp2_ssize(1 + kTokenNonce + n);
}

int verify_retry_token(ngtcp2_cid *odcid, const uint8_t *token, size_t token_len,
                       const uint8_t *secret, size_t secret_len, uint32_t version,
                       const ngtcp2_sockaddr *remote_addr, ngtcp2_socklen remote_addr_len,
                       const ngtcp2_cid *dcid, ngtcp2_duration timeout, ngtcp2_tstamp ts) {
  KeyBuf<crypto_aead_xchacha20poly1305_ietf_KEYBYTES> key;
  uint8_t ad[4 + sizeof(ngtcp2_sockaddr_union) + NGTCP2_MAX_CIDLEN];
  if (token_len != kTokenLen || token[0] != kTokenMagic ||
      remote_addr_len > sizeof(ngtcp2_sockaddr_union) || !token_key(key.b, secret, secret_len)) {
    return -1;
  }
  const size_t ad_len = token_ad(ad, version, remote_addr, remote_addr_len, dcid);
  uint8_t plain[kTokenPlain];
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &n, nullptr, token + 1 + kTokenNonce,
                                                 token_len - 1 - kTokenNonce, ad, ad_len,
                                                 token + 1, key.b) != 0 ||
      n != sizeof plain || plain[8] > NGTCP2_MAX_CIDLEN) {
    return -1;
  }
  ngtcp2_tstamp made = 0;
  for (int i = 0; i < 8; ++i) made = made << 8 | plain[i];
  // Issued in the future (a clock step) or longer ago than `timeout`: not valid.
  if (made > ts || ts - made > timeout) return -1;
  ngtcp2_cid_init(odcid, plain + 9, plain[8]);
  return 0;
}

ngtcp2_ssize write_retry(uint8_t *dest, size_t dest_len, uint32_t version, const ngtcp2_cid *dcid,
                         const ngtcp2_cid *scid, const ngtcp2_cid *odcid, const uint8_t *token,
                         size_t token_len) {
  ngtcp2_crypto_aead aead = make_aead(EVP_aead_aes_128_gcm());
  ngtcp2_crypto_aead_ctx ctx{};
  if (!aead_ctx_init(&ctx, &aead, retry_key(version))) return -1;
  const ngtcp2_ssize n = ngtcp2_pkt_write_retry(dest, dest_len, version, dcid, scid, odcid, token,
                                                token_len, encrypt_cb, &aead, &ctx);
  aead_ctx_free(&ctx);
  return n < 0 ? -1 : n;
}

ngtcp2_ssize write_connection_close(uint8_t *dest, size_t dest_len, uint32_t version,
                                    const ngtcp2_cid *dcid, const ngtcp2_cid *scid,
                                    uint64_t error_code, const uint8_t *reason,
                                    size_t reason_len) {
  // The server's Initial keys, from the client's first DCID (here `scid`).
  const ngtcp2_crypto_ctx c = initial_ctx();
  KeyBuf<kInitialSecretLen> client, server;
  if (!derive_initial_secrets(client.b, server.b, version, scid)) return -1;
  DirectionKeys tx;
  if (!tx.make(c, version, server.b)) return -1;
  const ngtcp2_ssize n = ngtcp2_pkt_write_connection_close(
      dest, dest_len, version, dcid, scid, error_code, reason, reason_len, encrypt_cb, &c.aead,
      &tx.aead, tx.iv, hp_mask_cb, &c.hp, &tx.hp);
  return n < 0 ? -1 : n;
}

}  // namespace crypto

}  // namespace parley::quic

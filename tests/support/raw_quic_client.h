// For tests and fuzz targets that speak QUIC to an endpoint through a bare ngtcp2 client (to
// send what parley's own client never would: no certificate, any ALPN, any bytes).
#ifndef PARLEY_TESTS_SUPPORT_RAW_QUIC_CLIENT_H
#define PARLEY_TESTS_SUPPORT_RAW_QUIC_CLIENT_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <sodium.h>

namespace parley::testing {

// A client's ngtcp2 callbacks with the crypto helper's handshake and key callbacks, libsodium
// randomness and random connection ids filled in; the caller adds its stream callbacks.
inline ngtcp2_callbacks raw_client_callbacks() {
  ngtcp2_callbacks cb{};
  cb.client_initial = ngtcp2_crypto_client_initial_cb;
  cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb.rand = [](uint8_t *dest, size_t len, const ngtcp2_rand_ctx *) {
    randombytes_buf(dest, len);
  };
  cb.get_new_connection_id = [](ngtcp2_conn *, ngtcp2_cid *cid, uint8_t *token, size_t len,
                                void *) {
    cid->datalen = len;
    randombytes_buf(cid->data, len);
    randombytes_buf(token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
  };
  return cb;
}

}  // namespace parley::testing

#endif

#include "identity/identity.h"

#include <cstring>

#include "base/log.h"
#include "capi_internal.h"
#include "identity/certificate.h"
#include "identity/seed_file.h"
#include "parley/parley.h"

using parley::capi::guarded;
namespace id = parley::identity;

struct parley_identity {
  std::unique_ptr<id::Identity> impl;
};

static_assert(PARLEY_SEED_LEN == id::kSeedLen, "seed length");
static_assert(PARLEY_PUBLIC_KEY_LEN == id::kPublicKeyLen, "public key length");
static_assert(PARLEY_FINGERPRINT_HEX_LEN == id::kFingerprintHexLen, "fingerprint length");

namespace {

int wrap(std::unique_ptr<id::Identity> impl, parley_identity **out) {
  std::unique_ptr<parley_identity> h(new parley_identity{std::move(impl)});
  parley::capi::handle_add(parley::capi::HandleKind::kIdentity, h.get());
  *out = h.release();
  return parley::kOk;
}

}  // namespace

int parley_identity_generate(parley_identity **out) {
  PARLEY_REQUIRE_ARG(out);
  *out = nullptr;
  return guarded(__func__, [&] {
    std::unique_ptr<id::Identity> impl;
    int r = id::Identity::generate(&impl);
    return r != parley::kOk ? r : wrap(std::move(impl), out);
  });
}

int parley_identity_from_seed(const uint8_t *seed, size_t seed_len, parley_identity **out) {
  PARLEY_REQUIRE_ARG(out);
  *out = nullptr;
  PARLEY_REQUIRE_ARG(seed);
  return guarded(__func__, [&] {
    std::unique_ptr<id::Identity> impl;
    int r = id::Identity::from_seed(seed, seed_len, &impl);
    return r != parley::kOk ? r : wrap(std::move(impl), out);
  });
}

int parley_identity_load_file(const char *path, parley_identity **out) {
  PARLEY_REQUIRE_ARG(out);
  *out = nullptr;
  PARLEY_REQUIRE_ARG(path);
  return guarded(__func__, [&] {
    std::unique_ptr<id::Identity> impl;
    int r = id::load_seed_file(path, &impl);
    return r != parley::kOk ? r : wrap(std::move(impl), out);
  });
}

int parley_identity_save_file(const parley_identity *identity, const char *path,
                              unsigned flags) {
  PARLEY_REQUIRE_HANDLE(kIdentity, identity);
  PARLEY_REQUIRE_ARG(path);
  if ((flags & ~PARLEY_SAVE_OVERWRITE) != 0) {
    return parley::fail(parley::kErrInvalidArgument, "%s: unknown flags 0x%x", __func__,
                        flags);
  }
  return guarded(__func__, [&] {
    return id::save_seed_file(*identity->impl, path, (flags & PARLEY_SAVE_OVERWRITE) != 0);
  });
}

int parley_identity_fingerprint(const parley_identity *identity, char *out, size_t out_len) {
  PARLEY_REQUIRE_HANDLE(kIdentity, identity);
  PARLEY_REQUIRE_ARG(out);
  int r = parley::capi::check_fingerprint_buffer(__func__, out_len);
  if (r == parley::kOk) identity->impl->fingerprint().to_hex(out);
  return r;
}

int parley_identity_public_key(const parley_identity *identity, uint8_t *out) {
  PARLEY_REQUIRE_HANDLE(kIdentity, identity);
  PARLEY_REQUIRE_ARG(out);
  std::memcpy(out, identity->impl->public_key(), id::kPublicKeyLen);
  return parley::kOk;
}

int parley_identity_export_seed(const parley_identity *identity, uint8_t *out) {
  PARLEY_REQUIRE_HANDLE(kIdentity, identity);
  PARLEY_REQUIRE_ARG(out);
  std::memcpy(out, identity->impl->seed(), id::kSeedLen);
  return parley::kOk;
}

int parley_identity_certificate_der(const parley_identity *identity, uint8_t *buf,
                                    size_t *len) {
  PARLEY_REQUIRE_HANDLE(kIdentity, identity);
  PARLEY_REQUIRE_ARG(len);
  const std::vector<uint8_t> &der = identity->impl->certificate_der();
  const size_t capacity = *len;
  *len = der.size();
  if (buf == nullptr) return parley::kOk;
  if (capacity < der.size()) {
    return parley::fail(parley::kErrBufferTooSmall, "%s: needs %zu bytes, got %zu", __func__,
                        der.size(), capacity);
  }
  std::memcpy(buf, der.data(), der.size());
  return parley::kOk;
}

int parley_identity_destroy(parley_identity *identity) {
  if (!identity) return parley::kOk;
  if (!parley::capi::handle_remove(parley::capi::HandleKind::kIdentity, identity)) {
    parley::fail(parley::kErrInvalidHandle,
                 "parley_identity_destroy: not a live parley_identity (destroyed twice?); "
                 "ignored");
    PARLEY_LOG(parley::kLogWarn, "capi", "%s", parley::last_error_message());
    return parley::kErrInvalidHandle;
  }
  delete identity;
  return parley::kOk;
}

int parley_certificate_fingerprint(const uint8_t *der, size_t der_len, char *out,
                                   size_t out_len) {
  PARLEY_REQUIRE_ARG(der);
  PARLEY_REQUIRE_ARG(out);
  int r = parley::capi::check_fingerprint_buffer(__func__, out_len);
  if (r != parley::kOk) return r;
  id::Fingerprint fp;
  r = guarded(__func__, [&] { return id::certificate_fingerprint(der, der_len, &fp); });
  if (r == parley::kOk) fp.to_hex(out);
  return r;
}

int parley_fingerprint_normalize(const char *text, char *out, size_t out_len) {
  PARLEY_REQUIRE_ARG(text);
  PARLEY_REQUIRE_ARG(out);
  int r = parley::capi::check_fingerprint_buffer(__func__, out_len);
  if (r != parley::kOk) return r;
  id::Fingerprint fp;
  r = id::Fingerprint::parse(text, &fp);
  if (r == parley::kOk) fp.to_hex(out);
  return r;
}

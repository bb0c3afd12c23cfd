// The registry of live C API handles, and the argument checks the capi/ files share
// (capi_internal.h).
#include <mutex>
#include <unordered_set>

#include "capi_internal.h"
#include "parley/parley.h"

namespace parley::capi {
namespace {

struct Registry {
  std::mutex mu;
  std::unordered_set<const void *> live[4];
};

Registry &registry() {
  static Registry *r = new Registry;  // never destroyed: handles may be freed from atexit
  return *r;
}

const char *kind_name(HandleKind kind) {
  switch (kind) {
    case HandleKind::kIdentity: return "parley_identity";
    case HandleKind::kContext: return "parley_context";
    case HandleKind::kCall: return "parley_call";
    case HandleKind::kRoom: return "parley_room";
  }
  return "handle";
}

}  // namespace

void handle_add(HandleKind kind, const void *handle) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.live[int(kind)].insert(handle);
}

bool handle_remove(HandleKind kind, const void *handle) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.live[int(kind)].erase(handle) == 1;
}

bool handle_live(HandleKind kind, const void *handle) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.live[int(kind)].count(handle) == 1;
}

int check_fingerprint_buffer(const char *function, size_t out_len) {
  if (out_len >= PARLEY_FINGERPRINT_BUF_LEN) return kOk;
  return fail(kErrBufferTooSmall, "%s: needs %d bytes, got %zu", function,
              PARLEY_FINGERPRINT_BUF_LEN, out_len);
}

int check_handle(const char *function, const char *name, HandleKind kind, const void *handle) {
  if (!handle) return null_argument(function, name);
  if (handle_live(kind, handle)) return kOk;
  return fail(kErrInvalidHandle, "%s: '%s' is not a live %s (freed, or never created)",
              function, name, kind_name(kind));
}

}  // namespace parley::capi

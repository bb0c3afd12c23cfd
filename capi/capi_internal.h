// Shared by the capi/ files: the exception firewall every exported function goes through.
#ifndef PARLEY_CAPI_INTERNAL_H
#define PARLEY_CAPI_INTERNAL_H

#include <new>
#include <string>

#include "base/error.h"

namespace parley::capi {

// Runs `body` (returning an error code) and maps any escaping exception to an error code,
// so no C++ exception ever crosses the C boundary.
template <typename F>
int guarded(const char *function, F &&body) noexcept {
  try {
    const std::string saved = last_error_message();
    const int r = body();
    if (r == kOk) restore_last_error_message(saved);  // success leaves the message alone
    return r;
  } catch (const std::bad_alloc &) {
    return fail(kErrNoMemory, "%s: out of memory", function);
  } catch (...) {
    return fail(kErrInternal, "%s: unexpected exception", function);
  }
}

inline int null_argument(const char *function, const char *name) {
  return fail(kErrInvalidArgument, "%s: '%s' must not be NULL", function, name);
}

// kOk, or kErrBufferTooSmall when `out_len` cannot hold a fingerprint and its NUL.
int check_fingerprint_buffer(const char *function, size_t out_len);

// Live handles, so that a freed or made-up handle gets PARLEY_ERR_INVALID_HANDLE instead of
// a use-after-free (a double destroy, a call used after release). One process-wide set per
// kind, so a handle of one type passed as another is refused too. The real-time audio
// functions do not look here: they must not lock.
enum class HandleKind { kIdentity, kContext, kCall, kRoom };
void handle_add(HandleKind kind, const void *handle);
// True if `handle` was live (it no longer is).
bool handle_remove(HandleKind kind, const void *handle);
bool handle_live(HandleKind kind, const void *handle);
// kOk, kErrInvalidArgument (NULL) or kErrInvalidHandle, with the message naming `function`
// and the parameter.
int check_handle(const char *function, const char *name, HandleKind kind, const void *handle);

}  // namespace parley::capi

#define PARLEY_REQUIRE_ARG(arg)                                      \
  do {                                                               \
    if ((arg) == nullptr) return ::parley::capi::null_argument(__func__, #arg); \
  } while (0)

#define PARLEY_REQUIRE_HANDLE(kind, arg)                                                   \
  do {                                                                                     \
    const int parley_check_ =                                                              \
        ::parley::capi::check_handle(__func__, #arg, ::parley::capi::HandleKind::kind, arg); \
    if (parley_check_ != 0) return parley_check_;                                          \
  } while (0)

#endif

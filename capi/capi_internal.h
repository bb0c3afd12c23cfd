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

}  // namespace parley::capi

#define PARLEY_REQUIRE_ARG(arg)                                      \
  do {                                                               \
    if ((arg) == nullptr) return ::parley::capi::null_argument(__func__, #arg); \
  } while (0)

#endif

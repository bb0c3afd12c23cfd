// Error codes shared by every layer, and the per-thread detailed error message.
//
// The numbers are the public PARLEY_ERR_* values (capi/ static_asserts that they match), so a
// code travels up unchanged from the layer that detected it to the host.
#ifndef PARLEY_BASE_ERROR_H
#define PARLEY_BASE_ERROR_H

#include <string>

#include "base/error_table.h"

namespace parley {

// kErr<Name> for every code of the table, and kOk for success.
enum Error : int {
  kOk = 0,
#define PARLEY_ERROR_ENUM(pub, camel, number, description) kErr##camel = (number),
  PARLEY_ERROR_TABLE(PARLEY_ERROR_ENUM)
#undef PARLEY_ERROR_ENUM
};

// The fixed one-line description of `code` ("unknown error" for codes parley never returns).
const char *error_description(int code);
// The public name of `code` ("PARLEY_ERR_TIMEOUT", "PARLEY_OK"), or nullptr for a number that
// is not a code.
const char *error_name(int code);

// Records a detailed message for `code` as the calling thread's last error and returns
// `code`, so a failing path reads `return fail(kErrIo, "open %s: %s", path, strerror(e));`.
// The message is also logged at debug level.
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The calling thread's last detailed error message ("" if none yet).
const char *last_error_message();
// Puts back a message saved from last_error_message() (capi: a successful call must leave the
// previous error's message as it was, even if it recorded errors it then recovered from).
void restore_last_error_message(const std::string &saved);

}  // namespace parley

#endif

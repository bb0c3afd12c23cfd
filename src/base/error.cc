#include "base/error.h"

#include <cstdarg>
#include <cstdio>

#include "base/log.h"

namespace parley {

const char *error_description(int code) {
  switch (code) {
    case kOk: return "success";
#define PARLEY_ERROR_DESCRIPTION(pub, camel, number, description) \
  case kErr##camel:                                               \
    return description;
      PARLEY_ERROR_TABLE(PARLEY_ERROR_DESCRIPTION)
#undef PARLEY_ERROR_DESCRIPTION
  }
  return "unknown error";
}

const char *error_name(int code) {
  switch (code) {
    case kOk:
      return "PARLEY_OK";
#define PARLEY_ERROR_NAME(pub, camel, number, description) \
  case kErr##camel:                                        \
    return "PARLEY_ERR_" #pub;
      PARLEY_ERROR_TABLE(PARLEY_ERROR_NAME)
#undef PARLEY_ERROR_NAME
  }
  return nullptr;
}

namespace {
thread_local char t_last_error[512];
}

int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
  va_end(ap);
  PARLEY_LOG(kLogDebug, "error", "%s (%s)", t_last_error, error_description(code));
  return code;
}

const char *last_error_message() { return t_last_error; }

void restore_last_error_message(const std::string &saved) {
  std::snprintf(t_last_error, sizeof t_last_error, "%s", saved.c_str());
}

}  // namespace parley

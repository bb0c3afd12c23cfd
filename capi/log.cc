#include "base/log.h"

#include "base/error.h"
#include "parley/parley.h"

static_assert(int(PARLEY_LOG_OFF) == int(parley::kLogOff) &&
                  int(PARLEY_LOG_ERROR) == int(parley::kLogError) &&
                  int(PARLEY_LOG_TRACE) == int(parley::kLogTrace),
              "public and internal log levels are one set");

int parley_log_set_callback(parley_log_fn cb, void *user_data) {
  parley::log_set_sink(cb, user_data);
  return PARLEY_OK;
}

int parley_log_set_level(int level) {
  if (!parley::log_set_level(level)) {
    return parley::fail(parley::kErrInvalidArgument,
                        "parley_log_set_level: %d is not a parley_log_level", level);
  }
  return PARLEY_OK;
}

// The process-wide log sink. The host may replace it (capi: parley_log_set_callback); the
// default writes to stderr. Levels below the configured one cost one relaxed atomic load.
#ifndef PARLEY_BASE_LOG_H
#define PARLEY_BASE_LOG_H

#include <atomic>

namespace parley {

enum LogLevel : int {
  kLogOff = 0,
  kLogError = 1,
  kLogWarn = 2,
  kLogInfo = 3,
  kLogDebug = 4,
  kLogTrace = 5,
};

using LogSinkFn = void (*)(void *user_data, int level, const char *message);

// Replaces the sink; nullptr restores the stderr sink. After it returns no thread is still
// inside (or will enter) the previous sink.
void log_set_sink(LogSinkFn fn, void *user_data);
// Returns false if `level` is not a LogLevel.
bool log_set_level(int level);

namespace detail {
extern std::atomic<int> g_log_level;
}
inline bool log_enabled(int level) {
  return level <= detail::g_log_level.load(std::memory_order_relaxed);
}

// Formats "[module] message" (truncated to 1 KiB) and hands it to the sink.
void log_write(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace parley

#define PARLEY_LOG(level, module, ...)                           \
  do {                                                           \
    if (::parley::log_enabled(level)) {                          \
      ::parley::log_write((level), (module), __VA_ARGS__);       \
    }                                                            \
  } while (0)

#endif

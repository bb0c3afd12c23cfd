#include "base/log.h"

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <shared_mutex>

namespace parley {

namespace detail {
std::atomic<int> g_log_level{kLogWarn};
}

namespace {

const char *level_name(int level) {
  switch (level) {
    case kLogError: return "error";
    case kLogWarn: return "warn";
    case kLogInfo: return "info";
    case kLogDebug: return "debug";
    default: return "trace";
  }
}

void stderr_sink(void *, int level, const char *message) {
  std::fprintf(stderr, "parley %s: %s\n", level_name(level), message);
}

// Readers hold the lock while inside the sink, which is what lets log_set_sink promise that
// the old sink is never called after it returns.
std::shared_mutex g_sink_mutex;
LogSinkFn g_sink = stderr_sink;
void *g_sink_user = nullptr;

}  // namespace

void log_set_sink(LogSinkFn fn, void *user_data) {
  std::unique_lock<std::shared_mutex> lock(g_sink_mutex);
  g_sink = fn ? fn : stderr_sink;
  g_sink_user = fn ? user_data : nullptr;
}

bool log_set_level(int level) {
  if (level < kLogOff || level > kLogTrace) return false;
  detail::g_log_level.store(level, std::memory_order_relaxed);
  return true;
}

namespace {
// A sink that calls back into parley would log while logging (and could deadlock on the sink
// lock): such nested lines are dropped.
thread_local bool t_in_sink = false;
}  // namespace

void log_write(int level, const char *module, const char *fmt, ...) {
  if (t_in_sink) return;
  char buf[1024];
  int n = std::snprintf(buf, sizeof buf, "[%.64s] ", module);
  if (n < 0) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf + n, sizeof buf - static_cast<size_t>(n), fmt, ap);
  va_end(ap);
  std::shared_lock<std::shared_mutex> lock(g_sink_mutex);
  t_in_sink = true;
  g_sink(g_sink_user, level, buf);
  t_in_sink = false;
}

}  // namespace parley

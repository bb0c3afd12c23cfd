// run() and read(): how every public function of Context reaches the loop thread. The public
// entry points are spread over the context_*.cc files by job, and each one instantiates these
// templates, so they are defined here once (not in context.h: its users need not see them).
#ifndef PARLEY_CALL_CONTEXT_INTERNAL_H
#define PARLEY_CALL_CONTEXT_INTERNAL_H

#include <future>
#include <string>

#include "base/error.h"
#include "call/context.h"

namespace parley::call {

template <typename F>
int Context::run(F &&f) {
  if (loop_.on_loop_thread()) return f();
  std::promise<int> p;
  std::string message;
  if (loop_.post([&] {
        const int r = f();
        if (r != kOk) message = last_error_message();
        p.set_value(r);
      }) != kOk) {
    return fail(kErrClosed, "the context is shutting down");
  }
  const int r = p.get_future().get();
  if (r != kOk) restore_last_error_message(message);  // the detail belongs to this thread
  return r;
}

template <typename F>
auto Context::read(F &&f) -> decltype(f()) {
  decltype(f()) value{};
  run([&] {
    value = f();
    return kOk;
  });
  return value;
}

}  // namespace parley::call

#endif

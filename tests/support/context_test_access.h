// Lets a test or fuzz target play a hostile relay against a real Context: it hands the
// context signaling messages and datagrams as if its relay connection had delivered them,
// on the context's loop thread like real ones.
#ifndef PARLEY_TESTS_SUPPORT_CONTEXT_TEST_ACCESS_H
#define PARLEY_TESTS_SUPPORT_CONTEXT_TEST_ACCESS_H

#include <cstddef>
#include <cstdint>
#include <future>

#include "call/context.h"
#include "signal/message.h"

namespace parley::call {

struct ContextTestAccess {
  template <typename F>
  static void on_loop(Context &c, F &&f) {
    if (c.loop_.on_loop_thread()) {
      f();
      return;
    }
    std::promise<void> done;
    c.loop_.post([&] {
      f();
      done.set_value();
    });
    done.get_future().get();
  }
  static void relay_message(Context &c, const signal::Message &m) {
    on_loop(c, [&] { c.on_relay_message(m); });
  }
  static void relay_datagram(Context &c, const uint8_t *data, size_t len) {
    on_loop(c, [&] { c.on_datagram(data, len); });
  }
  // Replaces the relay connection by `sink` (RelayClient::attach_test_sink): the context
  // counts as registered and everything it would send the relay goes to the sink.
  static void attach_relay_sink(Context &c, RelayClient::TestSink sink) {
    on_loop(c, [&] { c.relay_->attach_test_sink(std::move(sink)); });
  }
};

}  // namespace parley::call

#endif

// Noticing network changes by ourselves where the OS lets a process watch them: on Linux, an
// rtnetlink socket (address, link and route events of the process's network namespace),
// debounced, so a burst of events (an interface going down takes its addresses and routes
// with it) is one change. Elsewhere (and where netlink is refused, e.g. Android apps) the
// host tells the context through network_changed(). Loop thread only.
#ifndef PARLEY_BASE_NETWORK_WATCH_H
#define PARLEY_BASE_NETWORK_WATCH_H

#include <cstddef>
#include <cstdint>
#include <functional>

#include "base/loop.h"

namespace parley {

// Whether one netlink message is a change a call cares about, sans-I/O: a global or
// unique-local address added or removed (not loopback, not link-local, not an IPv6 address
// still in duplicate address detection), a link going up or down, or a default route added
// or removed. Address lifetime refreshes (the same address announced again) are not.
bool netlink_message_matters(const uint8_t *msg, size_t len);

class NetworkWatch {
 public:
  // `on_change` runs on the loop thread, `debounce_ms` after the last relevant event of a
  // burst.
  NetworkWatch(Loop &loop, uint32_t debounce_ms, std::function<void()> on_change);
  ~NetworkWatch();
  NetworkWatch(const NetworkWatch &) = delete;
  NetworkWatch &operator=(const NetworkWatch &) = delete;

  // kOk, or kErrSocket (no netlink here: the host must call network_changed). Idempotent.
  int start();
  uint64_t events() const { return events_; }  // relevant events seen

 private:
  struct Handle;
  void on_readable();

  Loop &loop_;
  uint32_t debounce_ms_;
  std::function<void()> on_change_;
  Timer debounce_;
  Handle *handle_ = nullptr;  // owned by libuv's close callback once started
  int fd_ = -1;
  uint64_t events_ = 0;
};

}  // namespace parley

#endif

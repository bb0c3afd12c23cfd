// Names to addresses without blocking a loop: "host:port" parsing, and asynchronous
// resolution: getaddrinfo on a thread of its own per lookup, whose answer comes back on the
// loop. Not libuv's pool: a lookup there cannot be abandoned, and the loop (a context) could
// not close until the system resolver gave up.
#ifndef PARLEY_BASE_RESOLVER_H
#define PARLEY_BASE_RESOLVER_H

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/address.h"
#include "base/loop.h"

namespace parley {

// Splits "host:port", "[v6]:port" or "v4:port" into a host (without brackets) and a port
// (1..65535). The host is an IP literal or a DNS name (letters, digits, '-', '.', '_'; at
// most 253 characters). kOk or kErrAddressInvalid (the message says what is wrong).
int split_host_port(const std::string &text, std::string *host, uint16_t *port);

// One asynchronous lookup at a time on a loop. Loop thread only.
class Resolver {
 public:
  // `addresses`: every address the name has in a family the host has an address of
  // (AI_ADDRCONFIG), IPv6 first then IPv4, each once, all with the port. `error`: kOk (then
  // at least one address), kErrNameNotFound (the name does not exist, or no answer could be
  // had: the message says which) or kErrNoUsableAddress (it exists but has no address of a
  // family the host has).
  using Done = std::function<void(int error, const std::vector<SocketAddress> &addresses)>;

  explicit Resolver(Loop &loop) : loop_(loop) {}
  // Cancels a lookup in flight: its callback never fires.
  ~Resolver();
  Resolver(const Resolver &) = delete;
  Resolver &operator=(const Resolver &) = delete;

  // Starts resolving `host` (an IP literal answers at once, still through `done`, on a later
  // loop turn). Replaces (cancels) a lookup in flight. kOk (then `done` fires exactly once,
  // unless cancelled) or kErrInternal (no thread could be started; `done` never fires).
  int resolve(const std::string &host, uint16_t port, Done done);
  // Abandons the lookup in flight at once: its callback never fires, and its thread ends
  // by itself when the system resolver answers.
  void cancel();
  bool busy() const { return pending_ != nullptr; }

 private:
  struct Request;
  static void lookup(std::shared_ptr<Request> r);

  Loop &loop_;
  std::shared_ptr<Request> pending_;  // shared with its lookup thread
};

}  // namespace parley

#endif

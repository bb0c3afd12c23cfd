#include "ice/probe.h"

#include <netdb.h>

#include <future>
#include <memory>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/resolver.h"
#include "base/udp_socket.h"
#include "ice/driver.h"

namespace parley::ice {

int resolve_host_port(const std::string &text, SocketAddress *out) {
  if (SocketAddress::parse(text, out) == kOk) return kOk;
  std::string host;
  uint16_t port = 0;
  int r = split_host_port(text, &host, &port);
  if (r != kOk) return r;
  struct addrinfo hints = {};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  struct addrinfo *res = nullptr;
  r = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (r == EAI_NODATA || r == EAI_ADDRFAMILY) {
    return fail(kErrNoUsableAddress, "'%s' has no address of a family this host has",
                text.c_str());
  }
  if (r != 0) {
    return fail(kErrNameNotFound, "cannot resolve '%s': %s", text.c_str(), gai_strerror(r));
  }
  SocketAddress best;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    SocketAddress a = SocketAddress::from_sockaddr(ai->ai_addr);
    if (a.is_v4()) {
      best = a;
      break;
    }
    if (!best.is_set()) best = a;
  }
  freeaddrinfo(res);
  if (!best.is_set()) {
    return fail(kErrNoUsableAddress, "'%s' has no IPv4 or IPv6 address", text.c_str());
  }
  best.set_port(port);
  *out = best;
  return kOk;
}

namespace {

// Feeds every datagram to both machines (each ignores transactions that are not its own)
// and is done when both are.
class Both : public StunMachine {
 public:
  Both(StunMachine *a, StunMachine *b) : a_(a), b_(b) {}
  bool poll_transmit(Timestamp now, Datagram *out) override {
    return (a_ && a_->poll_transmit(now, out)) || (b_ && b_->poll_transmit(now, out));
  }
  void handle_datagram(const uint8_t *d, size_t n, const SocketAddress &from,
                       Timestamp now) override {
    if (a_) a_->handle_datagram(d, n, from, now);
    if (b_) b_->handle_datagram(d, n, from, now);
    note(now);
  }
  Timestamp next_deadline() const override {
    const Timestamp x = a_ ? a_->next_deadline() : 0, y = b_ ? b_->next_deadline() : 0;
    return x == 0 ? y : y == 0 ? x : (x < y ? x : y);
  }
  void handle_timeout(Timestamp now) override {
    if (a_ && a_->next_deadline() != 0 && a_->next_deadline() <= now) a_->handle_timeout(now);
    if (b_ && b_->next_deadline() != 0 && b_->next_deadline() <= now) b_->handle_timeout(now);
    note(now);
  }
  bool done() const override { return (!a_ || a_->done()) && (!b_ || b_->done()); }
  Timestamp a_done_at = 0;

 private:
  void note(Timestamp now) {
    if (a_ && a_->done() && a_done_at == 0) a_done_at = now;
  }
  StunMachine *a_, *b_;
};

}  // namespace

int run_probe(const ProbeOptions &options, ProbeResult *out) {
  if (options.stun_servers.empty()) {
    return fail(kErrInvalidArgument, "netcheck needs at least one STUN server");
  }
  std::vector<SocketAddress> servers;
  for (const std::string &s : options.stun_servers) {
    SocketAddress a;
    int r = resolve_host_port(s, &a);
    if (r != kOk) return r;
    bool seen = false;
    for (const SocketAddress &o : servers) seen |= o == a;
    if (!seen) servers.push_back(a);  // "localhost:3478" and "127.0.0.1:3478" are one server
  }
  // One socket per address family (docs/design.md "One socket per family"), unless the
  // caller pinned one address.
  std::vector<SocketAddress> binds;
  const bool dual_stack = options.bind.empty();
  // IPv6 first: its host candidates get the higher local preference (RFC 8421).
  for (const std::string &text : dual_stack ? std::vector<std::string>{"[::]:0", "0.0.0.0:0"}
                                            : std::vector<std::string>{options.bind}) {
    SocketAddress a;
    int r = SocketAddress::parse(text, &a);
    if (r != kOk) return r;
    binds.push_back(a);
  }
  InterfaceOptions ifo;
  ifo.include_loopback = options.include_loopback;
  std::vector<SocketAddress> hosts;
  int r = host_interface_addresses(ifo, &hosts);
  if (r != kOk) return r;

  Loop loop;
  if ((r = loop.start()) != kOk) return r;
  // The outcome and, on failure, the message recorded on the loop thread (last_error_message
  // is per thread: it is re-recorded on the caller's thread below).
  struct Outcome {
    int code;
    std::string message;
  };
  std::promise<Outcome> finished;
  auto finish = [&finished](int code) {
    finished.set_value({code, code == kOk ? std::string() : last_error_message()});
  };
  std::unique_ptr<UdpSocket> sockets[2];  // [0] IPv4, [1] IPv6
  std::unique_ptr<Gatherer> gatherer;
  std::unique_ptr<Netcheck> netcheck;
  std::unique_ptr<Both> both;
  std::unique_ptr<MachineRunner> runner;
  Timestamp started = 0;

  r = loop.post([&] {
   try {
    GatherConfig gc;
    gc.deadline_ms = options.deadline_ms;
    for (const SocketAddress &want : binds) {
      auto socket = std::make_unique<UdpSocket>(loop);
      const int rr = socket->bind(want, nullptr);
      if (rr != kOk) {
        if (dual_stack && want.is_v6()) {
          PARLEY_LOG(kLogInfo, "ice", "no IPv6 socket: %s", last_error_message());
          continue;  // an IPv4-only host is fine
        }
        finish(rr);
        return;
      }
      const SocketAddress bound = socket->local_address();
      if (!out->bound.is_set() || bound.family() == servers[0].family()) out->bound = bound;
      for (SocketAddress h : hosts) {
        if (h.family() != bound.family()) continue;
        if (!bound.is_unspecified_ip() && !h.same_ip(bound)) continue;
        h.set_port(bound.port());
        gc.host_addresses.push_back(h);
      }
      if (!bound.is_unspecified_ip() && gc.host_addresses.empty()) {
        gc.host_addresses.push_back(bound);  // bound to an address we could not enumerate
      }
      for (const SocketAddress &srv : servers) {
        if (srv.family() != bound.family()) continue;
        SocketAddress base;
        if (route_source(srv, &base) != kOk) continue;  // no route: nothing to gather there
        base.set_port(bound.port());
        gc.stun_servers.push_back({srv, base});
        if (srv == servers[0] && !netcheck) {
          NetcheckConfig nc;
          nc.server = srv;
          nc.local_base = base;
          netcheck = std::make_unique<Netcheck>(nc, monotonic_now());
        }
      }
      sockets[bound.is_v6() ? 1 : 0] = std::move(socket);
    }
    if (options.relay.is_set()) gc.relay = options.relay;
    started = monotonic_now();
    gatherer = std::make_unique<Gatherer>(gc, started);  // sends nothing before poll_transmit
    if (netcheck) {
      // Gathering must not send to the discovery server's alternate IP before the filtering
      // tests are over (it would open the pinhole they probe), nor anywhere else but the
      // primary until the alternate IP is known.
      const SocketAddress primary = servers[0];
      Netcheck *nc = netcheck.get();
      gatherer->set_hold([nc, primary](const SocketAddress &to) {
        if (to == primary || nc->filtering_done()) return false;
        if (!nc->binding_done()) return true;
        const SocketAddress &alt = nc->report().other_address;
        return alt.is_set() && to.same_ip(alt);
      });
    }
    both = std::make_unique<Both>(gatherer.get(), netcheck.get());
    runner = std::make_unique<MachineRunner>(loop, sockets[0].get(), sockets[1].get(), *both,
                                             [&] { finish(kOk); });
    for (auto &socket : sockets) {
      if (!socket) continue;
      socket->set_receiver([&](const uint8_t *d, size_t n, const SocketAddress &from) {
        runner->on_datagram(d, n, from);
      });
    }
    runner->start();
   } catch (const std::bad_alloc &) {
    finish(fail(kErrNoMemory, "netcheck: out of memory"));
   } catch (...) {
    finish(fail(kErrInternal, "netcheck: unexpected exception"));
   }
  });
  if (r != kOk) return r;
  const Outcome outcome = finished.get_future().get();
  const int result = outcome.code;
  // Tear down on the loop thread, then stop it.
  loop.post([&] {
    runner.reset();
    for (auto &socket : sockets) socket.reset();
  });
  loop.stop();
  if (result != kOk) return fail(result, "%s", outcome.message.c_str());

  out->candidates = gatherer->candidates();
  out->servers = gatherer->servers();
  out->gathering_ns = both->a_done_at > started ? both->a_done_at - started : 0;
  out->netcheck_ran = netcheck != nullptr;
  if (netcheck) out->netcheck = netcheck->report();
  return kOk;
}

}  // namespace parley::ice

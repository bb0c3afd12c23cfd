// parley-stun-server: parley's STUN responder (src/stun/responder.h) on real sockets, for the
// NAT lab and interop tests. (parley-relay embeds the same responder.)
//
//   parley-stun-server --listen IP:PORT [--alt IP2:PORT2]
//
// With --alt it binds all four combinations of the two IPs and two ports so it can answer
// CHANGE-REQUEST (RFC 5780). Prints "ready" once bound; runs until SIGTERM/SIGINT, then prints
// its counters.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/udp_socket.h"
#include "stun/responder.h"

using namespace parley;

namespace {

int usage() {
  std::fprintf(stderr, "usage: parley-stun-server --listen IP:PORT [--alt IP2:PORT2]\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  if (const char *lvl = std::getenv("PARLEY_LOG_LEVEL")) log_set_level(std::atoi(lvl));
  stun::ResponderConfig config;
  config.software = "parley-stun-server";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      if (SocketAddress::parse(argv[++i], &config.primary) != kOk) {
        std::fprintf(stderr, "parley-stun-server: %s\n", last_error_message());
        return 2;
      }
    } else if (std::strcmp(argv[i], "--alt") == 0 && i + 1 < argc) {
      if (SocketAddress::parse(argv[++i], &config.alternate) != kOk) {
        std::fprintf(stderr, "parley-stun-server: %s\n", last_error_message());
        return 2;
      }
    } else {
      return usage();
    }
  }
  if (!config.primary.is_set()) return usage();
  if (config.alternate.is_set() &&
      (config.alternate.family() != config.primary.family() ||
       config.alternate.same_ip(config.primary) ||
       config.alternate.port() == config.primary.port())) {
    std::fprintf(stderr, "parley-stun-server: --alt needs another IP *and* another port\n");
    return 2;
  }

  std::vector<SocketAddress> binds = {config.primary};
  if (config.alternate.is_set()) {
    SocketAddress p_alt = config.primary, a_p = config.alternate;
    p_alt.set_port(config.alternate.port());
    a_p.set_port(config.primary.port());
    binds = {config.primary, p_alt, a_p, config.alternate};
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // the loop thread inherits the mask

  Loop loop;
  if (loop.start() != kOk) return 1;
  stun::Responder responder(config);
  std::vector<std::unique_ptr<UdpSocket>> sockets;
  std::promise<int> bound;
  loop.post([&] {
    for (const SocketAddress &a : binds) {
      auto s = std::make_unique<UdpSocket>(loop);
      UdpSocket *self = s.get();
      const int r = s->bind(a, [&, self](const uint8_t *d, size_t n, const SocketAddress &from) {
        uint8_t out[stun::kMaxMessageLen];
        stun::Responder::Reply reply;
        if (!responder.handle(d, n, from, self->local_address(), out, sizeof out, &reply)) return;
        for (auto &o : sockets) {
          if (o->local_address() == reply.source) {
            o->send(reply.to, out, reply.len);
            return;
          }
        }
      });
      if (r != kOk) {
        std::fprintf(stderr, "parley-stun-server: %s\n", last_error_message());
        bound.set_value(r);
        return;
      }
      sockets.push_back(std::move(s));
    }
    bound.set_value(kOk);
  });
  if (bound.get_future().get() != kOk) {
    loop.post([&] { sockets.clear(); });
    loop.stop();
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  std::promise<void> closed;
  loop.post([&] {
    sockets.clear();
    closed.set_value();
  });
  closed.get_future().wait();
  loop.stop();
  const auto &st = responder.stats();
  std::printf("requests %llu responses %llu errors %llu dropped %llu\n",
              (unsigned long long)st.requests, (unsigned long long)st.responses,
              (unsigned long long)st.error_responses,
              (unsigned long long)(st.dropped_malformed + st.dropped_not_request +
                                   st.dropped_budget));
  return 0;
}

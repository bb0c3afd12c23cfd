// parley-relay: presence, call routing, relayed media, rooms, STUN and HTTP/3 status on one
// UDP port. `parley-relay --help` lists the options; docs/relay.md explains them.
//
// Prints two machine-readable lines on stdout once it serves (tests and scripts wait for
// them):
//   fingerprint <64 hex>
//   listening quic+stun <ip:port> stun-alt <ip:port|none> [also <ip:port>]
// ("also": the QUIC+STUN port of the other family, with --listen given twice)
// SIGTERM/SIGINT shut it down gracefully (bounded by --shutdown-timeout-ms); exit status 0.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <memory>

#include "base/error.h"
#include "base/log.h"
#include "base/loop.h"
#include "identity/identity.h"
#include "identity/seed_file.h"
#include "relay/config.h"
#include "relay/server.h"

using namespace parley;

namespace {

int load_or_create_identity(const std::string &path, std::unique_ptr<identity::Identity> *id) {
  int r = identity::load_seed_file(path.c_str(), id);
  if (r == kOk) return kOk;
  if (r != kErrSeedFileNotFound) return r;
  r = identity::Identity::generate(id);
  if (r != kOk) return r;
  // No overwrite: if another process created the file meanwhile, load that one instead.
  r = identity::save_seed_file(**id, path.c_str(), false);
  if (r == kErrSeedFileExists) return identity::load_seed_file(path.c_str(), id);
  if (r == kOk) std::fprintf(stderr, "parley-relay: created identity seed %s\n", path.c_str());
  return r;
}

}  // namespace

int main(int argc, char **argv) {
  relay::RelayConfig config;
  std::string error;
  bool help = false;
  if (relay::parse_config(argc, argv, &config, &error, &help) != kOk) {
    std::fprintf(help ? stdout : stderr, "%s%s", help ? "" : "parley-relay: ", error.c_str());
    if (!help) std::fprintf(stderr, "\n%s", relay::usage());
    return help ? 0 : 2;
  }
  log_set_level(config.log_level);

  std::unique_ptr<identity::Identity> id;
  if (load_or_create_identity(config.seed_path, &id) != kOk) {
    std::fprintf(stderr, "parley-relay: identity seed %s: %s\n", config.seed_path.c_str(),
                 last_error_message());
    return 1;
  }

  // Signals are taken synchronously by this thread; the loop thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Loop loop;
  if (loop.start() != kOk) {
    std::fprintf(stderr, "parley-relay: cannot start the event loop\n");
    return 1;
  }
  std::unique_ptr<relay::Server> server;
  std::promise<std::string> started;
  loop.post([&] {
    if (relay::Server::create(loop, *id, config, &server) != kOk) {
      started.set_value("");
      return;
    }
    const SocketAddress alt = server->stun_alt_address();
    const SocketAddress other = server->other_address();
    started.set_value("listening quic+stun " + server->address().to_string() + " stun-alt " +
                      (alt.is_set() ? alt.to_string() : std::string("none")) +
                      (other.is_set() ? " also " + other.to_string() : std::string()));
  });
  const std::string listening = started.get_future().get();
  if (listening.empty()) {
    std::fprintf(stderr, "parley-relay: %s\n", last_error_message());
    loop.stop();
    return 1;
  }
  std::printf("fingerprint %s\n%s\n", id->fingerprint().hex().c_str(), listening.c_str());
  std::fflush(stdout);
  PARLEY_LOG(kLogInfo, "relay", "identity %s, %s", id->fingerprint().display().c_str(),
             listening.c_str());

  int sig = 0;
  sigwait(&sigs, &sig);
  PARLEY_LOG(kLogInfo, "relay", "%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  std::promise<void> stopped;
  loop.post([&] { server->shutdown([&] { stopped.set_value(); }); });
  stopped.get_future().wait();
  loop.post([&] { server.reset(); });
  loop.stop();
  PARLEY_LOG(kLogInfo, "relay", "stopped");
  return 0;
}

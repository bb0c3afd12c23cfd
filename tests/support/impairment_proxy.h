// A userspace UDP impairment forwarder for tests (this kernel has no tc netem): sits between
// one client and a target, and per direction drops, duplicates, reorders and delays packets,
// deterministically from a seed. rebind() moves the upstream side to a new source port, which
// the target sees exactly as a NAT rebinding. Runs on a Loop; configure and read it on the
// loop thread.
#ifndef PARLEY_TESTS_SUPPORT_IMPAIRMENT_PROXY_H
#define PARLEY_TESTS_SUPPORT_IMPAIRMENT_PROXY_H

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "base/address.h"
#include "base/loop.h"
#include "base/udp_socket.h"

namespace parley::testing {

struct Impairment {
  double loss = 0;       // probability a packet is dropped
  double duplicate = 0;  // probability a forwarded packet is sent twice
  double reorder = 0;    // probability a packet is held back until the next one overtook it
  uint32_t delay_ms = 0;   // fixed one-way delay (packets stay in order)
  uint32_t jitter_ms = 0;  // uniform extra delay in [0, jitter] (may reorder)
};

constexpr uint64_t kReorderHoldNs = 2000000;  // longest hold when no packet follows

struct DirectionStats {
  uint64_t received = 0, forwarded = 0, dropped = 0, duplicated = 0, reordered = 0;
  uint64_t dropped_at_least_min_size = 0;  // drops of packets >= count_min_size bytes
  uint64_t received_at_least_min_size = 0;
};

class ImpairmentProxy {
 public:
  ImpairmentProxy(Loop &loop, uint64_t seed) : loop_(loop), rng_(seed), timer_(loop) {}
  // Listens on `listen` (port 0: any) for the client and forwards to `target`. kOk/kErrSocket.
  int start(const SocketAddress &listen, const SocketAddress &target);
  SocketAddress address() const { return client_side_->local_address(); }
  // Applies from the next packet on. `up` is client -> target, `down` target -> client.
  void set(const Impairment &up, const Impairment &down) {
    up_cfg_ = up;
    down_cfg_ = down;
  }
  void set_count_min_size(size_t n) { count_min_size_ = n; }
  // New upstream socket (new source port): the target sees the client "move".
  int rebind();
  SocketAddress upstream_address() const { return upstream_->local_address(); }
  const DirectionStats &up() const { return up_; }
  const DirectionStats &down() const { return down_; }
  uint64_t send_errors() const {
    return client_side_->stats().send_errors + upstream_->stats().send_errors;
  }

 private:
  struct Pending {
    bool upstream;
    std::vector<uint8_t> data;
  };
  void on_packet(bool upstream, const uint8_t *data, size_t len);
  void emit(bool upstream, std::vector<uint8_t> data);
  void send_now(bool upstream, const std::vector<uint8_t> &data);
  void arm();
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  Loop &loop_;
  std::mt19937_64 rng_;
  Timer timer_;
  std::unique_ptr<UdpSocket> client_side_, upstream_;
  SocketAddress target_, client_;
  Impairment up_cfg_, down_cfg_;
  DirectionStats up_, down_;
  size_t count_min_size_ = 0;
  std::multimap<uint64_t, Pending> delayed_;        // due time (ns) -> packet
  std::unique_ptr<std::vector<uint8_t>> held_[2];   // reorder slot: [0] up, [1] down
  uint64_t held_since_[2] = {0, 0};
};

}  // namespace parley::testing

#endif

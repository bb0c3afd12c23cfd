// Candidate gathering, sans-I/O (RFC 8445 5.1.1). Host candidates are known up front and
// emitted at once; one Binding request per STUN server runs in parallel; each success adds a
// server-reflexive candidate (unless it equals a host candidate or an earlier srflx). A server
// that never answers cannot delay the others: gathering ends when every server has answered
// or failed, or at the deadline, whichever comes first, and reports what it has.
#ifndef PARLEY_ICE_GATHERER_H
#define PARLEY_ICE_GATHERER_H

#include <deque>
#include <functional>
#include <vector>

#include "ice/candidate.h"
#include "ice/machine.h"
#include "stun/client.h"

namespace parley::ice {

struct GatherConfig {
  // One entry per local interface address, with the shared socket's port for that family,
  // in preference order (earlier = higher local preference).
  std::vector<SocketAddress> host_addresses;
  struct StunServer {
    SocketAddress address;
    SocketAddress base;  // our local address toward it (route source + socket port)
  };
  std::vector<StunServer> stun_servers;
  SocketAddress relay;  // the relay's public address, announced as a relay candidate
  uint32_t deadline_ms = 2000;
  stun::RetransmitConfig rtx{250, 4, 4, 0};  // sends at 0/250/750/1750 ms, fails at 2750
  std::string software = "parley";
};

struct ServerResult {
  enum class Status { kPending, kOk, kTimeout, kErrorResponse, kDeadline };
  SocketAddress server;
  Status status = Status::kPending;
  SocketAddress mapped;
  Timestamp rtt = 0;
};

const char *server_status_name(ServerResult::Status s);

class Gatherer : public StunMachine {
 public:
  Gatherer(GatherConfig config, Timestamp now);

  // While `hold(server)` returns true, that server's Binding is not started (it still counts
  // against the deadline). For running gathering alongside NAT behaviour discovery on the
  // same socket: a request to the discovery server's alternate IP would open the very
  // pinhole its filtering test probes.
  void set_hold(std::function<bool(const SocketAddress &)> hold) { hold_ = std::move(hold); }

  bool poll_transmit(Timestamp now, Datagram *out) override;
  void handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                       Timestamp now) override;
  Timestamp next_deadline() const override;
  void handle_timeout(Timestamp now) override;
  bool done() const override { return done_; }

  // Candidates in the order found (trickle them as they come).
  bool poll_candidate(Candidate *out);
  const std::vector<Candidate> &candidates() const { return all_; }
  const std::vector<ServerResult> &servers() const { return servers_; }
  const stun::ClientStats &stun_stats() const { return client_.stats(); }

 private:
  uint16_t local_preference_of(const SocketAddress &base) const;
  void add(const Candidate &c);
  void collect(Timestamp now);
  void start_servers(Timestamp now);

  GatherConfig config_;
  Timestamp deadline_;
  stun::ClientTransactions client_;
  std::vector<ServerResult> servers_;
  std::vector<Candidate> all_;
  std::deque<Candidate> fresh_;
  std::vector<bool> started_;
  std::function<bool(const SocketAddress &)> hold_;
  bool done_ = false;
};

}  // namespace parley::ice

#endif

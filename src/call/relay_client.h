// A context's link to its relay: one QUIC connection (ALPN parley/1, mutual TLS, the relay's
// fingerprint pinned) on the context's shared socket, registration
// under the context's identity, keep-alive, and reconnection with jittered exponential
// backoff whenever the connection is lost (relay restart, network outage, idle timeout).
// After a reconnect it registers again by itself; the host only sees state events.
// Loop thread only.
#ifndef PARLEY_CALL_RELAY_CLIENT_H
#define PARLEY_CALL_RELAY_CLIENT_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/loop.h"
#include "base/nat64.h"
#include "base/resolver.h"
#include "call/backoff.h"
#include "identity/fingerprint.h"
#include "quic/endpoint.h"
#include "quic/endpoint_driver.h"
#include "signal/message.h"

namespace parley::call {

struct RelayClientConfig {
  SocketAddress relay;
  // Instead of `relay`: "host:port" (base/resolver.h split_host_port), resolved without
  // blocking before every connect, so a relay that moves keeps its clients.
  std::string relay_name;
  // The families the context has a socket of: the ones a resolved name's addresses are
  // dialed in. Set by the context.
  bool ipv4 = true;
  bool ipv6 = false;
  // Happy Eyeballs (RFC 8305): a name's addresses are dialed IPv6 first, the families
  // alternating; each next address this long after the previous one unless a connection
  // completed first (or at once when the previous attempt failed).
  uint32_t attempt_delay_ms = 250;
  // The relay's identity. Unset: the client learns the identity the relay presents without
  // revealing its own (it aborts that handshake before its certificate would be sent), goes
  // to kUntrusted, and waits for trust() — the host's decision — before it connects for real.
  std::optional<identity::Fingerprint> relay_fingerprint;
  // Short enough that a restarted relay answers the next PING with a stateless reset within a
  // few seconds (and below NAT binding timeouts); costs one small packet per interval.
  uint32_t keepalive_ms = 3000;
  uint32_t idle_timeout_ms = 15000;
  uint32_t backoff_initial_ms = 200;
  uint32_t backoff_max_ms = 10000;
  uint32_t change_check_ms = 1000;
  std::string software = "parley";
};

enum class RelayState {
  kIdle = 0,          // not started, or stopped
  kConnecting = 1,    // handshake or registration under way
  kRegistered = 2,    // register-ack received: calls can be placed and received
  kBackoff = 3,       // connection lost; reconnecting after a delay
  // Another connection registered this identity (the same seed on a second device or
  // process) and the relay closed ours. Not retried: two holders of one identity would
  // otherwise take the registration from each other forever. start() tries again.
  kReplaced = 4,
  // No fingerprint was configured: the relay presented presented_fingerprint() and nothing
  // of ours was sent to it (not even our certificate). trust() goes on; nothing else does.
  kUntrusted = 5,
};
const char *relay_state_name(RelayState s);

class RelayClient {
 public:
  struct Listener {
    // State changes; `error` says why a connection was lost (kOk otherwise).
    std::function<void(RelayState state, int error)> on_state;
    // Every signaling message except register-ack.
    std::function<void(const signal::Message &m)> on_message;
    std::function<void(const uint8_t *data, size_t len)> on_datagram;
  };

  // `endpoint`/`driver` are the context's (shared socket); both must outlive the client.
  RelayClient(Loop &loop, quic::Endpoint &endpoint, quic::EndpointDriver &driver,
              const identity::Fingerprint &self, RelayClientConfig config, Listener listener);
  ~RelayClient();

  void start();
  // Closes the connection (normal close) and stops reconnecting.
  void stop();
  // The same once every signaling message sent so far is acknowledged, or after `linger_ms`,
  // whichever comes first; then calls `done` (at once when nothing is outstanding). A
  // hangup sent just before the context ends must reach the relay: one lost packet with
  // nobody left to retransmit it leaves the peer in the call.
  void stop_after_flush(uint32_t linger_ms, std::function<void()> done);
  // The network changed. Registered: the registration is refreshed on the same connection
  // (QUIC moves it to the new path if the relay answers there; the answer carries the new
  // observed address); no answer within change_check_ms: reconnect at once. Waiting in
  // backoff, dialing, or `path_gone` (the connection's family is no longer reachable):
  // reconnect at once.
  void network_changed(bool path_gone = false);
  // Pins `fp` as the relay's identity and connects (from kUntrusted, or to replace a pin a
  // reconnect keeps failing on). A relay presenting another identity is refused.
  void trust(const identity::Fingerprint &fp);

  RelayState state() const { return state_; }
  // The relay's address: the configured one, or the address of its name the last connection
  // went to (unset before).
  const SocketAddress &relay_address() const { return current_; }
  // Every address the last resolution of the relay's name gave (the literal alone when no
  // name is configured), IPv6 first.
  const std::vector<SocketAddress> &relay_addresses() const { return resolved_; }
  // A NAT64 prefix (RFC 6052; set by the context once discovered, RFC 7050): the relay's IPv4
  // addresses are also dialed through it, synthesized, from an IPv6 socket. Unset: none.
  void set_nat64(const Nat64Prefix &prefix) { nat64_ = prefix; }
  // The families the context can reach now (RelayClientConfig::ipv4/ipv6), for the next
  // connection: a network change may have left IPv6 only.
  void set_families(bool ipv4, bool ipv6) {
    config_.ipv4 = ipv4;
    config_.ipv6 = ipv6;
  }
  // What the relay saw as our address in its last register-ack (a server-reflexive candidate).
  const SocketAddress &observed_address() const { return observed_; }
  const std::optional<identity::Fingerprint> &relay_fingerprint() const { return pinned_; }
  // What the relay presented while no fingerprint was pinned (unset before that).
  const std::optional<identity::Fingerprint> &presented_fingerprint() const {
    return presented_;
  }
  uint64_t registrations() const { return registrations_; }
  // Registrations refreshed on the same connection after a network change (it survived).
  uint64_t refreshes() const { return refreshes_; }
  // The relay connection's path statistics (RTT, loss); zeros while not connected.
  quic::PathStats path_stats() const { return conn_ ? conn_->stats() : quic::PathStats{}; }

  // kOk, kErrNotRegistered, kErrInvalidArgument (does not encode), or a quic send error.
  int send(const signal::Message &m);
  // kOk, kErrNotRegistered, or Connection::send_datagram's errors.
  int send_datagram(const uint8_t *data, size_t len);

  // Tests and fuzz targets that play the relay: closes the connection, stops reconnecting,
  // goes to kRegistered, and from then on hands every send to `sink` (a message, or a
  // datagram with `m` NULL), whose return value send/send_datagram return.
  using TestSink = std::function<int(const signal::Message *m, const uint8_t *d, size_t n)>;
  void attach_test_sink(TestSink sink);

 private:
  // One connection attempt of a Happy Eyeballs race, not yet connected.
  struct Attempt {
    quic::Connection *conn;
    SocketAddress to;
  };

  void connect();
  // Dials every address of `addresses` in turn (RFC 8305 order), racing them.
  void race(const std::vector<SocketAddress> &addresses);
  // Dials the next address of the race; false when none is left.
  bool dial_next();
  void on_attempt_closed(quic::Connection &c, const quic::CloseInfo &close);
  void abandon_attempts(const char *why);
  // Drops whatever connection or attempt there is and connects again now.
  void start_over(const char *why);
  void on_event(quic::Connection &c, const quic::Event &e);
  void set_state(RelayState s, int error);
  void schedule_reconnect(int error);

  Loop &loop_;
  quic::Endpoint &endpoint_;
  quic::EndpointDriver &driver_;
  identity::Fingerprint self_;
  RelayClientConfig config_;
  Listener listener_;
  std::optional<identity::Fingerprint> pinned_;
  std::optional<identity::Fingerprint> presented_;
  RelayState state_ = RelayState::kIdle;
  quic::Connection *conn_ = nullptr;
  int64_t stream_ = -1;
  SocketAddress observed_;
  Backoff backoff_;
  Resolver resolver_;
  SocketAddress current_;
  std::vector<SocketAddress> resolved_;
  Nat64Prefix nat64_;
  std::vector<SocketAddress> order_;  // the race's addresses, in dialing order
  size_t next_ = 0;                   // the next of order_ to dial
  std::vector<Attempt> attempts_;
  std::string failures_;  // "address (why), ..." of the race so far, for the error message
  int last_failure_ = 0;
  Timer retry_timer_;
  Timer attempt_timer_;
  Timer change_timer_;
  Timer flush_timer_;
  bool refreshing_ = false;  // a register sent after a network change awaits its ack
  uint64_t registrations_ = 0;
  uint64_t refreshes_ = 0;
  bool stopped_ = true;
  std::vector<uint8_t> scratch_;
  TestSink sink_;
};

}  // namespace parley::call

#endif

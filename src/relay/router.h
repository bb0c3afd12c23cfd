// The relay's switchboard, sans-I/O: presence (who is registered under which proved
// fingerprint), call routing, rooms, and media forwarding between the QUIC connections of one
// Endpoint. It never sees a media key: frames are forwarded by the stream id in their
// authenticated header (media/frame_header.h) with the sealed payload untouched.
//
// Time comes in through advance(); the I/O adapter (server.h) calls it before feeding the
// endpoint, and calls handle_timeouts() from a periodic tick. docs/protocol.md ("Relay") describes the
// behaviour seen from a client.
#ifndef PARLEY_RELAY_ROUTER_H
#define PARLEY_RELAY_ROUTER_H

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/token_bucket.h"
#include "identity/fingerprint.h"
#include "quic/endpoint.h"
#include "relay/judge.h"
#include "signal/message.h"

namespace parley::relay {

// Application error code the relay closes a client's connection with when that client does
// not read its signaling (its queue reached RelayConfig::signal_queue_bytes). It follows
// signal::kCloseShuttingDown and signal::kCloseReplaced (docs/protocol.md).
constexpr uint64_t kCloseSlowConsumer = 3;

struct RouterLimits {
  size_t max_calls = 10000;            // calls ringing or active, relay-wide
  // Calls a client placed (ringing or active) plus incoming calls it accepted.
  size_t max_calls_per_client = 8;
  // Unanswered invites waiting for one client, and from one caller to one callee: one caller
  // cannot take a callee's whole share, nor does ringing count against the callee's own calls.
  size_t max_incoming_invites = 16;
  size_t max_invites_per_pair = 1;
  size_t max_rooms = 1000;
  size_t max_room_size = 16;           // at most signal::kMaxParticipants
  size_t max_rooms_per_client = 4;
  uint32_t ring_timeout_ms = 60000;    // an unanswered invite ends after this
  // An answered call one of whose parties left the relay (its connection closed or timed
  // out) ends for the other party after this, unless the one that left came back and
  // resumed it: a crashed app never hangs up, and its peer would otherwise stay in the call.
  uint32_t left_call_timeout_ms = 60000;
  uint32_t signal_rate = 50;           // signaling messages per second per client...
  uint32_t signal_burst = 200;         // ...with this burst (ICE trickles candidates in bursts)
  uint32_t signal_byte_rate = 32768;   // signaling bytes per second per client...
  uint32_t signal_byte_burst = 131072; // ...with this burst (>= the largest message, 64 KiB)
  uint32_t media_packet_rate = 500;    // media datagrams per second per client (0: unlimited)
  uint32_t media_packet_burst = 1000;
  uint32_t media_byte_rate = 1 << 20;  // bytes per second per client (0: unlimited)
  uint32_t media_byte_burst = 2 << 20;
};

// Counters for /metrics. Gauges are computed on demand (Router::gauges).
struct RouterStats {
  uint64_t registrations = 0, registrations_replaced = 0;
  uint64_t signal_in = 0, signal_out = 0, signal_malformed = 0, signal_errors_sent = 0;
  uint64_t signal_rate_limited = 0, signal_ignored_replaced = 0, closed_slow_consumers = 0;
  uint64_t calls_started = 0, calls_answered = 0, calls_rejected = 0, calls_timed_out = 0;
  uint64_t calls_refused_offline = 0, calls_refused_limit = 0, spoof_attempts = 0;
  uint64_t accepts_refused_limit = 0;
  uint64_t relayed_packets = 0, relayed_bytes = 0;
  uint64_t dropped_malformed = 0, dropped_unknown_stream = 0, dropped_not_owner = 0;
  uint64_t dropped_rate_limited = 0, dropped_queue_full = 0;
  uint64_t rooms_created = 0, room_joins_refused = 0;
  // Call-resume: calls rebuilt from a party's proof (a restart lost them), resumes of calls
  // the relay still had, and refused ones (bad proof, stream id taken, limits).
  uint64_t calls_resumed = 0, calls_reattached = 0, resumes_refused = 0;
  // Answered calls ended because a party left the relay and did not come back in time.
  uint64_t calls_ended_party_gone = 0;
};

struct RouterGauges {
  size_t connections = 0, registered = 0, calls = 0, calls_active = 0, rooms = 0,
         room_members = 0;
};

// What the router needs of one client's connection. Router::accept wires quic::Connections
// up through this; the fuzzer (fuzz/fuzz_router.cc) drives the router with fakes. The calls
// behave as the quic::Connection calls of the same names.
class Link {
 public:
  virtual ~Link() = default;
  virtual const identity::Fingerprint &peer() const = 0;
  virtual SocketAddress remote() const = 0;
  virtual int send_message(int64_t stream, const uint8_t *data, size_t len) = 0;
  virtual int send_datagram(const uint8_t *data, size_t len) = 0;
  // Deferred, as quic::Connection::close: on_link_closed follows later.
  virtual void close(uint64_t app_code, const std::string &reason) = 0;
  virtual quic::PathStats stats() const = 0;
};

class Router {
 public:
  explicit Router(RouterLimits limits);
  ~Router();
  Router(const Router &) = delete;
  Router &operator=(const Router &) = delete;

  // What the endpoint's AcceptFn returns for a new parley/1 connection: any verified identity
  // is welcome (authentication is the TLS handshake; authorisation is per message).
  quic::Endpoint::Incoming accept();
  // The events of one client connection, for drivers other than accept()'s (the fuzzer).
  // `link` is the client's from on_link_connected until on_link_closed returns; the router
  // never deletes it.
  void on_link_connected(Link *link);
  void on_link_message(Link *link, int64_t stream, const uint8_t *data, size_t len);
  void on_link_datagram(Link *link, const uint8_t *data, size_t len);
  void on_link_closed(Link *link);
  // Sets the current time; call before handing the endpoint packets or expiries.
  void advance(Timestamp now) { now_ = now; }
  // Ends the ringing calls whose timeout has passed, and the answered calls whose party left
  // the relay more than left_call_timeout_ms ago; true if it ended any. O(log n) per call.
  bool handle_timeouts();
  // Runs the quality judge of every relayed call and room (call every 250 ms): true if it
  // sent anything. O(calls + room members).
  bool judge_tick();
  // Graceful shutdown: new connections and calls are refused from now on.
  void stop_accepting() { accepting_ = false; }
  bool accepting() const { return accepting_; }

  const RouterStats &stats() const { return stats_; }
  RouterGauges gauges() const;
  const RouterLimits &limits() const { return limits_; }
  // Tests: where the stream id counter continues (to exercise its wrap-around).
  void set_next_stream_for_test(uint32_t next) { next_stream_ = next; }
  // Tests: a relay turned malicious. `fn` sees, and may rewrite, every call message the
  // router forwards to the other party (invite, accept, candidates, ...), to prove that a
  // relay cannot get itself into a call's media.
  void set_tamper_for_test(std::function<void(signal::Message &)> fn) { tamper_ = std::move(fn); }

 private:
  struct Client;
  struct Call;
  struct Room;
  struct Route;
  class QuicLink;
  struct KeyHash {
    const uint8_t *key;  // the router's random SipHash key
    size_t operator()(const identity::Fingerprint &f) const { return hash(f.bytes, 32); }
    size_t operator()(const signal::Id16 &id) const { return hash(id.bytes, 16); }
    size_t hash(const uint8_t *data, size_t len) const;
  };

  void on_event(quic::Connection &c, const quic::Event &e);
  void on_connected(Client *cl);
  void on_closed(Client *cl);
  void on_message(Client *cl, int64_t stream, const uint8_t *data, size_t len);
  void on_datagram(Client *cl, const uint8_t *data, size_t len);
  void on_register(Client *cl, const signal::Message &m);
  void on_invite(Client *cl, signal::Message &m);
  void on_resume(Client *cl, const signal::Message &m);
  // Adds `call` to `cl`'s calls unless it is there already.
  static void attach(Client *cl, Call *call);
  void on_call_message(Client *cl, signal::Message &m);
  void on_room_join(Client *cl, const signal::Message &m);
  void on_room_leave(Client *cl, const signal::Message &m);
  void on_room_quality(Client *cl, const signal::Message &m);
  // Calls that count against max_calls_per_client: placed, or accepted incoming.
  size_t own_calls(const Client *cl) const;
  void send_room_update(Client *cl, Room *room, uint32_t stream);

  void send(Client *cl, const signal::Message &m);
  // `call` / `room`: the call or room the error is about, if any (the client ends it).
  void send_error(Client *cl, int code, const std::string &text,
                  const signal::CallId *call = nullptr, const signal::RoomId *room = nullptr);
  void end_call(Call *call, Client *except, int error, const char *why);
  void leave_room(Client *cl, Room *room);
  void broadcast_room(Room *room);
  uint32_t new_stream(const Route &r);
  Client *registered(const identity::Fingerprint &fp) const;
  // Rate-limited log line for a limit being hit (one per kind per second).
  void limit_hit(int kind, const char *fmt, ...);

  RouterLimits limits_;
  Timestamp now_ = 0;
  bool accepting_ = true;
  RouterStats stats_;
  std::unordered_map<Link *, std::unique_ptr<Client>> clients_;
  std::unordered_map<identity::Fingerprint, Client *, KeyHash> registry_;
  std::unordered_map<signal::CallId, std::unique_ptr<Call>, KeyHash> calls_;
  std::unordered_map<signal::RoomId, std::unique_ptr<Room>, KeyHash> rooms_;
  std::unordered_map<uint32_t, Route> streams_;
  std::set<std::pair<Timestamp, Call *>> ringing_;  // unanswered calls by ring deadline
  std::set<std::pair<Timestamp, Call *>> left_;     // calls a party left, by deadline
  void forget_left(Call *call);
  uint32_t next_stream_ = 1;
  uint8_t hash_key_[16];
  Timestamp limit_log_at_[8] = {};  // by LimitKind
  std::vector<uint8_t> scratch_;  // encode buffer, reused
  std::vector<Judge::Out> judge_out_;  // judge_tick scratch, reused
  std::function<void(signal::Message &)> tamper_;
};

}  // namespace parley::relay

#endif

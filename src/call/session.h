// The media side of one active call: its end-to-end keys (media/e2e_keys.h), the sealer and
// opener of its frames (media/frame_crypto.h), the ICE agent that looks for a direct path
// (ice/agent.h), the direct QUIC connection to the peer with its identity pinned, and the path
// manager (path/manager.h) that decides which path each frame takes. The Context owns one per
// active call and routes to it: STUN from the shared socket, frames arriving from the relay,
// the peer's candidates and path messages, and incoming direct connections.
//
// Roles (docs/design.md "Roles on the direct path"): the caller is the ICE controlling agent
// (unless a role conflict flips it) and dials the peer as the QUIC client on the first valid
// pair, without waiting for nomination; the callee accepts one connection, only from an
// address of the peer's that its agent knows (signaled, or learned from an authenticated
// check), and only if the certificate is the peer's. Everything runs on the context's loop
// thread.
#ifndef PARLEY_CALL_SESSION_H
#define PARLEY_CALL_SESSION_H

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/loop.h"
#include "base/udp_socket.h"
#include "call/relay_client.h"
#include "call/voice_channel.h"
#include "ice/agent.h"
#include "ice/birthday.h"
#include "ice/candidate.h"
#include "ice/restart.h"
#include "identity/identity.h"
#include "media/e2e_keys.h"
#include "media/frame_crypto.h"
#include "path/manager.h"
#include "path/retry.h"
#include "quic/endpoint.h"
#include "quic/endpoint_driver.h"
#include "signal/message.h"

namespace parley::call {

struct DirectConfig {
  bool enabled = true;
  // How long the direct attempt may take from the moment the call is active before the call
  // settles on the relay (an ICE restart starts a new budget).
  uint32_t budget_ms = 3000;
  uint32_t ta_ms = 20;  // ICE pacing
  // Announce loopback addresses as host candidates (tests with every party on one machine).
  bool include_loopback = false;
  // How long the direct path may stay silent before media falls back to the relay, at most.
  uint32_t dead_max_ms = 1000;
  // On an IPv6-only network, learn the NAT64 prefix (RFC 7050) so IPv4 literals (the relay,
  // peers' candidates) are reached through it.
  bool nat64_discovery = true;
  // STUN servers ("host:port", "[v6]:port", "v4:port"; at most kMaxStunServers) asked for
  // our public mappings next to the relay, at registration and after network changes: each
  // answer is a server-reflexive candidate, and the mappings together tell how our NAT maps
  // (ice/nat_behavior.h). A dead server costs nothing (calls never wait for them).
  std::vector<std::string> stun_servers;
  // Ask the network's gateway to forward a port to our IPv4 socket (PCP, NAT-PMP, UPnP IGD;
  // ice/port_mapper.h, ice/upnp_mapper.h): the mapping is a candidate any peer can reach,
  // whatever the NAT. Off unless asked: it opens a port on the user's router.
  struct PortMapping {
    bool enabled = false;
    bool pcp = true, natpmp = true, upnp = true;
    uint32_t lifetime_s = 7200;
  } port_mapping;
};
constexpr size_t kMaxStunServers = 8;

// The path layer's own enum (kRelay = 0, kDirect = 1, the wire's numbers too).
using PathKind = path::Path;
const char *path_kind_name(PathKind p);

// Per-call statistics.
struct CallStats {
  PathKind path = PathKind::kRelay;
  uint64_t rtt_ms = 0;               // smoothed RTT of the path in use
  uint64_t frames_sent = 0;          // sealed frames (each counts once, whatever path)
  uint64_t sent_relay = 0, sent_direct = 0;  // copies put on each path
  uint64_t send_failed = 0;          // a path refused a copy (queue full, not registered)
  uint64_t received = 0;             // authentic frames delivered to the host
  uint64_t received_relay = 0, received_direct = 0;
  uint64_t duplicates = 0;           // second copies (both paths) and replays, dropped
  uint64_t auth_failed = 0;          // forged or corrupted, dropped
  uint64_t lost = 0;                 // gaps in the peer's sequence never filled
  uint64_t path_changes = 0;
  int64_t time_to_direct_ms = -1;    // from active to the first switch to direct; -1: never
  std::string local_candidate, remote_candidate;  // the selected pair ("" before)
  int direct_error = 0;              // why there is no direct path (kErrIceFailed, ...), or 0
  uint64_t direct_attempts = 0;      // ICE generations run (the first one and every restart)
  uint64_t ice_restarts = 0;         // restarts, ours and the peer's
  uint64_t ice_generation = 0;       // the ICE generation in use (0: the offers')
  uint64_t direct_generation = 0;    // the generation whose connection is the direct path
  uint64_t direct_lost = 0;          // verified direct paths that died (closed or went silent)
  uint32_t next_retry_ms = 0;        // the delay before the next retry after a failure
  // STUN requests the ICE agents sent (checks, their retransmissions, consent checks), over
  // every generation, and the most any one generation sent: the probes a direct attempt
  // cost, bounded by the remote candidates times the checks' transmissions.
  uint64_t ice_checks_sent = 0, ice_checks_max_attempt = 0;
  // Birthday probing (ice/birthday.h): our role in the last attempt that used it ("none",
  // "hard", "easy"), the probes sent (every attempt; the easy side's toward one address, the
  // hard side's one per socket), the most in one attempt, the sockets opened, and whether a
  // probe met one of them.
  std::string birthday_role = "none";
  uint64_t birthday_probes = 0, birthday_probes_max_attempt = 0, birthday_sockets = 0;
  uint64_t birthday_hits = 0;
  VoiceStats voice;                  // the call's audio, both directions
};

class Session {
 public:
  // What the session uses of its context (all outlive the session).
  struct Env {
    Loop *loop;
    // Sends from the context's socket for `to` (its family's, or the one route() set).
    std::function<void(const SocketAddress &to, const uint8_t *data, size_t len)> send;
    // From now on, datagrams to `to` leave from `via` (nullptr: the context's socket again).
    std::function<void(const SocketAddress &to, UdpSocket *via)> route;
    // A datagram that arrived on a socket of the session's own, handled as if it had arrived
    // on the context's.
    std::function<void(const uint8_t *data, size_t len, const SocketAddress &from)> deliver;
    const ice::NatBehavior *nat = nullptr;  // our IPv4 NAT as the context classified it
    SocketAddress bind4;  // the IPv4 address extra sockets bind to (port 0), or unset
    quic::Endpoint *endpoint;
    quic::EndpointDriver *driver;
    RelayClient *relay;
    const identity::Identity *id;
    DirectConfig direct;
    // Plain frames and path changes go to the host through these.
    std::function<void(const media::FrameHeader &h, uint64_t index, const uint8_t *payload,
                       size_t len, PathKind via)>
        on_media;
    std::function<void(PathKind from, PathKind to, const char *reason)> on_path;
    // The context's candidates now, for an ICE restart; sets *nat64 as Params::nat64.
    std::function<std::vector<ice::Candidate>(Nat64Prefix *nat64)> gather;
  };
  struct Params {
    signal::CallId id;
    identity::Fingerprint peer;
    bool caller = false;
    uint32_t stream = 0;
    std::string local_ufrag, remote_ufrag;
    identity::SecretBuffer local_pwd, remote_pwd;  // ICE passwords
    std::vector<ice::Candidate> local_candidates, remote_candidates;
    bool remote_candidates_done = false;
    // Set when this side has no IPv4 host but a NAT64 prefix: every IPv4 candidate of the
    // peer is also tried at its synthesized IPv6 address.
    Nat64Prefix nat64;
    signal::NatInfo remote_nat;  // what the peer signaled of its IPv4 NAT
  };

  // Derives the media keys from `mine` and the peer's verified `peer_key`. kOk, kErrMediaKey,
  // kErrNoMemory, kErrCrypto.
  static int create(Env env, Params params, const media::LocalMediaKey &mine,
                    const signal::SignedKey &peer_key, std::unique_ptr<Session> *out);
  // Closes the direct connection (its late events are discarded).
  ~Session();

  // Seals one frame (header `flags`: media::kFrameFlagVoice or 0 for a datagram) and sends it
  // on the path(s) the manager chose. kOk, kErrMessageTooLarge, kErrQueueFull /
  // kErrNotRegistered (no path took it), kErrLimitReached (sequence space exhausted).
  int send(uint8_t flags, uint32_t timestamp, uint8_t profile, const uint8_t *payload,
           size_t len);

  // A frame for this call's stream arrived from the relay.
  void on_relay_frame(const uint8_t *data, size_t len);
  // A STUN datagram from the shared socket: true if this call's ICE agent took it.
  bool on_stun(const uint8_t *data, size_t len, const SocketAddress &from);
  // The peer's trickled candidates / end of candidates / path messages (via the relay).
  void on_signal(const signal::Message &m);
  // The network changed: the direct path is tried again at once with a new ICE generation
  // (RFC 8445 9), while media keeps flowing on whatever path carries it.
  void network_changed();
  // The relay connection registered (again): a restart that could not be sent is sent now,
  // as a new generation.
  void relay_registered();
  // An incoming QUIC connection from `remote`: the verifier and handler if it may be this
  // call's direct path, else an empty Incoming.
  bool wants_connection(const SocketAddress &remote) const;
  quic::Endpoint::Incoming accept_direct(const SocketAddress &remote);

  CallStats stats() const;
  const signal::CallId &id() const { return p_.id; }
  // The path media takes now (relay also while switching) and its QUIC numbers.
  PathKind path() const { return stats_.path; }
  quic::PathStats path_stats() const;

 private:
  Session(Env env, Params params);
  void start();
  void pump();            // runs the agent and the manager, re-arms the timer
  // Adds a signaled candidate of the peer, and its NAT64 synthesis when Params::nat64 is set.
  void add_remote_candidate(const ice::Candidate &c, Timestamp now);
  void on_agent_event(const ice::AgentEvent &e);
  // The controlling side's direct connection of this attempt, to `remote` (a valid pair's).
  void dial(const SocketAddress &remote);
  void on_direct_event(quic::Connection &c, const quic::Event &e);
  void on_direct_frame(const uint8_t *data, size_t len);
  void deliver(const uint8_t *data, size_t len, PathKind via);
  void poll_direct(Timestamp now);  // feeds the manager with the direct connection's progress
  void drain_manager();
  void give_up_direct(int error, const char *why);
  void close_direct();
  // A new ICE agent (generation) with these local credentials and candidates; the attempt's
  // budget starts now.
  void start_agent(Timestamp now, const std::string &ufrag, const identity::SecretBuffer &pwd,
                   const std::vector<ice::Candidate> &local);
  // Fresh ICE credentials for a new generation (the password in wiped memory).
  static int new_credentials(std::string *ufrag, identity::SecretBuffer *pwd);
  // Birthday probing (ice/birthday.h) in the current attempt, when the two NATs call for it
  // and the peer's address is known; again on each attempt.
  void maybe_start_birthday(Timestamp now);
  void run_birthday(Timestamp now);  // sends the probes due
  // Closes the sockets of an attempt that is over; `all`: the winner's too, and its route.
  void stop_birthday(bool all);
  void on_birthday_datagram(size_t k, const uint8_t *data, size_t len,
                            const SocketAddress &from);
  // The peer's end-of-candidates, for the agent once no birthday probe is under way (the
  // agent could otherwise fail the pair a probe is about to validate).
  void remote_candidates_done(Timestamp now);
  // Starts an ICE restart of ours (a retry, a network change).
  void restart_ice(Timestamp now, const char *why);
  // The peer's ice-restart message: adopt its generation and answer, or complete ours.
  void on_ice_restart(const signal::Message &m, Timestamp now);
  // Sends our credentials and candidates of `generation` to the peer.
  void send_restart(uint64_t generation, const std::string &ufrag,
                    const identity::SecretBuffer &pwd, const std::vector<ice::Candidate> &local);
  // The current attempt failed: its agent and pending connection go; a retry is scheduled
  // unless a working direct path carries the call.
  void end_attempt(int error, const char *why);
  // The current generation's connection completed its handshake: it becomes the direct path
  // (make-before-break: an older direct connection is closed only now).
  void promote(quic::Connection &c, Timestamp now);

  Env env_;
  Params p_;
  // What connection handlers hold instead of `this`: a connection accepted for this call
  // but not yet known to it (its handshake under way) may report its close after the
  // session is gone (at the context's teardown); the destructor clears this.
  std::shared_ptr<Session *> alive_ = std::make_shared<Session *>(this);
  media::FrameSealer sealer_;
  media::FrameOpener opener_;
  std::unique_ptr<ice::Agent> agent_;
  // Checks the agents before agent_ sent (CallStats::ice_checks_sent).
  uint64_t checks_before_ = 0, checks_max_ = 0;
  void retire_agent();
  path::Manager manager_;
  quic::Connection *direct_ = nullptr;  // verified: carries the call when the manager says
  quic::Connection *next_ = nullptr;    // the current generation's, not yet verified
  // The direct connection a newer one replaced: still delivering the peer's frames (the peer
  // may not have switched yet) until previous_close_at_, then closed.
  quic::Connection *previous_ = nullptr;
  Timestamp previous_close_at_ = 0;
  void close_previous();
  bool direct_verified_ = false;
  bool attempt_open_ = false;  // the current generation has no verified connection yet
  uint64_t agent_generation_ = 0;  // the generation agent_ runs
  ice::RestartSequencer restart_;
  bool restart_unsent_ = false;  // our last restart never reached the relay
  uint32_t unusable_waits_ = 0;  // restarts put off for want of a usable local address
  path::DirectRetry retry_;
  SocketAddress selected_remote_;
  SocketAddress direct_remote_;  // where the direct connection sends now
  std::vector<ice::PairInfo> valid_pairs_;  // of the current generation
  bool is_valid_remote(const SocketAddress &remote) const;
  Timestamp active_at_ = 0, budget_end_ = 0;
  uint64_t direct_rx_packets_ = 0;
  uint64_t first_index_ = 0;  // of the first authentic frame (the opener knows the highest)
  std::optional<ice::BirthdaySchedule> birthday_;  // of the current attempt
  Timestamp birthday_end_ = 0;   // of the round: the attempt lasts at least this long
  SocketAddress birthday_peer_;  // hard side: the easy side's address all probes go to
  // The peer's best IPv4 server-reflexive candidate of this generation (where a birthday
  // probe is aimed: the easy side's address, or the hard side's IP).
  ice::Candidate remote_srflx4_;
  std::vector<std::unique_ptr<UdpSocket>> birthday_sockets_;
  std::unique_ptr<UdpSocket> birthday_winner_;  // carries the path to birthday_peer_
  bool eoc_held_ = false;                       // remote_candidates_done waits
  Timer timer_;
  CallStats stats_;
  uint8_t frame_[quic::kMaxDatagramPayload];
  uint8_t plain_[quic::kMaxDatagramPayload];
};

}  // namespace parley::call

#endif

// ICE connectivity checks (RFC 8445 6.1.2-8, with trickle per RFC 8838) for one component of
// one UDP data stream, and consent freshness (RFC 7675) on the selected pair. Sans-I/O: the
// caller feeds datagrams and time in and takes datagrams and events out; nothing here owns a
// socket or a timer.
//
// One socket. A parley client sends everything (STUN to the relay, checks, QUIC) from one
// wildcard-bound UDP socket per address family, so every check leaves from the same base
// whatever local candidate it nominally belongs to. The agent therefore pairs each remote
// candidate with ONE local candidate per family: the highest-priority host candidate of that
// family stands for the socket (a pair is identified by its remote address alone). Local
// server-reflexive candidates are signaled to the peer but never paired (RFC 8445 6.1.2.4
// replaces them by their base); they only name the local side of a valid pair whose
// XOR-MAPPED-ADDRESS equals them. Remote relay candidates are ignored: parley's relay is not
// TURN and its path is handled by the path manager.
//
// Roles: RFC 8445 7.3.1.1 / 7.2.5.1 role-conflict repair with the tie-breaker, regular
// nomination by the controlling side. Roles are frozen once a pair is selected, because the
// caller has by then derived the QUIC client/server roles from them.
//
// Driving it: after every call that feeds something in (candidates, credentials, a datagram,
// a timeout), drain poll_transmit() and poll_event(), then arm a timer for next_deadline().
// Not thread-safe; one owner thread.
#ifndef PARLEY_ICE_AGENT_H
#define PARLEY_ICE_AGENT_H

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "ice/candidate.h"
#include "ice/machine.h"
#include "identity/secret.h"
#include "stun/client.h"
#include "stun/message.h"

namespace parley::ice {

// Candidates the agent keeps from the peer (signaled and peer-reflexive ones learned from
// incoming checks together). More are dropped and counted (AgentStats).
constexpr size_t kMaxRemoteCandidates = 32;
// Checklist size (RFC 8445 6.1.2.5 suggests 100). With one local candidate per family a pair
// exists per remote candidate at most, so kMaxRemoteCandidates binds first; this cap keeps the
// bound explicit should the pairing rule ever change.
constexpr size_t kMaxPairs = 100;
// Locally signaled server-reflexive candidates remembered (to name valid pairs' local side).
constexpr size_t kMaxLocalReflexive = 16;
// Responses waiting for poll_transmit; beyond this, requests are dropped unanswered.
constexpr size_t kMaxPendingReplies = 16;

struct AgentConfig {
  bool controlling = false;
  uint64_t tie_breaker = 0;  // 0: a random one is drawn
  // Our short-term credentials (RFC 8445 5.3: ufrag >= 4, password >= 22 ice-chars; both
  // required). Incoming checks must carry USERNAME "<local_ufrag>:<peer ufrag>" and verify
  // with local_pwd; with an empty password nothing is ever answered.
  std::string local_ufrag, local_pwd;
  // Pacing: at most one new check or retransmission per Ta over the whole agent. 20 ms: a
  // parley checklist rarely exceeds a dozen pairs, and one ~100-byte request per 20 ms is
  // 5 KB/s (RFC 8445 allows Ta down to 5 ms).
  uint32_t ta_ms = 20;
  // The first requests of an agent that go out together before pacing starts: a call's
  // first checks (typically a host and a server-reflexive pair) then cost no Ta each, which
  // is 20 ms off the time to direct. Counted in the rate bound: at most ta's rate plus this.
  uint32_t burst = 2;
  // Sends at 0, 100, 300, 700, 1500, 2300, 3100 ms; a pair fails at 3.9 s. Early retransmits
  // are cheap and matter: the first checks toward a filtering NAT are dropped until the peer's
  // own checks open its pinhole. The cap keeps later retransmits frequent, and the ~4 s life
  // outlasts the skew between the two sides starting checks (candidates cross the relay), yet
  // lets kFailed come within seconds of the last candidate.
  stun::RetransmitConfig check_rtx{100, 7, 8, 800};
  // After the first valid pair, the controlling side nominates the best valid pair once no
  // higher-priority pair is still frozen, waiting or in progress, or after this long.
  uint32_t nomination_wait_ms = 100;
  // RFC 7675: a consent check on the selected pair every interval x U(0.8, 1.2) ...
  uint32_t consent_interval_ms = 5000;
  // ... and consent is lost this long after the last successful one.
  uint32_t consent_timeout_ms = 30000;
  std::string software;  // SOFTWARE in our requests when non-empty, cut to 128 bytes; never
                         // in responses, which stay minimal
};

// The pair a valid/selected event or selected_pair() describes.
struct PairInfo {
  // Our side as the peer sees it: the host address, a signaled srflx, or a peer-reflexive
  // address learned from XOR-MAPPED-ADDRESS (local_type tells which).
  SocketAddress local;
  SocketAddress local_base;  // the host candidate standing for the socket of that family
  SocketAddress remote;      // where to send (and the only source to accept) on this path
  CandidateType local_type = CandidateType::kHost;
  CandidateType remote_type = CandidateType::kHost;
  uint64_t priority = 0;  // RFC 8445 6.1.2.3 pair priority (for the current roles)
  Timestamp rtt = 0;      // of the check that made it valid
};

// Append-only.
enum class AgentEventType {
  kPairValid,    // a pair became valid for the first time (pair)
  kSelected,     // nomination complete: use `pair` (both sides emit it, once)
  kFailed,       // every pair failed after end_of_remote_candidates(); the agent goes inert
  kConsentLost,  // no consent on the selected pair for consent_timeout_ms; checks stop
  kRoleChanged,  // a role conflict switched our role (controlling holds the new one)
};

const char *agent_event_name(AgentEventType t);  // "pair-valid", "selected", ...

struct AgentEvent {
  AgentEventType type = AgentEventType::kPairValid;
  PairInfo pair;             // kPairValid, kSelected, kConsentLost
  bool controlling = false;  // our role when the event was queued
};

struct AgentStats {
  uint64_t checks_sent = 0;           // first transmissions of connectivity checks
  uint64_t triggered_checks = 0;      // of which triggered (RFC 8445 7.3.1.4)
  uint64_t retransmissions = 0;       // of checks and consent requests
  uint64_t consent_checks_sent = 0;
  uint64_t requests_received = 0;     // with our ufrag
  uint64_t requests_bad_integrity = 0;  // dropped unanswered
  uint64_t requests_dropped = 0;      // reply queue full, or the agent is inert
  uint64_t success_responses_sent = 0;
  uint64_t error_responses_sent = 0;  // 400, 420, 487
  uint64_t role_conflicts = 0;        // requests or 487 responses that involved one
  uint64_t remote_ignored = 0;        // relay, other component, duplicate address
  uint64_t remote_dropped = 0;        // over kMaxRemoteCandidates
  uint64_t pairs_dropped = 0;         // over kMaxPairs
  uint64_t remote_prflx_learned = 0;
  uint64_t responses_wrong_source = 0;  // our transaction ID from another address
  uint64_t responses_bad_integrity = 0;
  uint64_t probes_written = 0;  // write_probe
};

class Agent {
 public:
  // `now`: the earliest time a check may go out. A zero tie_breaker draws a random one.
  Agent(AgentConfig config, Timestamp now);

  // The peer's ufrag and password from signaling. Until then no check can be sent (they are
  // signed with the peer's password), but incoming checks are answered (they use ours) and
  // the triggered checks they cause wait for this. kOk, or kErrInvalidArgument (empty, or
  // different from credentials already set: an ICE restart needs a new Agent), or
  // kErrNoMemory. The password is kept in wiped memory and `pwd`'s copy wiped.
  int set_remote_credentials(std::string ufrag, std::string pwd);

  // Our candidates as signaled. Host candidates (with the socket's port) form the local side
  // of pairs, the highest-priority one per family; a srflx whose family has no host stands
  // in with its base (`related`). Relay and peer-reflexive ones, other components and unset
  // addresses are ignored. Add the host candidates before end_of_remote_candidates().
  void add_local_candidate(const Candidate &c);

  // A candidate from the peer, at any time (trickle). kOk when kept, merged (a signaled
  // candidate with the address of a learned peer-reflexive one updates its type and priority)
  // or deliberately ignored (relay, component other than 1, duplicate address);
  // kErrInvalidArgument for an unset address or port 0; kErrLimitReached when over
  // kMaxRemoteCandidates or kMaxPairs (dropped).
  int add_remote_candidate(const Candidate &c, Timestamp now);
  // The peer signaled that no more candidates follow: the checklist may now fail.
  void end_of_remote_candidates(Timestamp now);

  // Next datagram to send at `now`: responses to checks first (never paced), then at most
  // one request per Ta (retransmission, triggered check, consent check, ordinary check).
  // `out->data` stays valid until the next call on the agent. False when nothing is due.
  bool poll_transmit(Timestamp now, Datagram *out);
  // A connectivity check for an address no candidate names (a birthday probe, ice/birthday.h):
  // a Binding request exactly like our checks from the socket of `family` (credentials, role,
  // priority), but not a transaction of ours, so its answer is ignored: the peer's agent
  // answers it as a check and follows with a triggered check of its own, which is what
  // makes the pair. Writes at most `cap` bytes to `buf` and sets *len. False until the
  // peer's credentials are set, once the agent is inert or completed, or if `cap` is too small.
  bool write_probe(int family, uint8_t *buf, size_t cap, size_t *len);

  // Offers a datagram from the shared socket. True if it was STUN for this agent: a Binding
  // request whose USERNAME starts with "<local_ufrag>:", or a response to one of our
  // transactions (consumed even when rejected: bad integrity, wrong source). False for
  // anything else (not STUN, another ufrag, a stranger's transaction), so the caller can offer
  // it to another consumer; false leaves the agent untouched.
  bool handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                       Timestamp now);

  // When handle_timeout (and then poll_transmit) should next run; 0 when nothing is pending.
  // May be <= now when something is already due.
  Timestamp next_deadline() const;
  void handle_timeout(Timestamp now);

  // Events in the order they happened; false when none is queued.
  bool poll_event(AgentEvent *out);

  bool controlling() const { return controlling_; }
  uint64_t tie_breaker() const { return tie_breaker_; }
  bool selected() const { return state_ == State::kCompleted; }
  bool failed() const { return state_ == State::kFailed; }
  bool consent_lost() const { return consent_lost_; }
  // The selected pair; false before selection.
  bool selected_pair(PairInfo *out) const;
  // Valid pairs so far, best (highest priority) first.
  std::vector<PairInfo> valid_pairs() const;
  size_t remote_candidate_count() const { return remotes_.size(); }
  // Whether `a` is one of the peer's candidates: signaled, or peer-reflexive (learned only from
  // checks that passed MESSAGE-INTEGRITY, so only the peer can add one).
  bool knows_remote(const SocketAddress &a) const { return find_remote(a) >= 0; }
  size_t pair_count() const { return pairs_.size(); }
  AgentStats stats() const;

  // For a demultiplexer serving several agents on one socket: if `data` is a STUN Binding
  // request with a USERNAME of the form "<ufrag>:<rest>", points *ufrag at the first part
  // (inside `data`) and returns true. Cheap: no integrity check, no allocation.
  static bool peek_local_ufrag(const uint8_t *data, size_t len, std::string_view *ufrag);

 private:
  enum class State { kRunning, kCompleted, kFailed };
  enum class PairState { kFrozen, kWaiting, kInProgress, kSucceeded, kFailed };

  struct Remote {
    Candidate cand;
    bool learned = false;  // peer-reflexive, from an incoming check
  };
  struct Pair {
    size_t remote;  // index into remotes_
    int family;
    PairState state = PairState::kFrozen;
    uint64_t priority = 0;
    bool valid = false;
    bool peer_nominated = false;  // USE-CANDIDATE received (controlled side)
    bool triggered = false;       // queued in triggered_
    bool use_candidate = false;   // the queued/next check nominates
    uint64_t cookie = 0;          // current transaction (0: none)
    SocketAddress mapped;         // XOR-MAPPED-ADDRESS of the success
    Timestamp rtt = 0;
  };
  struct LocalBase {
    bool present = false;
    bool synthesized = false;  // stands in for a srflx's base; a real host replaces it
    Candidate cand;
  };
  struct Txn {
    stun::TransactionId txid;
    uint64_t cookie;
    Timestamp forget_at;  // 0 while ClientTransactions owns it; else a cancelled one's end
  };
  struct Reply {
    std::vector<uint8_t> data;
    SocketAddress to;
  };

  LocalBase *base_for(int family);
  const LocalBase *base_for(int family) const;
  uint32_t prflx_priority(int family) const;
  // A Binding request as our checks carry (credentials, role, priority) with transaction `id`.
  int write_request(const stun::TransactionId &id, int family, bool nominate, uint8_t *buf,
                    size_t cap, size_t *len) const;
  uint64_t pair_priority(const Pair &p) const;
  void reprioritise();
  void pair_family(int family);
  void add_pair(size_t remote);
  int find_remote(const SocketAddress &a) const;
  int find_pair(const SocketAddress &remote) const;
  std::string pair_foundation(const Pair &p) const;
  void update_frozen();
  int pick_ordinary() const;
  bool has_work_to_send() const;
  void enqueue_triggered(size_t pair);
  bool start_check(size_t pair, bool consent, Timestamp now);
  void cancel_check(Pair &p, Timestamp now);  // stops retransmitting, still listens
  void drop_check(Pair &p);                   // forgets it entirely
  void fail_pair(size_t pair);
  void handle_request(const stun::Message &m, const SocketAddress &from, Timestamp now);
  void reply_success(const stun::Message &m, const SocketAddress &from);
  void reply_error(const stun::Message &m, const SocketAddress &from, int code,
                   const char *reason, const uint16_t *unknown, size_t unknown_count);
  bool queue_reply(const uint8_t *data, size_t len, const SocketAddress &to);
  void collect(Timestamp now);
  void on_result(uint64_t cookie, stun::ClientTransactions::Outcome outcome,
                 const std::vector<uint8_t> &response, Timestamp rtt, Timestamp now);
  void set_role(bool controlling);
  void maybe_nominate(Timestamp now);
  void select(size_t pair, Timestamp now);
  void check_failed(Timestamp now);
  void expire(Timestamp now);
  void advance(Timestamp now);  // timers and decisions that depend only on time and state
  PairInfo info(const Pair &p) const;
  void emit(AgentEventType t, const Pair *p);
  Timestamp consent_interval() const;

  AgentConfig config_;
  Timestamp ta_;
  Timestamp check_life_;  // how long a check transaction can live, for cancelled ones
  bool controlling_;
  uint64_t tie_breaker_;
  std::string remote_ufrag_;
  // The passwords (STUN short-term keys) live in wiped, guarded memory; the config's copy of
  // the local one is wiped once moved here.
  identity::SecretBuffer local_key_, remote_key_;
  LocalBase v4_, v6_;
  std::vector<Candidate> local_reflexive_;
  std::vector<Remote> remotes_;
  std::vector<Pair> pairs_;
  std::deque<size_t> triggered_;
  std::vector<Txn> txns_;
  stun::ClientTransactions client_;
  std::deque<Reply> replies_;
  std::vector<uint8_t> out_;  // the datagram handed out by poll_transmit
  std::deque<AgentEvent> events_;
  State state_ = State::kRunning;
  bool end_of_remote_ = false;
  Timestamp next_send_ = 0;        // pacing: no request before this
  uint32_t burst_left_ = 0;        // requests still exempt from pacing (AgentConfig::burst)
  Timestamp first_valid_at_ = 0;   // starts the nomination wait (controlling)
  int nominating_ = -1;            // pair whose USE-CANDIDATE check is queued or in flight
  int selected_ = -1;
  Timestamp consent_next_ = 0;
  Timestamp consent_expiry_ = 0;
  bool consent_lost_ = false;
  uint64_t seq_ = 0;
  Timestamp last_now_ = 0;  // latest time seen, for next_deadline()
  AgentStats stats_;
};

}  // namespace parley::ice

#endif

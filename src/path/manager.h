// The path-migration manager of one call (docs/design.md "Path manager"): which path each
// media frame takes, relay or direct, and when to move between them.
//
// Sans-I/O in the ngtcp2 sense: the call layer feeds it facts (the direct connection came up
// or closed, it received or sent something, an RTT sample, a path message from the peer) with
// the time as an argument, and asks it where to send the next frame. It never reads a clock,
// never does I/O and never allocates after construction, so tests drive two of them against
// each other on a simulated network with a simulated clock. Not thread-safe: one thread (the
// call's loop thread) makes every call.
//
// The two paths: the relay (the call's QUIC connection to the relay server: always there, it
// also carries signaling) and direct (a peer-to-peer QUIC connection with the peer's identity
// pinned, which may come and go). Receivers accept frames from either path at all times and
// drop the second copy by sequence number (the media layer's replay window), so the same
// sealed frame may go on both paths; everything below relies on that.
//
// States (send = what send_paths() answers):
//
//   kRelay      no direct connection                               send relay
//   kSwitching  direct verified, waiting for the peer's confirm    send relay + direct
//   kDirect     confirmed; relay media stopped (relay stays up)    send direct
//   kFallback   direct went silent (or the peer said so)           send relay + direct
//
//   kRelay --direct_up--> kSwitching --peer ack + dual-send window--> kDirect
//   kSwitching/kDirect --direct dead | peer proposes relay | no confirm in time--> kFallback
//   kFallback --direct healthy for recover_after--> kSwitching (a new attempt)
//   any --direct_down--> kRelay
//
// The confirm protocol (signal types kPathSwitchPropose = 10, kPathSwitchAck = 11, carried
// over the relay's signaling connection with fields sequence and path):
//   - Entering kSwitching starts a switch attempt with the next sequence number (1, 2, ...)
//     and sends Propose(path=direct, sequence=attempt).
//   - A side acks the peer's newest Propose(direct, s) with Ack(direct, s) once a media frame
//     from the peer has arrived on the direct path recently (within the dead-after time), i.e.
//     "your direct frames reach me". A propose that arrives before any direct frame (or before
//     this side's own direct_up) is remembered and acked by the first direct frame.
//   - A side in kSwitching moves to kDirect when it holds the ack for its current attempt AND
//     has dual-sent for at least dual_send_min_ms. Each side confirms its own sending
//     direction; the two directions switch independently.
//   - Leaving kDirect or kSwitching because the direct path died (or closed) sends
//     Propose(path=relay, sequence=attempt) so the peer falls back at once instead of waiting
//     for its own detection (which, if only the peer's sending direction broke, never comes:
//     our frames still reach the peer, so its side sees a live path).
// Stale, duplicated and reordered messages are harmless: acks count only for the current
// attempt, and the peer's proposals are ordered by (sequence, direct before relay), so
// anything not newer than what was already seen is ignored.
#ifndef PARLEY_PATH_MANAGER_H
#define PARLEY_PATH_MANAGER_H

#include <cstddef>
#include <cstdint>

#include "base/clock.h"

namespace parley::path {

// Same numbers as signal::PathKind (the wire's path field).
enum class Path : uint8_t { kRelay = 0, kDirect = 1 };

enum class State : uint8_t { kRelay = 0, kSwitching = 1, kDirect = 2, kFallback = 3 };

// send_paths() bits.
constexpr unsigned kSendRelay = 1u;
constexpr unsigned kSendDirect = 2u;

// Why the active path changed. Append-only numbering (the C API may mirror it).
enum class Reason : uint8_t {
  kDirectVerified = 1,   // relay -> direct: first switch after direct_up
  kDirectLost = 2,       // direct -> relay: the direct path went silent
  kDirectClosed = 3,     // direct -> relay: direct_down while on direct
  kPeerFallback = 4,     // direct -> relay: the peer proposed the relay
  kDirectRecovered = 5,  // relay -> direct: switch again after a fallback
  kConfirmTimeout = 6,   // (attempt aborted, see Stats) the peer never confirmed
};
// "direct-verified", "direct-lost", ... (static strings; "unknown" for other values).
const char *reason_name(Reason r);
const char *state_name(State s);

// Append-only numbering. Events are a tagged struct: read `type` first, then the fields
// documented for it; new types may appear, so ignore the ones you do not know.
enum class EventType : uint8_t {
  // active() changed: old_path -> new_path, for `reason`. Only real changes are reported: a
  // switch attempt that ends in kFallback before reaching kDirect never exposed the direct
  // path to the host, so it is counted in Stats (aborted_attempts), not reported here.
  kActiveChanged = 1,
};

struct PathEvent {
  EventType type = EventType::kActiveChanged;
  Path old_path = Path::kRelay;
  Path new_path = Path::kRelay;
  Reason reason = Reason::kDirectVerified;
  uint64_t attempt = 0;  // the switch attempt this change belongs to
  Timestamp at = 0;      // the `now` of the call that caused it
};

// Same numbers as signal::Type::kPathSwitchPropose / kPathSwitchAck.
enum class MessageType : uint8_t { kPropose = 10, kAck = 11 };

// A path message, sent and received over the relay's signaling connection as a signal::Message
// of the same type with fields sequence and path (the call layer adds the call id).
struct PathMessage {
  MessageType type = MessageType::kPropose;
  Path path = Path::kRelay;
  uint64_t sequence = 0;  // switch attempt number of the proposing side; never 0
};

struct Config {
  // Minimum make-before-break window: after direct_up, frames go on both paths for at least
  // this long even if the peer confirms sooner. It is longer than dead_min_ms so that a direct
  // path that works for a moment and then dies (an ICE pinhole that closes, a firewall that
  // lets the first packets through) is caught while relay media still flows, and it gives
  // QUIC a few RTT samples (10 frames at 50/s) so dead_after() rests on measurements rather
  // than on the initial RTT guess before relay media stops.
  uint32_t dual_send_min_ms = 200;
  // A switch attempt the peer has not confirmed after this long is abandoned (kFallback,
  // retried after recover_after like any failure): covers a peer whose direct frames never
  // reach us in one direction and a confirm lost with a relay reconnect. Well above one
  // relay round trip plus dual_send_min_ms.
  uint32_t confirm_timeout_ms = 3000;
  // The direct path is dead when something ack-eliciting was sent on it after the last packet
  // received and nothing arrived for dead_after = clamp(rtt_multiplier x srtt + margin,
  // dead_min, dead_max). Why these numbers: the peer acks within max_ack_delay (25 ms) and
  // media flows at 50 frames/s each way, so a healthy path is never silent for more than
  // about one RTT + 25 ms + 20 ms; 4 x srtt (like QUIC's PTO, with room for RTT variance)
  // plus 50 ms stays clear of that on any healthy path, slow ones included (srtt 150 ms ->
  // 650 ms). The floor keeps scheduling hiccups on LAN-fast paths (srtt ~1 ms) from looking
  // like death; the ceiling is the longest media may stall before going to the relay.
  // With srtt up to ~50 ms detection takes <= 250 ms, which keeps the end-to-end hole under
  // the 300 ms target (one frame interval to send into the silence + dead_after).
  uint32_t rtt_multiplier = 4;
  uint32_t dead_margin_ms = 50;
  uint32_t dead_min_ms = 100;
  uint32_t dead_max_ms = 1000;
  // Hysteresis: in kFallback the direct path must look healthy (packets arriving, no dead
  // condition) for this long before a new switch attempt, so a flapping path does not bounce
  // media back and forth. Doubles with each consecutive failure (a fallback or an abandoned
  // attempt before direct was stable) up to recover_max_ms; resets to recover_after_ms once
  // direct has carried media for stable_after_ms.
  uint32_t recover_after_ms = 1000;
  uint32_t recover_max_ms = 16000;
  uint32_t stable_after_ms = 10000;
};

struct Stats {
  uint64_t attempts = 0;          // switch attempts started (proposals sent)
  uint64_t switches = 0;          // times media moved to direct (kSwitching -> kDirect)
  uint64_t fallbacks = 0;         // times media left direct (kDirect -> kFallback / kRelay)
  uint64_t aborted_attempts = 0;  // kSwitching -> kFallback / kRelay (never reached direct)
  Reason last_abort_reason = Reason::kDirectLost;  // valid if aborted_attempts > 0
  uint64_t frames_relay = 0;      // send_paths() answers: relay only,
  uint64_t frames_direct = 0;     //   direct only,
  uint64_t frames_both = 0;       //   both paths
  uint64_t messages_ignored = 0;  // stale, duplicate or unsolicited peer messages
  uint64_t messages_coalesced = 0;  // queued messages replaced by a newer one of their kind
  uint64_t events_dropped = 0;    // oldest events dropped because the host did not poll
  Timestamp last_change = 0;      // `now` of the last state change (0: never changed)
};

class Manager {
 public:
  // Out-of-range values are corrected (dead_max >= dead_min >= 1, recover_max >=
  // recover_after, rtt_multiplier >= 1). Starts in kRelay.
  explicit Manager(const Config &config = Config());

  // --- facts from the call layer (each may queue events and messages; drain both after) ---

  // The direct QUIC connection completed its handshake with the peer's pinned identity.
  // Starts a switch attempt (kSwitching, Propose(direct)). Ignored if direct is already up.
  void direct_up(Timestamp now);
  // The direct connection is gone (closed, failed, consent lost). Back to kRelay; reported as
  // a change (kDirectClosed) if media was on direct, and the peer is told (Propose(relay))
  // if we were sending on direct. A later direct_up starts over. Ignored if not up.
  void direct_down(Timestamp now);
  // The direct connection received a packet (any: ACKs count; the call layer watches QUIC's
  // PathStats::packets_received grow). Ignored while direct is not up.
  void on_direct_rx(Timestamp now);
  // The call layer sent something ack-eliciting on the direct connection (a media DATAGRAM,
  // a PING). Starts the dead-after clock if nothing was outstanding. Ignored while not up.
  void on_direct_tx(Timestamp now);
  // An authentic media frame from the peer arrived on the direct path (implies on_direct_rx).
  // May ack the peer's pending proposal.
  void on_direct_media(Timestamp now);
  // The direct connection's smoothed RTT in nanoseconds (0: no sample yet, dead_after() is
  // then dead_max_ms). Call whenever QUIC has a new value; cheap.
  void set_direct_rtt(uint64_t smoothed_rtt_ns);
  // A path message from the peer (via the relay). kOk (acted on, or ignored as stale,
  // duplicate or unsolicited: see Stats::messages_ignored), or kErrInvalidArgument (unknown
  // type or path, sequence 0: nothing changes).
  int on_peer_message(const PathMessage &msg, Timestamp now);

  // --- time ---

  // When handle_timeout must next run (dead-after expiry, end of the dual-send window,
  // confirm timeout, end of the recovery wait); 0 if no timer is needed. Changes after any
  // input, so re-read it after each.
  Timestamp next_deadline() const;
  // Runs whatever is due at `now`. Harmless when nothing is (every input and send_paths()
  // also runs it, so a late timer costs accuracy, never correctness).
  void handle_timeout(Timestamp now);

  // --- outputs ---

  // Where the next media frame goes: kSendRelay, kSendDirect or both. Call exactly once per
  // outgoing frame (the answer is counted in Stats); runs handle_timeout(now) first. Never
  // allocates (50 calls/s per call).
  unsigned send_paths(Timestamp now);
  // The oldest undelivered change; false if none. At most kMaxEvents are kept: when the host
  // does not poll, the oldest are dropped (counted) since active() is authoritative anyway.
  bool poll_event(PathEvent *out);
  // The next message to send to the peer over the relay signaling connection; false if none.
  // Bounded without dropping anything that matters: at most one message of each kind
  // (propose direct, propose relay, ack) waits; a newer one of the same kind replaces the
  // waiting one (and moves to the back), because the peer acts only on the newest of each
  // kind and would ignore the older one as stale anyway.
  bool poll_message(PathMessage *out);

  // What the host should see as the current path: direct in kDirect, relay otherwise.
  Path active() const { return state_ == State::kDirect ? Path::kDirect : Path::kRelay; }
  State state() const { return state_; }
  const Stats &stats() const { return stats_; }
  const Config &config() const { return cfg_; }
  bool direct_is_up() const { return direct_up_; }
  // The current switch attempt number (0: none yet).
  uint64_t attempt() const { return attempt_; }
  // The silence after which the direct path counts as dead, from the current srtt (ns).
  Timestamp dead_after() const;
  // The healthy time kFallback currently requires before retrying (ns), backoff included.
  Timestamp recover_after() const;

  static constexpr size_t kMaxEvents = 8;
  static constexpr size_t kMaxMessages = 3;  // one per kind

 private:
  void step(Timestamp now);
  void set_state(State s, Timestamp now);
  void start_attempt(Timestamp now, Reason reason);
  void fall_back(Timestamp now, Reason reason, bool tell_peer);
  void complete_switch(Timestamp now);
  void maybe_ack(Timestamp now);
  void note_rx(Timestamp now);
  void push_event(Path from, Path to, Reason reason, Timestamp now);
  void push_message(MessageType type, Path path, uint64_t sequence);

  Config cfg_;
  State state_ = State::kRelay;
  Stats stats_;

  // Our side.
  bool direct_up_ = false;
  uint64_t attempt_ = 0;          // our newest proposal's sequence
  Reason attempt_reason_ = Reason::kDirectVerified;
  Timestamp attempt_started_ = 0;
  bool acked_ = false;            // the peer acked attempt_
  Timestamp direct_since_ = 0;    // entered kDirect
  uint32_t failures_ = 0;         // consecutive failures, for the recovery backoff

  // Liveness of the direct path.
  uint64_t srtt_ns_ = 0;
  bool rx_seen_ = false;          // last_rx_ is valid
  Timestamp last_rx_ = 0;
  bool tx_outstanding_ = false;   // something ack-eliciting sent since last_rx_
  Timestamp first_tx_ = 0;        // ... the first such send
  bool dead_ = false;
  bool healthy_ = false;          // healthy_since_ is valid (kFallback's recovery clock)
  Timestamp healthy_since_ = 0;

  // The peer's side.
  uint64_t peer_key_ = 0;         // newest peer proposal seen: sequence * 2 + (relay ? 1 : 0)
  uint64_t peer_proposal_ = 0;    // the peer's propose(direct) we may ack (0: none pending)
  uint64_t acked_peer_ = 0;       // highest peer proposal we acked
  bool media_seen_ = false;       // last_media_ is valid
  Timestamp last_media_ = 0;      // last direct media frame from the peer

  // Bounded queues (no allocation).
  PathEvent events_[kMaxEvents];
  size_t event_head_ = 0, event_count_ = 0;
  PathMessage messages_[kMaxMessages];
  size_t message_count_ = 0;
};

}  // namespace parley::path

#endif

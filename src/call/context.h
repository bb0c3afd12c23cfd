// The client context: one identity, one loop thread, one shared UDP socket with its QUIC
// endpoint, the relay link, and the calls and rooms signalled through the relay. Media
// frames (media/frame_header.h + sealed payload) travel over the relay as QUIC DATAGRAMs;
// the direct path arrives with the ICE/path layers.
//
// Threading: every public function may be called from any thread; it runs on the loop and
// returns its result. Events are delivered on the loop thread, to the handler given at
// creation; the handler may call the context (calls from the loop thread run inline) but must
// not block.
#ifndef PARLEY_CALL_CONTEXT_H
#define PARLEY_CALL_CONTEXT_H

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/loop.h"
#include "base/network_watch.h"
#include "base/udp_socket.h"
#include "call/call_quality.h"
#include "quality/min_rtt.h"
#include "call/recent_calls.h"
#include "call/relay_client.h"
#include "call/session.h"
#include "call/voice_channel.h"
#include "ice/driver.h"
#include "ice/gatherer.h"
#include "ice/nat_behavior.h"
#include "ice/port_mapper.h"
#include "ice/upnp_mapper.h"
#include "identity/identity.h"
#include "identity/secret.h"
#include "quic/endpoint.h"
#include "quic/endpoint_driver.h"
#include "signal/message.h"

namespace parley::call {

struct ContextConfig {
  // Set: one socket, of its family. Unset: a socket of each family (0.0.0.0 and [::], on one
  // port where it is free; IPv4 alone on a host without IPv6).
  SocketAddress bind;
  // Set: the IPv6 socket's address next to an IPv4 `bind`. Calls offer host candidates of
  // both families and pair within each, so two parties with IPv6 go direct over it whatever
  // their IPv4 NATs do. Unset: "[::]:0" when `bind` is unset too, else no IPv6 socket.
  SocketAddress bind6;
  // Non-zero: bind the first free port in port_min..port_max (bind's port must be 0).
  uint16_t port_min = 0, port_max = 0;
  RelayClientConfig relay;
  DirectConfig direct;  // the direct path (ICE + peer-to-peer QUIC); media starts on the relay
  AudioConfig audio;    // the PCM format of every call's voice channel, its profile and jitter
  // An active call with no path to the peer this long ends with kErrNoPath: the relay not
  // registered, or silent for 2 s (a dead relay's connection lingers until the QUIC idle
  // timeout), and media not on the direct path. 0: never.
  uint32_t no_path_timeout_ms = 30000;
  // Notice network changes by ourselves where the OS allows it (Linux: rtnetlink), as if the
  // host had called network_changed(), this long after the last event of a burst.
  bool watch_network = true;
  uint32_t network_debounce_ms = 500;
};

enum class CallState {
  kInviting = 1,  // invite sent, nothing heard yet
  kRinging = 2,   // the callee's device is ringing
  kIncoming = 3,  // an invite arrived; accept or reject it
  kActive = 4,    // accepted: media flows
  kEnded = 5,     // terminal; `error` says why (kOk: a normal hangup)
};
const char *call_state_name(CallState s);

// Append-only numbering.
enum class EventType {
  kRelayState = 1,    // relay_state, error; kUntrusted: peer, the identity the relay presented
  kIncomingCall = 2,  // call, peer
  kCallState = 3,     // call, peer, call_state, error, text
  // An application datagram (Context::send_media) or a room frame: call or room, stream_id,
  // header fields, payload/len (valid during the handler). Voice frames raise no event: they
  // go to the call's VoiceChannel.
  kMedia = 4,
  kRoomUpdate = 5,    // room, members, stream_id (our own in that room)
  // error, text: an error from the relay not tied to a call; or, with call and peer set, an
  // invite this library refused (its media key forged, stale or replayed: kErrMediaKey).
  kError = 6,
  kPathChanged = 7,   // call, path_from, path (the new one), text (the reason)
  // Our sending profile changed: call, profile_from, profile, reason (quality::Reason), text
  // (its name), timestamp (the media timestamp of ours from which it applies).
  kQualityChanged = 8,
  // Not raised any more: with no fingerprint configured the relay goes to kUntrusted and the
  // host decides (trust_relay) before anything of ours reaches it.
  kRelayTrusted = 9,
};

// Who a kCallState or kError event's error code and text come from. Only kLocal is this
// library's own word; kPeer text crossed the relay unauthenticated, so the relay could have
// written it too.
enum class Origin {
  kLocal = 0,
  kRelay = 1,
  kPeer = 2,
};

struct Event {
  explicit Event(EventType t) : type(t) {}
  EventType type;
  RelayState relay_state = RelayState::kIdle;
  int error = 0;
  std::string text;
  signal::CallId call;
  identity::Fingerprint peer;
  CallState call_state = CallState::kEnded;
  signal::RoomId room;
  bool is_room = false;
  std::vector<signal::Member> members;
  uint32_t stream_id = 0;
  uint32_t sequence = 0, timestamp = 0;
  uint8_t profile = 0;
  const uint8_t *payload = nullptr;
  size_t len = 0;
  PathKind path = PathKind::kRelay;       // kMedia: the path the frame came by; kPathChanged: new
  PathKind path_from = PathKind::kRelay;  // kPathChanged
  uint8_t profile_from = 0;               // kQualityChanged
  std::shared_ptr<VoiceChannel> voice;    // kIncomingCall: the call's voice channel
  quality::Reason reason = quality::Reason::kNone;
  Origin origin = Origin::kLocal;  // of error and text
};

using EventHandler = std::function<void(const Event &)>;

struct ContextStats {
  uint64_t media_sent = 0, media_received = 0;
  uint64_t media_send_failed = 0;    // refused by the QUIC connection (queue full, not registered)
  uint64_t media_unknown_stream = 0; // arrived for no call or room we are in
  uint64_t media_after_end = 0;      // direct-path frames of a call that had just ended
  uint64_t room_refusals_sent = 0;   // the relay's room upgrade proposals we refused
  uint64_t room_rounds_cancelled = 0;  // proposals we accepted that the relay then cancelled
  uint64_t resumes_sent = 0;         // active calls re-announced to a relay that had lost them
  uint64_t resumes_ignored = 0;      // call-resume messages from the relay (never acted on)
  uint64_t relay_errors_kept = 0;    // relay errors naming an active call, which it outlived
  uint64_t hangups_delivered_late = 0;  // hangups queued while the relay was away, sent after
  uint64_t network_changes = 0;      // network_changed() calls and changes the watch saw
};

class Context {
 public:
  // Starts the loop thread, binds the socket and connects to the relay. `id` must outlive
  // the context. kOk, kErrInvalidArgument (no relay address, or a relay name that is not
  // host:port), kErrAddressFamily (bind and relay addresses of different families),
  // kErrSocket, kErrCrypto, kErrInternal. A relay name that does not resolve is
  // no error here: the relay state events carry kErrNameNotFound / kErrNoUsableAddress.
  static int create(const identity::Identity &id, ContextConfig config, EventHandler handler,
                    std::unique_ptr<Context> *out);
  // Hangs up calls, leaves rooms, closes the relay connection, stops the loop. No events are
  // delivered once it returns. Not from the loop thread.
  ~Context();

  const identity::Fingerprint &fingerprint() const { return fp_; }
  RelayState relay_state();
  // Returns once whatever the loop thread is doing now (an event handler, say) is done: a
  // barrier for the C layer before it frees a handle an event may be naming.
  void sync();
  SocketAddress local_address();
  SocketAddress observed_address();
  // The port the gateway forwards to us (DirectConfig::port_mapping); protocol kNone: none.
  ice::PortMapping port_mapping();
  // The host's word that the network changed (an interface came or went, Wi-Fi to cellular):
  // the relay connection is checked (reconnected at once if it no longer answers), our
  // mappings are learned again, and every active call restarts ICE while its media keeps
  // flowing. Any thread. kOk, kErrClosed.
  int network_changed();
  // Where the relay connection goes: the relay's address, or the one of its name's that
  // answered first (unset before a connection).
  SocketAddress relay_address();
  // The relay's identity: the configured one, or the one the host trusted (unset before).
  std::optional<identity::Fingerprint> relay_fingerprint();
  // The host's trust decision: pins `fp` as the relay's identity and connects. For a relay in
  // kUntrusted (no fingerprint configured; the event carried the one it presented). kOk.
  int trust_relay(const identity::Fingerprint &fp);

  // Calls `to` through the relay. kOk (*out set; progress as kCallState events),
  // kErrNotRegistered, kErrInvalidArgument.
  int start_call(const identity::Fingerprint &to, signal::CallId *out);
  // The same with an id the caller chose (fresh random, e.g. signal::CallId::random()), so
  // it can be known before any event of the call fires. kErrInvalidArgument if in use.
  // `voice` (optional) receives the call's voice channel at once: fetched later, the call
  // may already have ended and been forgotten (a peer that is not registered).
  int start_call_with_id(const identity::Fingerprint &to, const signal::CallId &id,
                         std::shared_ptr<VoiceChannel> *voice = nullptr);
  // kOk, kErrCallNotFound (unknown), kErrWrongCallState (accept/reject: not an incoming call
  // waiting for an answer), kErrNotRegistered.
  int accept(const signal::CallId &call);
  int reject(const signal::CallId &call);
  int hangup(const signal::CallId &call);

  // An application datagram (a game's own payload, next to voice): seals `payload` with the
  // call's end-to-end key for this direction (media/frame_crypto.h) and sends it on the path
  // the path manager chose (relay, direct, or both during a switch). It shares the call's
  // frame numbering with voice, unreliable and unordered like the voice frames. The peer
  // gets a kMedia event with the plaintext. kOk, kErrCallNotFound, kErrCallNotActive,
  // kErrMessageTooLarge, kErrQueueFull, kErrNotRegistered.
  int send_media(const signal::CallId &call, uint32_t timestamp, uint8_t profile,
                 const uint8_t *payload, size_t len);
  // Room frames are sealed by the caller (a room key is the members' business): the context
  // writes the header (stream id, `sequence`, `timestamp`, `profile`) in front of `sealed`.
  // kOk, kErrNotAMember, kErrMessageTooLarge, kErrQueueFull, kErrNotRegistered.
  int send_room_media(const signal::RoomId &room, uint32_t sequence, uint32_t timestamp,
                      uint8_t profile, const uint8_t *sealed, size_t len);

  // The voice channel of a call (from start_call or the kIncomingCall event on, also after
  // the call ended): the host pushes and pulls PCM on it from its audio threads.
  // kOk or kErrCallNotFound.
  int voice(const signal::CallId &call, std::shared_ptr<VoiceChannel> *out);

  // The stream id this side's frames on `call` carry. kOk, kErrCallNotFound,
  // kErrCallNotActive.
  int media_stream(const signal::CallId &call, uint32_t *stream_id);
  // Statistics of an active call. kOk, kErrCallNotFound, kErrCallNotActive.
  int call_stats(const signal::CallId &call, CallStats *out);
  // The adaptive quality of an active call. kOk, kErrCallNotFound, kErrCallNotActive.
  int call_quality(const signal::CallId &call, QualityStats *out);

  // join: kOk, kErrNotRegistered (nothing joined). Membership arrives as kRoomUpdate events,
  // only for rooms joined and not left. leave: kOk (left here, even if the relay could not be
  // told), kErrNotAMember (not in that room).
  int join_room(const signal::RoomId &room);
  int leave_room(const signal::RoomId &room);

  ContextStats stats();

 private:
  // Tests and fuzz targets stand in for a hostile relay through it (tests/support).
  friend struct ContextTestAccess;

  struct Call {
    signal::CallId id;
    // Unique per Call object: what a session's callbacks check before touching the call, so
    // a retired session never reaches a call that replaced its own under the same id.
    uint64_t serial = 0;
    identity::Fingerprint peer;
    bool outgoing = false;
    CallState state = CallState::kInviting;
    // The relay may change it only while the call is being set up (inviting/ringing); from
    // active on it is the key of the call's media route.
    uint32_t stream = 0;
    media::LocalMediaKey media_key;  // our X25519 ephemeral key for the E2E media keys
    std::string ufrag;
    identity::SecretBuffer pwd;  // our ICE password
    // What the peer's offer carried (its media key verified on arrival), and candidates it
    // trickled before the session existed.
    signal::SignedKey peer_key;
    // The peer's Ed25519 key: with peer_key, the proof a resume shows a relay that lost the
    // call (the peer signed this call with us).
    std::array<uint8_t, identity::kPublicKeyLen> peer_identity_key{};
    // The relay registration (RelayClient::registrations) the call was last resumed in: one
    // resume per registration, whatever the relay answers.
    uint64_t resumed_in = 0;
    int64_t no_path_since_ms = -1;  // since when the call has had no path (-1: it has one)
    // The relay said the peer left it (and ended the call there) while the direct path
    // carried it: the relay is no path to the peer until its frames come that way again.
    bool peer_left_relay = false;
    std::string peer_ufrag;
    identity::SecretBuffer peer_pwd;
    std::vector<ice::Candidate> peer_candidates;
    bool peer_candidates_done = false;
    signal::NatInfo peer_nat;  // until the session takes it over
    // Offered while our mappings were being probed: end-of-candidates waits for the probe,
    // which may add candidates (trickled then); the addresses offered so far.
    bool candidates_open = false;
    std::vector<SocketAddress> offered;
    std::unique_ptr<Session> session;  // while active
    std::shared_ptr<VoiceChannel> voice;
    bool voice_started = false;  // counted in active_voice_
    std::unique_ptr<CallQuality> quality;  // while active
    quality::MinRttWindow base_rtt[2];     // per path (relay, direct), for the queue signal
  };
  struct Room {
    uint32_t stream = 0;
    std::vector<signal::Member> members;
    // Adaptive quality: the relay judges rooms. We measure what we receive (loss per member
    // stream), report it, answer its proposals, and tell the host the profile to send with.
    struct Stream {
      quality::SequenceExtender seq;
      quality::LossMeter loss;
    };
    std::map<uint32_t, Stream> streams;
    uint8_t profile = media::kDefaultProfile;
    bool pending = false;  // a proposal we accepted, waiting for its confirm
    uint64_t pending_sequence = 0;
  };
  void on_room_update(const signal::Message &m);
  void on_room_quality(const signal::Message &m);

  Context(const identity::Identity &id, ContextConfig config, EventHandler handler);
  int init();  // on the loop
  template <typename F>
  int run(F &&f);
  // A value read on the loop thread.
  template <typename F>
  auto read(F &&f) -> decltype(f());
  void emit(const Event &e);
  void on_relay_message(const signal::Message &m);
  void on_datagram(const uint8_t *data, size_t len);
  void set_call_state(Call &c, CallState s, int error, const std::string &text,
                      Origin origin = Origin::kLocal);
  // Makes the call's ICE credentials and signed media key and sends invite or accept.
  int send_offer(signal::Type type, Call &c);
  int send_end_of_candidates(const Call &c);
  // Checks and keeps what the peer's invite/accept carries: its signed media key (for this
  // call, in the sender's role, fresh) and, for an invite, a call id not seen before.
  // kOk or kErrMediaKey.
  int take_peer_offer(Call &c, const signal::Message &m);
  // Creates the media session of a call that just became active. kOk or its error.
  int start_session(Call &c);
  std::vector<ice::Candidate> local_candidates();
  // STUN to the relay's address of the other family (and, after a network change, of the
  // connection's own): our mappings per family.
  void probe_mappings(bool after_change);
  // What a network change sets off (network_changed(), or the watch); loop thread.
  void on_network_change(const char *source);
  // Every active call restarts ICE (after a network change, once the mappings are known).
  void restart_calls();
  // IPv6 sockets and no IPv4 address but loopback: IPv4 only through NAT64, if at all.
  bool on_ipv6_only_network() const;
  // RFC 7050 discovery of the NAT64 prefix (sets nat64_ and the relay client's), then `then`.
  void discover_nat64(std::function<void()> then);
  void on_stun(const uint8_t *data, size_t len, const SocketAddress &from);
  signal::Message call_message(signal::Type t, const Call &c) const;
  int send_frame(uint32_t stream, uint32_t sequence, uint32_t timestamp, uint8_t profile,
                 const uint8_t *sealed, size_t len);

  const identity::Identity &id_;
  identity::Fingerprint fp_;
  ContextConfig config_;
  EventHandler handler_;
  Loop loop_;
  std::unique_ptr<UdpSocket> socket_;
  std::unique_ptr<UdpSocket> socket6_;  // ContextConfig::bind6, or none
  // The socket a datagram to `to` leaves from: the one of its family.
  UdpSocket &socket_for(const SocketAddress &to) {
    for (const auto &r : routes_) {
      if (r.first == to) return *r.second;
    }
    return socket6_ && to.is_v6() ? *socket6_ : *socket_;
  }
  // Peers reached through a socket of their call's own (a birthday probe's winner,
  // ice/birthday.h): datagrams to them leave from it. Usually empty.
  std::vector<std::pair<SocketAddress, UdpSocket *>> routes_;
  void set_route(const SocketAddress &to, UdpSocket *via);
  // What arrived on any of our sockets: STUN to on_stun, QUIC to the endpoint.
  void on_socket_datagram(const uint8_t *d, size_t n, const SocketAddress &from);
  // Binding requests that no call's agent took while a call's session had not started (see
  // on_stun): handed to the next session that starts, if at most kEarlyStunMs old.
  struct EarlyStun {
    Timestamp at;
    SocketAddress from;
    std::vector<uint8_t> data;
  };
  static constexpr size_t kMaxEarlyStun = 8, kMaxEarlyStunLen = 548;
  static constexpr uint32_t kEarlyStunMs = 500;
  std::deque<EarlyStun> early_stun_;
  void replay_early_stun(Session &s);
  std::unique_ptr<quic::Endpoint> endpoint_;
  std::unique_ptr<quic::EndpointDriver> driver_;
  std::unique_ptr<RelayClient> relay_;
  std::unique_ptr<Resolver> nat64_resolver_;     // RFC 7050 discovery on IPv6-only networks
  std::unique_ptr<NetworkWatch> network_watch_;  // ContextConfig::watch_network
  Nat64Prefix nat64_;                         // unset: none found (or not looked for)
  // The relay's address of the other family than the relay connection's, and what it saw
  // of our socket of that family; what the relay connection's address saw since the last
  // network change (unset: the register-ack's is current). probe_mappings.
  SocketAddress other_server_, observed_other_, observed_now_;
  bool change_pending_ = false;  // a network change whose calls have not restarted yet
  // DirectConfig::stun_servers, resolved (again after every network change): one resolver
  // per name, the addresses of every name that answered.
  std::vector<std::unique_ptr<Resolver>> stun_resolvers_;
  std::vector<SocketAddress> stun_addresses_;
  void resolve_stun_servers();
  // nat_ from the relay's observations and stun_mappings_.
  void classify_nat();
  // Trickles what the probes found so far to calls offered while they ran, and
  // end-of-candidates once none runs any more.
  void trickle_candidates();
  bool probing() const {
    return (probe_gatherer_ && !probe_gatherer_->done()) ||
           (port_mapper_ && port_mapper_->probing()) || (upnp_ && upnp_->busy());
  }
  // What the STUN servers saw in the last probe (their srflx candidates), and what that and
  // the relay's observation say of our IPv4 NAT.
  std::vector<ice::MappingSample> stun_mappings_;
  ice::NatBehavior nat_;
  // DirectConfig::port_mapping: the PCP/NAT-PMP client on the IPv4 socket and the UPnP one,
  // the gateway they talk to, and the mapping the first of them got.
  std::unique_ptr<ice::PortMapper> port_mapper_;
  std::unique_ptr<ice::MachineRunner> port_runner_;
  std::unique_ptr<ice::UpnpMapper> upnp_;
  std::unique_ptr<Timer> upnp_renew_;
  SocketAddress port_gateway_;
  ice::PortMapping port_mapping_;
  Timestamp port_asked_at_ = 0;
  void start_port_mapping();
  // Asks the gateway to delete what it mapped for us (PCP/NAT-PMP now; UPnP's delete is a
  // blocking HTTP request, run by whoever calls UpnpMapper::release_blocking).
  void release_port_mappings();
  void map_upnp();
  void on_port_mapping(const ice::PortMapping &m);
  std::unique_ptr<ice::Gatherer> probe_gatherer_;
  std::unique_ptr<ice::MachineRunner> probe_runner_;
  std::map<signal::CallId, Call> calls_;
  std::map<signal::RoomId, Room> rooms_;
  // Where an incoming frame's stream id belongs: an active call, or a room member. The relay
  // hands out stream ids and is not trusted with memory safety: a route names its call or
  // room by id and every frame looks it up, so a route that outlives its call or room (a
  // relay reusing or changing ids) finds nothing instead of freed memory.
  struct MediaRoute {
    bool is_call = false;
    signal::Id16 id;  // the call's or the room's
    uint64_t serial = 0;  // a call's Call::serial
    identity::Fingerprint peer;
  };
  std::unordered_map<uint32_t, MediaRoute> media_routes_;
  // The call this route names, if it is still that call and active; nullptr otherwise.
  Call *route_call(const MediaRoute &r);
  // Removes the routes of `r`'s members that still name room `id`.
  void drop_room_routes(const signal::RoomId &id, const Room &r);
  uint64_t next_call_serial_ = 1;
  RecentCalls recent_invites_{media::kMaxMediaKeyAgeMs, 4096};
  std::vector<std::unique_ptr<Session>> retired_;  // ended calls' sessions, freed next turn
  // Re-announces an active call to the relay (after a reconnect, or its "no such call").
  void send_resume(Call &c);
  // Sends `m` (a hangup) now, or once the relay is registered again: a call's end is the
  // peer's business even when the relay was away when it happened. Bounded.
  void send_or_queue_hangup(const signal::Message &m);
  std::vector<signal::Message> pending_hangups_;
  // When the relay connection last received a packet (for the no-path timeout).
  uint64_t relay_rx_packets_ = 0;
  int64_t relay_rx_at_ms_ = 0;
  static constexpr size_t kMaxPendingHangups = 64;
  // Runs every call's encoder: picks up whole frames of microphone audio soon after the host
  // pushed them (kAudioTickMs bounds what the tick adds to the mouth-to-ear delay).
  void on_audio_tick();
  std::unique_ptr<Timer> audio_timer_;
  // Measures and reports every active call's quality, and judges direct calls.
  void on_quality_tick();
  std::unique_ptr<Timer> quality_timer_;
  size_t active_voice_ = 0;
  ContextStats stats_;
  bool closing_ = false;
  uint8_t frame_[quic::kMaxDatagramPayload];
};

}  // namespace parley::call

#endif

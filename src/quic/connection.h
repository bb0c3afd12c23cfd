// One QUIC connection (client or server role) over ngtcp2, owned by an Endpoint. Sans-I/O in
// the ngtcp2 sense: the Endpoint feeds it packets and time and collects the packets it writes.
// Events go to one handler per connection as a tagged struct whose numbering only grows.
#ifndef PARLEY_QUIC_CONNECTION_H
#define PARLEY_QUIC_CONNECTION_H

#include <ngtcp2/ngtcp2.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/address.h"
#include "base/clock.h"
#include "identity/fingerprint.h"
#include "quic/stream_buffers.h"
#include "quic/tls.h"

namespace parley::quic {

class Endpoint;
class Connection;

constexpr size_t kMaxDatagramPayload = 1200;  // what parley ever puts in one DATAGRAM frame

struct ConnectionConfig {
  uint32_t idle_timeout_ms = 30000;
  // Below the ~30 s UDP binding timeout of typical NATs, so an idle call keeps its pinhole.
  uint32_t keepalive_ms = 15000;
  uint32_t handshake_timeout_ms = 10000;
  // Signaling messages (the codec caps them at 64 KiB); a larger one closes the connection.
  // Bytes of a message still being reassembled are not credited back to the peer's flow
  // control until it is complete, so a peer can pin at most one partial message per stream.
  size_t max_message_size = 64 * 1024;
  uint64_t stream_window = 256 * 1024;  // raised to hold one whole message if smaller
  uint64_t connection_window = 4 << 20;
  bool path_mtu_discovery = true;  // probe for packets above 1200 bytes (RFC 8899)
  // DATAGRAMs waiting for congestion control; a voice stream needs a handful (50 per second).
  // The slots are allocated on the first send_datagram, so idle connections cost nothing.
  size_t datagram_queue = 32;
};

struct PathStats {
  Timestamp smoothed_rtt = 0, rtt_variance = 0, min_rtt = 0, latest_rtt = 0;  // ns
  uint64_t cwnd = 0, bytes_in_flight = 0;
  uint64_t packets_sent = 0, packets_received = 0;
  uint64_t datagrams_sent = 0, datagrams_received = 0;
  uint64_t datagrams_acked = 0, datagrams_lost = 0;  // as QUIC loss detection declares them
  uint64_t datagrams_refused = 0;  // send_datagram said no (queue full / too large)
  uint64_t datagrams_dropped = 0;  // queued, then found unsendable (e.g. path MTU shrank)
  size_t max_datagram_payload = 0;  // what fits in one DATAGRAM on the current path
};

struct CloseInfo {
  int error = 0;              // kOk (application close), kErrPeerIdentity, kErrTimeout,
                              // kErrTransport, kErrMessageTooLarge
  bool by_peer = false;       // the peer closed (or refused) rather than this side
  uint64_t app_code = 0;      // application error code of an application close
  std::string reason;
};

// Append-only numbering (the C API mirrors it).
enum class EventType : int {
  kConnected = 1,  // handshake complete, peer identity verified
  kMessage = 2,    // a whole signaling message arrived on a stream
  kDatagram = 3,   // a DATAGRAM arrived
  kClosed = 4,     // terminal: the connection is gone after this event
};

struct Event {
  EventType type;
  int64_t stream_id = -1;          // kMessage
  const uint8_t *data = nullptr;   // kMessage, kDatagram: valid during the call only
  size_t len = 0;
  const CloseInfo *close = nullptr;  // kClosed
};

using EventHandler = std::function<void(Connection &, const Event &)>;

class Connection {
 public:
  enum class Role { kClient, kServer };
  enum class State { kHandshake, kConnected, kClosing, kDraining, kClosed };

  ~Connection();
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;

  Role role() const { return role_; }
  State state() const { return state_; }
  const SocketAddress &remote() const { return remote_; }
  // The verified peer identity (valid from kConnected on).
  const identity::Fingerprint &peer() const { return tls_->peer_fingerprint(); }
  void set_handler(EventHandler handler) { handler_ = std::move(handler); }
  void *user_data = nullptr;

  // Opens a bidirectional signaling stream. kOk, kErrClosed, kErrQueueFull (stream limit).
  int open_stream(int64_t *stream_id);
  // Queues one message on a stream (framed, reliable, ordered). kOk, kErrInvalidArgument
  // (unknown or ended stream), kErrMessageTooLarge, kErrClosed.
  int send_message(int64_t stream_id, const uint8_t *data, size_t len);
  // Ends our side of a stream once its queued messages are sent (FIN). A stream is gone when
  // both sides ended it; ending a stream the peer ended is how its slot is freed, and parley
  // ends its side automatically when the peer ends a stream it opened. kOk,
  // kErrInvalidArgument (unknown stream), kErrClosed.
  int end_stream(int64_t stream_id);
  // Queues one DATAGRAM (unreliable). kOk, kErrMessageTooLarge (> max_datagram_payload()),
  // kErrQueueFull, kErrClosed.
  int send_datagram(const uint8_t *data, size_t len);
  size_t max_datagram_payload() const;

  // Graceful close with an application error code (0 = normal). Idempotent.
  void close(uint64_t app_code, const std::string &reason);

  PathStats stats() const;

 private:
  friend class Endpoint;
  Connection(Endpoint &ep, Role role, const SocketAddress &local, const SocketAddress &remote,
             const ConnectionConfig &config);
  int init_client(const ngtcp2_cid &dcid, const ngtcp2_cid &scid, PeerVerifier verifier,
                  Timestamp now);
  int init_server(const ngtcp2_pkt_hd &hd, const ngtcp2_cid &scid, const ngtcp2_cid *odcid,
                  const uint8_t *token, size_t tokenlen, PeerVerifier verifier, Timestamp now);
  // What client and server initialisation share: the TLS session, callbacks, settings; and
  // after ngtcp2_conn_*_new, attaching TLS, keep-alive and our first CID.
  int prepare(TlsSession::Role role, PeerVerifier verifier, Timestamp now, ngtcp2_callbacks *cb,
              ngtcp2_settings *settings, ngtcp2_transport_params *params);
  void attach(const ngtcp2_cid &scid);
  void setup_callbacks(ngtcp2_callbacks *cb);
  void setup_settings(ngtcp2_settings *s, ngtcp2_transport_params *p, Timestamp now);

  // Endpoint-facing.
  void on_packet(const SocketAddress &local, const SocketAddress &from, const uint8_t *data,
                 size_t len, Timestamp now);
  void write(Timestamp now);
  Timestamp expiry() const;
  void on_expiry(Timestamp now);
  bool finished() const { return state_ == State::kClosed; }

  void fail_with(int ngtcp2_error, Timestamp now);
  void enter_closed(const CloseInfo &info);
  void emit_close_event();
  void send_packet(const ngtcp2_path &path, const uint8_t *data, size_t len);

  // ngtcp2 callbacks.
  static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref);
  static int on_handshake_completed(ngtcp2_conn *, void *user);
  static int on_recv_stream_data(ngtcp2_conn *, uint32_t flags, int64_t stream_id,
                                 uint64_t offset, const uint8_t *data, size_t len, void *user,
                                 void *stream_user);
  static int on_acked_stream_data(ngtcp2_conn *, int64_t stream_id, uint64_t offset,
                                  uint64_t len, void *user, void *stream_user);
  static int on_stream_open(ngtcp2_conn *, int64_t stream_id, void *user);
  static int on_stream_close(ngtcp2_conn *, uint32_t flags, int64_t stream_id,
                             uint64_t app_error_code, void *user, void *stream_user);
  static int on_recv_datagram(ngtcp2_conn *, uint32_t flags, const uint8_t *data, size_t len,
                              void *user);
  static int on_ack_datagram(ngtcp2_conn *, uint64_t id, void *user);
  static int on_lost_datagram(ngtcp2_conn *, uint64_t id, void *user);
  static int on_get_new_connection_id(ngtcp2_conn *, ngtcp2_cid *cid, uint8_t *token,
                                      size_t cidlen, void *user);
  static int on_remove_connection_id(ngtcp2_conn *, const ngtcp2_cid *cid, void *user);
  static int on_recv_stateless_reset(ngtcp2_conn *, const ngtcp2_pkt_stateless_reset *,
                                     void *user);
  static void on_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *);

  struct Stream {
    explicit Stream(size_t max) : rx(max) {}
    MessageReassembler rx;
    SendBuffer tx;
    bool fin_pending = false;  // end_stream called; FIN goes with (or after) the last bytes
    bool fin_sent = false;
  };

  Endpoint &ep_;
  Role role_;
  SocketAddress local_, remote_;
  ConnectionConfig config_;
  State state_ = State::kHandshake;
  ngtcp2_conn *conn_ = nullptr;
  std::unique_ptr<TlsSession> tls_;
  EventHandler handler_;
  std::map<int64_t, Stream> streams_;
  std::vector<ngtcp2_cid> cids_;  // our source CIDs, registered with the endpoint
  // Datagram ring: fixed slots allocated once, no allocation per datagram.
  std::unique_ptr<uint8_t[]> dgram_slots_;
  std::unique_ptr<uint16_t[]> dgram_lens_;
  uint8_t *dgram_slot(size_t i) { return dgram_slots_.get() + i * kMaxDatagramPayload; }
  size_t dgram_head_ = 0, dgram_count_ = 0;
  uint64_t next_dgram_id_ = 0;
  PathStats stats_;
  CloseInfo close_info_;
  bool close_event_sent_ = false;
  Timestamp close_deadline_ = 0;      // end of closing/draining period
  std::vector<uint8_t> close_packet_;  // re-sent (rate-limited) while closing
  uint64_t close_resends_ = 0;
  bool close_requested_ = false;       // close() called; performed by the next write()
  bool message_too_large_ = false;     // a peer's message exceeded the maximum
  bool got_stateless_reset_ = false;
  bool dirty_ = false;             // queued for the endpoint's next flush
  Timestamp timer_key_ = 0;        // the expiry under which the endpoint filed us (0: none)
  void set_state(State s);
};

}  // namespace parley::quic

#endif

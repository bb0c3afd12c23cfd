// One QUIC connection (client or server role) over ngtcp2, owned by an Endpoint. Sans-I/O in
// the ngtcp2 sense: the Endpoint feeds it packets and time and collects the packets it writes.
// Events go to one handler per connection as a tagged struct whose numbering only grows.
// A parley/1 connection carries parley's framed messages and DATAGRAMs; a server connection
// that negotiated "h3" instead hands its raw streams to a StreamApp (the relay's HTTP/3).
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

// The ngtcp2 path between two addresses (it points into them: they must outlive its use).
ngtcp2_path make_path(const SocketAddress &local, const SocketAddress &remote);

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
  // Bytes of signaling messages queued and not yet acknowledged, over all streams, beyond
  // which send_message refuses more (kErrQueueFull): a peer that stops reading cannot make
  // this side buffer without bound. 0 = no cap.
  size_t max_queued_bytes = 0;
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

// A raw-stream application protocol attached to a connection instead of parley's message
// framing (HTTP/3 on the relay: relay/http3.h). Shaped after what nghttp3 needs from ngtcp2,
// so each call maps onto one nghttp3 call. The Connection owns the app (it is destroyed with
// the connection, before the ngtcp2 connection) and calls it on the loop thread only.
//
// All on_* calls run inside ngtcp2 callbacks, where ngtcp2 forbids writing: from there the app
// may only use the Connection's stream-app calls (open_uni_stream, consume, shutdown_stream_*,
// close), which queue work. next_outgoing/on_sent/on_blocked/on_write_shut run from the
// connection's write loop, outside callbacks.
//
// Errors: an int-returning call that returns a negative value fails the connection, which is
// closed with the application error code error_code() then reports (for HTTP/3 an H3_* code).
class StreamApp {
 public:
  virtual ~StreamApp() = default;

  // The handshake completed: the app opens its own streams here (HTTP/3: control and QPACK).
  virtual int on_connected() = 0;
  // The next in-order bytes of `stream_id` (`fin`: the peer ended the stream with them).
  // Returns how many bytes the connection credits back to the peer's flow control at once;
  // bytes the app holds on to are credited later with Connection::consume. QUIC's flow
  // control is what bounds the peer, so an app that buffers must not credit what it buffers.
  virtual int64_t on_stream_data(int64_t stream_id, const uint8_t *data, size_t len,
                                 bool fin) = 0;
  // The peer acknowledged `n` more bytes of `stream_id` (in order): sent bytes up to there
  // may be freed. Until then they must stay valid: ngtcp2 retransmits from the app's memory.
  virtual int on_acked(int64_t stream_id, uint64_t n) = 0;
  // The peer reset the stream (RESET_STREAM) / asked us to stop sending on it (STOP_SENDING).
  virtual int on_stream_reset(int64_t stream_id, uint64_t app_error_code) = 0;
  virtual int on_stop_sending(int64_t stream_id, uint64_t app_error_code) = 0;
  // Both directions of the stream are over; `app_error_code` is meaningful only if
  // `has_error_code`. A peer-opened bidirectional stream's slot is then returned to the peer
  // (MAX_STREAMS) by the connection, so the number of concurrent requests stays bounded by
  // the transport parameter while any number can be served over a connection's life.
  virtual int on_stream_close(int64_t stream_id, bool has_error_code,
                              uint64_t app_error_code) = 0;
  // The peer raised the flow-control limit of `stream_id` (offer it again if it was blocked).
  virtual int on_stream_credit(int64_t stream_id) = 0;
  // The peer may now have opened up to `max_streams` bidirectional streams in total.
  virtual void on_max_remote_bidi_streams(uint64_t max_streams) = 0;

  // Stream data the app wants sent, as nghttp3_conn_writev_stream hands it out.
  struct Outgoing {
    static constexpr size_t kMaxVecs = 16;
    int64_t stream_id = -1;  // -1: nothing to send now
    ngtcp2_vec vecs[kMaxVecs];
    size_t count = 0;
    bool fin = false;  // the stream ends after these bytes
  };
  // Fills `out` with the next bytes to send (valid until acknowledged, see on_acked). The
  // connection offers them to ngtcp2 and reports what was taken through on_sent.
  virtual int next_outgoing(Outgoing *out) = 0;
  // `n` bytes (possibly 0: FIN alone) of what next_outgoing offered for `stream_id` were
  // taken into a packet.
  virtual int on_sent(int64_t stream_id, size_t n) = 0;
  // `stream_id` is blocked by the peer's flow control: do not offer it again before
  // on_stream_credit.
  virtual void on_blocked(int64_t stream_id) = 0;
  // Our side of `stream_id` can no longer be written (the peer sent STOP_SENDING, or it was
  // reset): never offer it again.
  virtual void on_write_shut(int64_t stream_id) = 0;

  // The application error code to close the connection with after a failure.
  virtual uint64_t error_code() const = 0;
};

// Makes the StreamApp for a connection that negotiated "h3" (nullptr refuses it). Called on
// the loop thread during the handshake; the app must not outlive `conn` (it cannot: `conn`
// owns it).
using StreamAppFactory = std::function<std::unique_ptr<StreamApp>(Connection &conn)>;

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
  // The verified peer identity (valid from kConnected on). An h3 client may present no
  // certificate (has_peer() false, peer() all zeros); one it presents is not pinned.
  const identity::Fingerprint &peer() const { return tls_->peer_fingerprint(); }
  bool has_peer() const { return tls_->peer_seen(); }
  // The negotiated ALPN: "parley/1", "h3" or "" (not negotiated yet).
  const char *alpn() const;
  // True for a server connection that negotiated "h3": its streams belong to its StreamApp,
  // and the message, stream and datagram calls below return kErrInvalidArgument.
  bool is_h3() const { return app_ != nullptr; }
  void set_handler(EventHandler handler) { handler_ = std::move(handler); }
  void *user_data = nullptr;

  // Opens a bidirectional signaling stream. kOk, kErrClosed, kErrQueueFull (stream limit).
  int open_stream(int64_t *stream_id);
  // Queues one message on a stream (framed, reliable, ordered). kOk, kErrInvalidArgument
  // (unknown or ended stream), kErrMessageTooLarge, kErrClosed, kErrQueueFull (the message
  // would take the unacknowledged bytes over ConnectionConfig::max_queued_bytes; nothing was
  // queued).
  // queued_bytes(): what those bytes amount to now.
  int send_message(int64_t stream_id, const uint8_t *data, size_t len);
  uint64_t queued_bytes() const;
  // Ends our side of a stream once its queued messages are sent (FIN). A stream is gone when
  // both sides ended it; ending a stream the peer ended is how its slot is freed, and parley
  // ends its side automatically when the peer ends a stream it opened. kOk,
  // kErrInvalidArgument (unknown stream), kErrClosed.
  int end_stream(int64_t stream_id);
  // Queues one DATAGRAM (unreliable); an empty one (`data` may then be NULL) is delivered as
  // such. kOk, kErrMessageTooLarge (> max_datagram_payload()), kErrQueueFull, kErrClosed.
  int send_datagram(const uint8_t *data, size_t len);
  size_t max_datagram_payload() const;

  // Graceful close with an application error code (0 = normal). Idempotent.
  void close(uint64_t app_code, const std::string &reason);

  PathStats stats() const;

  // --- For the StreamApp of an h3 connection (safe inside its callbacks) ---
  // Opens a unidirectional stream of ours. kOk, kErrQueueFull (the peer's limit), kErrClosed.
  int open_uni_stream(int64_t *stream_id);
  // Credits `n` bytes of `stream_id` the app has now processed back to the peer's stream and
  // connection flow control (see StreamApp::on_stream_data).
  void consume(int64_t stream_id, size_t n);
  // Stops reading `stream_id` (STOP_SENDING) / abandons writing it (RESET_STREAM).
  void shutdown_stream_read(int64_t stream_id, uint64_t app_error_code);
  void shutdown_stream_write(int64_t stream_id, uint64_t app_error_code);
  // How many bidirectional streams the peer may have open at once (our transport parameter).
  uint64_t max_peer_bidi_streams() const;
  // The app has data to send that did not come from one of its callbacks (e.g. a response
  // finished asynchronously): the connection writes at the endpoint's next flush (kick the
  // EndpointDriver afterwards).
  void resume();

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
  // Server: the ClientHello chose `alpn`; for h3, attach the StreamApp and set the transport
  // parameters HTTP/3 needs before they are sent. False aborts the handshake.
  bool on_alpn(Alpn alpn);
  // The write loop of an h3 connection: the app's stream data, then whatever ngtcp2 has.
  void write_app(Timestamp now);
  // A StreamApp call failed: close with its error code (the next write sends it).
  int app_failed();
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
  static ngtcp2_conn *get_conn(void *user_data);
  static int on_handshake_completed(ngtcp2_conn *, void *user);
  static int on_recv_stream_data(ngtcp2_conn *, uint32_t flags, int64_t stream_id,
                                 uint64_t offset, const uint8_t *data, size_t len, void *user,
                                 void *stream_user);
  static int on_acked_stream_data(ngtcp2_conn *, int64_t stream_id, uint64_t offset,
                                  uint64_t len, void *user, void *stream_user);
  static int on_stream_open(ngtcp2_conn *, int64_t stream_id, void *user);
  static int on_stream_close(ngtcp2_conn *, uint32_t flags, int64_t stream_id,
                             uint64_t app_error_code, void *user, void *stream_user);
  static int on_stream_reset(ngtcp2_conn *, int64_t stream_id, uint64_t final_size,
                             uint64_t app_error_code, void *user, void *stream_user);
  static int on_stream_stop_sending(ngtcp2_conn *, int64_t stream_id, uint64_t app_error_code,
                                    void *user, void *stream_user);
  static int on_extend_max_stream_data(ngtcp2_conn *, int64_t stream_id, uint64_t max_data,
                                       void *user, void *stream_user);
  static int on_extend_max_remote_streams_bidi(ngtcp2_conn *, uint64_t max_streams, void *user);
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
  // Set on an h3 server connection once the ALPN is known. ~Connection destroys it before
  // the ngtcp2 connection (the app may refer to both).
  std::unique_ptr<StreamApp> app_;
  bool app_error_ = false;  // a StreamApp call failed: close with app_->error_code()
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

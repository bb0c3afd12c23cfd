// A QUIC endpoint on one shared UDP socket: client and server at the same time (one side of a
// hole-punched path dials, the other accepts, on the very socket that did the STUN work).
// Routes packets by destination connection ID, accepts new connections (with Retry address
// validation under load), answers unknown short-header packets with a stateless reset and
// unknown versions with version negotiation. Takes time as an argument and sends through a
// callback; endpoint_driver.h binds it to a UdpSocket and a Timer.
#ifndef PARLEY_QUIC_ENDPOINT_H
#define PARLEY_QUIC_ENDPOINT_H

#include <array>
#include <cstdint>
#include <functional>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include "identity/identity.h"
#include "identity/secret.h"
#include "quic/connection.h"

namespace parley::quic {

constexpr size_t kCidLen = 16;
constexpr size_t kMaxUdpPayload = 1500;  // largest packet parley writes
constexpr size_t kTxBatch = 32;          // packets gathered before one batched send

// A packet ready to leave: written in place by ngtcp2, handed to the socket in batches.
struct TxPacket {
  SocketAddress to;
  size_t len = 0;
  uint8_t data[kMaxUdpPayload];
};

struct EndpointConfig {
  ConnectionConfig connection;
  bool accept_incoming = true;
  // Connections of any kind, except h3 connections once their ALPN is known (those have
  // their own cap, h3_max_connections). Refused beyond: CONNECTION_REFUSED, reason
  // kRefusedFull.
  size_t max_connections = 10000;
  // Incoming connections from one IP address / from one network (IPv4 /24, IPv6 /64), so
  // that one source cannot take every slot; 0 = no limit. Refused beyond: CONNECTION_REFUSED
  // with reason kRefusedAddress / kRefusedNetwork.
  size_t max_connections_per_address = 0;
  size_t max_connections_per_network = 0;
  // Require address validation (Retry) for new connections once this many are still in their
  // handshake; 0 = always. Under a flood, spoofed Initials then cost one small Retry each.
  size_t retry_when_handshaking_over = 64;
  // ...and once this many connections exist at all, and for a source already holding half
  // its per-address or per-network share (so spoofed Initials cannot fill a victim's share).
  size_t retry_when_connections_over = SIZE_MAX;
  uint32_t retry_token_lifetime_ms = 10000;
  // Stateless resets are rate-limited; an endpoint never sends more than this many per
  // second (they answer packets nobody can otherwise identify).
  uint32_t max_stateless_resets_per_second = 100;
  // Server only: also offer ALPN "h3" and attach the StreamApp this makes to connections that
  // negotiate it, instead of parley's message framing (relay/http3.h: enable_http3). Such
  // clients need no certificate (parley/1 clients still must present one); AcceptFn still
  // runs first for them and its handler still gets kConnected and kClosed. Empty: parley/1 only.
  StreamAppFactory h3_app;
  // Concurrent requests (peer-opened bidirectional streams) per h3 connection.
  uint32_t h3_max_requests = 32;
  // h3 connections (anonymous: no certificate needed) at once, on top of max_connections;
  // beyond, the handshake fails as if h3 were not offered. 0 = no separate cap.
  size_t h3_max_connections = 0;
  // Idle timeout of h3 connections (0: connection.idle_timeout_ms).
  uint32_t h3_idle_timeout_ms = 0;
};

// The reason phrases of the CONNECTION_REFUSED an endpoint answers a refused Initial with
// (the client's CloseInfo::reason), so a client can tell why.
constexpr const char *kRefusedFull = "server full";
constexpr const char *kRefusedAddress = "too many connections from this address";
constexpr const char *kRefusedNetwork = "too many connections from this network";

struct EndpointStats {
  uint64_t packets_in = 0, packets_out = 0;
  uint64_t accepted = 0, refused_full = 0;
  uint64_t refused_address = 0, refused_network = 0, refused_h3 = 0;
  uint64_t retries_sent = 0, invalid_tokens = 0;
  uint64_t stateless_resets_sent = 0, version_negotiations_sent = 0;
  uint64_t dropped_unroutable = 0, dropped_malformed = 0;
};

class Endpoint {
 public:
  using SendFn = std::function<void(const SocketAddress &to, const uint8_t *data, size_t len)>;
  // Optional: sends a whole batch at once (sendmmsg where the system has it); without it
  // SendFn gets each packet.
  using BatchSendFn = std::function<void(const TxPacket *packets, size_t n)>;
  // Decides whether to accept an incoming connection's verified peer identity from `remote`
  // (pin, TOFU, or anyone for a relay) and attaches its event handler. Return an empty
  // verifier to refuse. Called when the first Initial of a new connection arrives, before the
  // ALPN is known; the verifier is only consulted for parley/1 (see EndpointConfig::h3_app).
  struct Incoming {
    PeerVerifier verify;
    EventHandler handler;
  };
  using AcceptFn = std::function<Incoming(const SocketAddress &remote)>;

  // `id` must outlive the endpoint. The stateless-reset secret is derived from the identity,
  // so a restarted endpoint can still reset connections of its previous life.
  static int create(const identity::Identity &id, EndpointConfig config, SendFn send,
                    std::unique_ptr<Endpoint> *out);
  ~Endpoint();

  void set_accept(AcceptFn accept) { accept_ = std::move(accept); }
  void set_batch_sender(BatchSendFn send) { batch_send_ = std::move(send); }
  // The bound address of the socket of `local`'s family (an endpoint may send and receive on
  // one socket per family; each connection's path uses the one of its peer's family).
  void set_local_address(const SocketAddress &local) {
    (local.is_v6() ? local6_ : local_) = local;
  }
  const SocketAddress &local_address() const { return local_.is_set() ? local_ : local6_; }
  const SocketAddress &local_for(const SocketAddress &remote) const {
    return remote.is_v6() && local6_.is_set() ? local6_ : local_.is_set() ? local_ : local6_;
  }

  // Dials `remote`; `verify` decides on the server's identity (pin or TOFU).
  // kOk (*out valid until its kClosed event has been delivered), kErrInvalidArgument,
  // kErrQueueFull (max_connections), kErrCrypto, kErrTransport.
  int connect(const SocketAddress &remote, PeerVerifier verify, EventHandler handler,
              Timestamp now, Connection **out);

  // A QUIC datagram arrived on the shared socket from `from` (an empty one is counted as
  // malformed; `data` may be NULL then).
  void handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                       Timestamp now);
  // Writes whatever connections have to send (call after handle_* and API calls). Event
  // handlers run inside ngtcp2 callbacks, where ngtcp2 forbids writing: flush() and
  // handle_expiry() called from a handler do nothing, and the endpoint flushes once the
  // event is over.
  void flush(Timestamp now);
  // Earliest time handle_expiry must run (0: nothing scheduled).
  Timestamp next_expiry() const;
  void handle_expiry(Timestamp now);

  size_t connection_count() const { return conns_.size(); }
  size_t h3_connection_count() const { return h3_live_; }
  size_t handshaking_count() const { return handshaking_; }
  const EndpointStats &stats() const { return stats_; }
  void close_all(uint64_t app_code, const std::string &reason, Timestamp now);

 private:
  friend class Connection;
  Endpoint(const identity::Identity &id, EndpointConfig config, SendFn send);
  void dispatch(const uint8_t *data, size_t len, const SocketAddress &from, Timestamp now);
  void accept_initial(const uint8_t *data, size_t len, const SocketAddress &from,
                      Timestamp now);
  void send_stateless_reset(const uint8_t *dcid, size_t dcidlen, size_t trigger_len,
                            const SocketAddress &to, Timestamp now);
  void send_version_negotiation(const uint8_t *dcid, size_t dcidlen, const uint8_t *scid,
                                size_t scidlen, const SocketAddress &to);
  void register_cid(const ngtcp2_cid &cid, Connection *c);
  void unregister_cid(const ngtcp2_cid &cid);
  int stateless_reset_token(const ngtcp2_cid &cid, uint8_t *token) const;
  // Queues a packet for the next batched send. `data` may be tx() (written in place).
  void send(const SocketAddress &to, const uint8_t *data, size_t len);
  // The buffer the next packet should be written into (kMaxUdpPayload bytes).
  uint8_t *tx() { return tx_batch_[tx_count_].data; }
  void flush_tx();
  // Work is tracked per connection so that a packet costs O(log n), not a scan of every
  // connection: only dirty connections are written, expiries live in an ordered set.
  void mark_dirty(Connection *c);
  void update_timer(Connection *c);
  void left_handshake() { --handshaking_; }
  void reap(Connection *c);
  void adopt(std::unique_ptr<Connection> c);
  // Per-source accounting of incoming connections (see max_connections_per_*).
  using SourceKey = std::array<uint8_t, 18>;  // kind, length, IP bytes (or prefix)
  static SourceKey source_key(const SocketAddress &a, bool network);
  size_t source_count(const SourceKey &k) const;
  void refuse(const ngtcp2_pkt_hd &hd, const SocketAddress &to, const char *reason);

  const identity::Identity &id_;
  EndpointConfig config_;
  SendFn send_;
  AcceptFn accept_;
  SocketAddress local_, local6_;  // IPv4 (or the only one), IPv6
  std::unique_ptr<TlsCredentials> creds_;
  identity::SecretBuffer reset_secret_, token_secret_;
  // Connection IDs are at most 20 bytes: a fixed-size key keeps the per-packet lookup free of
  // heap allocation.
  struct CidKey {
    uint8_t len = 0;
    uint8_t data[NGTCP2_MAX_CIDLEN] = {};
    bool operator==(const CidKey &o) const {
      return len == o.len && std::memcmp(data, o.data, len) == 0;
    }
  };
  struct CidHash {
    size_t operator()(const CidKey &k) const {
      uint64_t h = 1469598103934665603ull;  // FNV-1a: CIDs are random, no need for more
      for (uint8_t i = 0; i < k.len; ++i) h = (h ^ k.data[i]) * 1099511628211ull;
      return size_t(h);
    }
  };
  static CidKey cid_key(const uint8_t *data, size_t len);
  std::unordered_map<CidKey, Connection *, CidHash> by_cid_;
  std::unordered_map<Connection *, std::unique_ptr<Connection>> conns_;
  std::vector<Connection *> dirty_;
  std::set<std::pair<Timestamp, Connection *>> timers_;
  // Nodes taken out of timers_, re-keyed and put back (see update_timer). Bounded by the
  // number of connections.
  std::vector<std::set<std::pair<Timestamp, Connection *>>::node_type> spare_timers_;
  std::vector<Connection *> dirty_batch_;
  bool flushing_ = false;
  size_t handshaking_ = 0;
  size_t h3_live_ = 0;  // connections with an h3 StreamApp attached
  std::map<SourceKey, size_t> per_source_;  // ordered: keys are chosen by remote peers
  std::unordered_map<Connection *, SocketAddress> origin_;  // incoming: the first address
  int in_dispatch_ = 0;  // > 0 while ngtcp2 is reading a packet or handling an expiry
  EndpointStats stats_;
  Timestamp reset_window_start_ = 0;
  uint32_t resets_in_window_ = 0;
  BatchSendFn batch_send_;
  std::unique_ptr<TxPacket[]> tx_batch_{new TxPacket[kTxBatch]};
  size_t tx_count_ = 0;
};

}  // namespace parley::quic

#endif

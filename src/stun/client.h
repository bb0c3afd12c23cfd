// Client transactions (RFC 8489 6.2.1), sans-I/O: the caller encodes a request, hands it here
// with its destination, and then feeds time and received datagrams in and takes datagrams to
// send and finished results out. Responses are matched by transaction ID *and* source address;
// anything that does not match, fails FINGERPRINT, or fails MESSAGE-INTEGRITY when a key was
// given is ignored and counted, never trusted.
#ifndef PARLEY_STUN_CLIENT_H
#define PARLEY_STUN_CLIENT_H

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/address.h"
#include "base/clock.h"
#include "identity/secret.h"
#include "stun/message.h"

namespace parley::stun {

// Retransmission schedule: sends at 0, RTO, 3 RTO, 7 RTO, ... (RTO doubling, optionally
// capped) until `rc` requests were sent, then waits `rm` x initial RTO for a response.
// RFC 8489 defaults: 500 ms, Rc 7, Rm 16 (39.5 s). ICE uses faster pacing.
struct RetransmitConfig {
  uint32_t rto_ms = 500;
  uint32_t rc = 7;
  uint32_t rm = 16;
  uint32_t max_rto_ms = 0;  // 0: no cap
};

struct ClientStats {
  uint64_t requests_sent = 0;  // first transmissions
  uint64_t retransmissions = 0;
  uint64_t responses = 0;        // accepted (success or error)
  uint64_t timeouts = 0;
  uint64_t unmatched = 0;        // well-formed, but no transaction with that ID
  uint64_t wrong_source = 0;     // our ID, but from another address than we sent to
  uint64_t bad_fingerprint = 0;
  uint64_t bad_integrity = 0;
  uint64_t malformed = 0;
};

class ClientTransactions {
 public:
  enum class Outcome { kSuccess, kErrorResponse, kTimeout };

  struct Result {
    uint64_t cookie = 0;  // the caller's tag given to start()
    Outcome outcome = Outcome::kTimeout;
    TransactionId txid;
    SocketAddress to;              // where the request went
    std::vector<uint8_t> response; // the accepted response (parse it with Message::parse)
    Timestamp rtt = 0;             // from the last (re)transmission to the response
  };

  struct Transmit {
    const uint8_t *data;  // valid until the next call on this object
    size_t len;
    SocketAddress to;
    uint64_t cookie;
  };

  // Starts a transaction for the encoded request `req` (its transaction ID is read from it).
  // With `integrity_key` (`key_len` bytes, copied; NULL for none), responses must carry a
  // MESSAGE-INTEGRITY that verifies with it. Responses are accepted only from `to`, or from `expect_from` when that is set
  // (an RFC 5780 CHANGE-REQUEST is answered from another address).
  // Returns kOk, kErrInvalidArgument (not a STUN request, or an ID already in use).
  int start(const uint8_t *req, size_t len, const SocketAddress &to,
            const RetransmitConfig &config, Timestamp now, uint64_t cookie,
            const uint8_t *integrity_key = nullptr, size_t key_len = 0,
            const SocketAddress &expect_from = SocketAddress());

  // Next datagram due at `now` (first sends and retransmissions); false when none is due.
  bool poll_transmit(Timestamp now, Transmit *out);

  // Offers a received datagram. Returns true if it was a response this object consumed or
  // rejected as a response (so the caller need not look at it further), false if it is not a
  // STUN response at all (e.g. a request, which the caller may answer).
  bool handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                       Timestamp now);

  // Earliest time at which poll_transmit or handle_timeout has work; 0 if nothing pending
  // (callers' clocks never read 0: the monotonic clock counts from boot).
  Timestamp next_deadline() const;
  // Fails transactions whose final wait expired.
  void handle_timeout(Timestamp now);

  bool poll_result(Result *out);
  // Drops the transaction(s) with `cookie` without a result.
  void cancel(uint64_t cookie);
  size_t pending() const { return active_.size(); }
  const ClientStats &stats() const { return stats_; }

 private:
  struct Txn {
    uint64_t cookie;
    TransactionId txid;
    SocketAddress to;
    SocketAddress expect_from;
    std::vector<uint8_t> request;
    identity::WipedBytes key;  // an ICE password: wiped when the transaction goes
    RetransmitConfig config;
    uint32_t sent = 0;
    Timestamp next_send = 0;  // when sent < rc
    Timestamp give_up = 0;    // when sent == rc
    Timestamp last_send = 0;
    uint64_t rto_ns = 0;
  };
  void finish(size_t index, Outcome outcome, std::vector<uint8_t> response, Timestamp rtt);

  std::vector<Txn> active_;
  std::vector<Result> results_;
  ClientStats stats_;
};

}  // namespace parley::stun

#endif

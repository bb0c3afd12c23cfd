#include "stun/client.h"

#include <algorithm>

#include "base/error.h"

namespace parley::stun {

int ClientTransactions::start(const uint8_t *req, size_t len, const SocketAddress &to,
                              const RetransmitConfig &config, Timestamp now, uint64_t cookie,
                              const uint8_t *integrity_key, size_t key_len,
                              const SocketAddress &expect_from) {
  Message m;
  if (Message::parse(req, len, &m) != kOk || m.message_class() != kRequest) {
    return fail(kErrInvalidArgument, "STUN client: not an encoded STUN request");
  }
  if (config.rc == 0 || config.rto_ms == 0) {
    return fail(kErrInvalidArgument, "STUN client: rc and rto must be positive");
  }
  for (const Txn &t : active_) {
    if (t.txid == m.transaction_id()) {
      return fail(kErrInvalidArgument, "STUN client: transaction ID already in use");
    }
  }
  Txn t;
  t.cookie = cookie;
  t.txid = m.transaction_id();
  t.to = to;
  t.expect_from = expect_from.is_set() ? expect_from : to;
  t.request.assign(req, req + len);
  if (integrity_key != nullptr) t.key.assign(integrity_key, integrity_key + key_len);
  t.config = config;
  t.next_send = now;
  t.rto_ns = uint64_t(config.rto_ms) * kNanosPerMilli;
  active_.push_back(std::move(t));
  return kOk;
}

bool ClientTransactions::poll_transmit(Timestamp now, Transmit *out) {
  for (Txn &t : active_) {
    if (t.sent >= t.config.rc || t.next_send > now) continue;
    if (t.sent == 0) {
      ++stats_.requests_sent;
    } else {
      ++stats_.retransmissions;
    }
    ++t.sent;
    t.last_send = now;
    if (t.sent < t.config.rc) {
      t.next_send = now + t.rto_ns;
      t.rto_ns = t.rto_ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : t.rto_ns * 2;  // saturate
      const uint64_t cap = uint64_t(t.config.max_rto_ms) * kNanosPerMilli;
      if (cap != 0 && t.rto_ns > cap) t.rto_ns = cap;
    } else {
      t.give_up = now + uint64_t(t.config.rm) * t.config.rto_ms * kNanosPerMilli;
    }
    *out = {t.request.data(), t.request.size(), t.to, t.cookie};
    return true;
  }
  return false;
}

bool ClientTransactions::handle_datagram(const uint8_t *data, size_t len,
                                         const SocketAddress &from, Timestamp now) {
  if (!looks_like_stun(data, len)) return false;
  Message m;
  const int r = Message::parse(data, len, &m);
  if (r == kErrStunFingerprint) {
    ++stats_.bad_fingerprint;
    return true;
  }
  if (r != kOk) {
    ++stats_.malformed;
    return true;
  }
  if (m.message_class() != kSuccessResponse && m.message_class() != kErrorResponse) {
    return false;
  }
  for (size_t i = 0; i < active_.size(); ++i) {
    Txn &t = active_[i];
    if (t.txid != m.transaction_id()) continue;
    // A CHANGE-REQUEST's success comes from the changed address, but a server refusing it
    // answers from where the request went.
    const bool from_ok = from == t.expect_from ||
                         (m.message_class() == kErrorResponse && from == t.to);
    if (!from_ok) {
      ++stats_.wrong_source;
      return true;
    }
    if (!t.key.empty() && m.check_integrity(t.key.data(), t.key.size()) != kOk) {
      ++stats_.bad_integrity;
      return true;
    }
    if (m.message_class() == kSuccessResponse && m.unknown_required_count() != 0) {
      ++stats_.malformed;  // RFC 8489 6.3.4: unknown required attributes fail a success
      return true;
    }
    ++stats_.responses;
    finish(i,
           m.message_class() == kSuccessResponse ? Outcome::kSuccess : Outcome::kErrorResponse,
           std::vector<uint8_t>(data, data + len), now - t.last_send);
    return true;
  }
  ++stats_.unmatched;
  return true;
}

Timestamp ClientTransactions::next_deadline() const {
  Timestamp best = 0;
  for (const Txn &t : active_) {
    const Timestamp d = t.sent < t.config.rc ? t.next_send : t.give_up;
    if (best == 0 || d < best) best = d;
  }
  return best;
}

void ClientTransactions::handle_timeout(Timestamp now) {
  for (size_t i = 0; i < active_.size();) {
    const Txn &t = active_[i];
    if (t.sent >= t.config.rc && t.give_up <= now) {
      ++stats_.timeouts;
      finish(i, Outcome::kTimeout, {}, 0);
    } else {
      ++i;
    }
  }
}

bool ClientTransactions::poll_result(Result *out) {
  if (results_.empty()) return false;
  *out = std::move(results_.front());
  results_.erase(results_.begin());
  return true;
}

void ClientTransactions::cancel(uint64_t cookie) {
  active_.erase(std::remove_if(active_.begin(), active_.end(),
                               [&](const Txn &t) { return t.cookie == cookie; }),
                active_.end());
}

void ClientTransactions::finish(size_t index, Outcome outcome, std::vector<uint8_t> response,
                                Timestamp rtt) {
  Txn &t = active_[index];
  Result res;
  res.cookie = t.cookie;
  res.outcome = outcome;
  res.txid = t.txid;
  res.to = t.to;
  res.response = std::move(response);
  res.rtt = rtt;
  results_.push_back(std::move(res));
  active_.erase(active_.begin() + long(index));
}

}  // namespace parley::stun

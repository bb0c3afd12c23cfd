#include "ice/gatherer.h"

#include "base/error.h"
#include "base/log.h"
#include "stun/message.h"

namespace parley::ice {

const char *server_status_name(ServerResult::Status s) {
  switch (s) {
    case ServerResult::Status::kPending: return "pending";
    case ServerResult::Status::kOk: return "ok";
    case ServerResult::Status::kTimeout: return "timeout";
    case ServerResult::Status::kErrorResponse: return "error-response";
    case ServerResult::Status::kDeadline: return "deadline";
  }
  return "?";
}

Gatherer::Gatherer(GatherConfig config, Timestamp now)
    : config_(std::move(config)), deadline_(now + uint64_t(config_.deadline_ms) * kNanosPerMilli) {
  for (size_t i = 0; i < config_.host_addresses.size(); ++i) {
    const SocketAddress &h = config_.host_addresses[i];
    Candidate c;
    c.type = CandidateType::kHost;
    c.address = h;
    c.priority = candidate_priority(c.type, local_preference_of(h));
    c.foundation = candidate_foundation(c.type, h, SocketAddress());
    add(c);
  }
  if (config_.relay.is_set()) {
    Candidate c;
    c.type = CandidateType::kRelay;
    c.address = config_.relay;
    c.priority = candidate_priority(c.type, 65535);
    c.foundation = candidate_foundation(c.type, config_.relay, config_.relay);
    add(c);
  }
  for (const auto &s : config_.stun_servers) {
    ServerResult r;
    r.server = s.address;
    servers_.push_back(r);
  }
  started_.assign(config_.stun_servers.size(), false);  // started by poll_transmit
  collect(now);
}

void Gatherer::start_servers(Timestamp now) {
  uint8_t buf[stun::kMaxMessageLen];
  for (size_t i = 0; i < config_.stun_servers.size(); ++i) {
    if (started_[i]) continue;
    const auto &s = config_.stun_servers[i];
    if (hold_ && hold_(s.address)) continue;
    started_[i] = true;
    stun::MessageBuilder b(buf, sizeof buf);
    b.start(stun::kBinding, stun::kRequest, stun::TransactionId::random());
    b.add_string(stun::kAttrSoftware, config_.software);
    b.add_fingerprint();
    size_t n = 0;
    if (b.finish(&n) != kOk ||
        client_.start(buf, n, s.address, config_.rtx, now, uint64_t(i)) != kOk) {
      servers_[i].status = ServerResult::Status::kErrorResponse;
    }
  }
}

uint16_t Gatherer::local_preference_of(const SocketAddress &base) const {
  const size_t n = config_.host_addresses.size();
  for (size_t i = 0; i < n; ++i) {
    if (config_.host_addresses[i].same_ip(base)) return uint16_t(65535 - (i < 65535 ? i : 65535));
  }
  return 0;  // a base we do not know (e.g. a route via an excluded interface)
}

void Gatherer::add(const Candidate &c) {
  for (const Candidate &o : all_) {
    if (o.address == c.address) return;  // a srflx equal to a host (no NAT), or a repeat
  }
  all_.push_back(c);
  fresh_.push_back(c);
}

bool Gatherer::poll_transmit(Timestamp now, Datagram *out) {
  if (done_) return false;
  start_servers(now);
  stun::ClientTransactions::Transmit t;
  if (!client_.poll_transmit(now, &t)) return false;
  *out = {t.data, t.len, t.to};
  return true;
}

void Gatherer::handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                               Timestamp now) {
  if (done_) return;
  client_.handle_datagram(data, len, from, now);
  collect(now);
}

Timestamp Gatherer::next_deadline() const {
  if (done_) return 0;
  const Timestamp t = client_.next_deadline();
  return t != 0 && t < deadline_ ? t : deadline_;
}

void Gatherer::handle_timeout(Timestamp now) {
  if (done_) return;
  client_.handle_timeout(now);
  collect(now);
  if (!done_ && now >= deadline_) {
    for (ServerResult &r : servers_) {
      if (r.status == ServerResult::Status::kPending) {
        r.status = ServerResult::Status::kDeadline;
        PARLEY_LOG(kLogInfo, "ice", "gathering deadline: STUN server %s did not answer",
                   r.server.to_string().c_str());
      }
    }
    for (size_t i = 0; i < servers_.size(); ++i) client_.cancel(uint64_t(i));
    done_ = true;
  }
}

void Gatherer::collect(Timestamp) {
  stun::ClientTransactions::Result res;
  while (client_.poll_result(&res)) {
    ServerResult &r = servers_[size_t(res.cookie)];
    if (res.outcome == stun::ClientTransactions::Outcome::kTimeout) {
      r.status = ServerResult::Status::kTimeout;
      continue;
    }
    stun::Message m;
    SocketAddress mapped;
    if (res.outcome != stun::ClientTransactions::Outcome::kSuccess ||
        stun::Message::parse(res.response.data(), res.response.size(), &m) != kOk ||
        m.xor_address(stun::kAttrXorMappedAddress, &mapped) != kOk) {
      r.status = ServerResult::Status::kErrorResponse;
      continue;
    }
    r.status = ServerResult::Status::kOk;
    r.mapped = mapped;
    r.rtt = res.rtt;
    const SocketAddress &base = config_.stun_servers[size_t(res.cookie)].base;
    Candidate c;
    c.type = CandidateType::kServerReflexive;
    c.address = mapped;
    c.related = base;
    c.priority = candidate_priority(c.type, local_preference_of(base));
    c.foundation = candidate_foundation(c.type, base, r.server);
    add(c);
  }
  bool pending = false;
  for (const ServerResult &r : servers_) pending |= r.status == ServerResult::Status::kPending;
  if (!pending) done_ = true;
}

bool Gatherer::poll_candidate(Candidate *out) {
  if (fresh_.empty()) return false;
  *out = fresh_.front();
  fresh_.pop_front();
  return true;
}

}  // namespace parley::ice

// Why this file is long: RFC 8445's checklist is one state machine. Pair states, the triggered
// queue, answers to the peer's checks, role-conflict repair, nomination and consent all read
// and change the same pairs and transactions, and a single rule (7.2.5, 7.3.1) often touches
// several of them at once.

#include "ice/agent.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/log.h"

namespace parley::ice {

namespace {

// A transaction's cookie says what it was for, so a result needs no lookup table: the pair,
// the role and nomination flag the request carried, consent or not, and a sequence number
// that makes each cookie unique (ClientTransactions::cancel works by cookie).
constexpr uint64_t kCookiePairMask = 0xffff;
constexpr uint64_t kCookieUseCandidate = 1ull << 16;
constexpr uint64_t kCookieControlling = 1ull << 17;
constexpr uint64_t kCookieConsent = 1ull << 18;
constexpr int kCookieSeqShift = 24;
// Cancelled checks still listened to (RFC 8445 7.3.1.4); older ones are forgotten first.
constexpr size_t kMaxCancelled = 32;
constexpr size_t kMaxSoftware = 128;

uint64_t random_u64() {
  const stun::TransactionId r = stun::TransactionId::random();
  uint64_t v;
  std::memcpy(&v, r.bytes, sizeof v);
  return v;
}

Timestamp ms(uint64_t v) { return v * kNanosPerMilli; }

bool username_ufrag(const stun::Message &m, std::string_view *ufrag) {
  const stun::Message::Attribute *a = m.find(stun::kAttrUsername);
  if (a == nullptr) return false;
  const std::string_view u = m.value(*a);
  const size_t colon = u.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  *ufrag = u.substr(0, colon);
  return true;
}

}  // namespace

const char *agent_event_name(AgentEventType t) {
  switch (t) {
    case AgentEventType::kPairValid: return "pair-valid";
    case AgentEventType::kSelected: return "selected";
    case AgentEventType::kFailed: return "failed";
    case AgentEventType::kConsentLost: return "consent-lost";
    case AgentEventType::kRoleChanged: return "role-changed";
  }
  return "?";
}

Agent::Agent(AgentConfig config, Timestamp now)
    : config_(std::move(config)),
      ta_(ms(config_.ta_ms)),
      controlling_(config_.controlling),
      tie_breaker_(config_.tie_breaker != 0 ? config_.tie_breaker : random_u64()),
      next_send_(now),
      burst_left_(config_.burst > 1 ? config_.burst - 1 : 0) {
  if (config_.software.size() > kMaxSoftware) config_.software.resize(kMaxSoftware);
  // Out of memory leaves the key empty: then nothing is ever answered (as with no password).
  local_key_.assign(config_.local_pwd.data(), config_.local_pwd.size());
  identity::wipe(&config_.local_pwd);
  if (config_.check_rtx.rc == 0) config_.check_rtx.rc = 1;
  if (config_.check_rtx.rto_ms == 0) config_.check_rtx.rto_ms = 1;
  // The whole life of a check transaction, replaying ClientTransactions' schedule.
  uint64_t t = 0, rto = config_.check_rtx.rto_ms;
  for (uint32_t i = 1; i < config_.check_rtx.rc; ++i) {
    t += rto;
    rto *= 2;
    if (config_.check_rtx.max_rto_ms != 0 && rto > config_.check_rtx.max_rto_ms) {
      rto = config_.check_rtx.max_rto_ms;
    }
  }
  check_life_ = ms(t + uint64_t(config_.check_rtx.rm) * config_.check_rtx.rto_ms);
  last_now_ = now;
}

int Agent::set_remote_credentials(std::string ufrag, std::string pwd) {
  if (ufrag.empty() || pwd.empty()) {
    return fail(kErrInvalidArgument, "ICE: empty remote ufrag or password");
  }
  if (!remote_key_.empty()) {
    const bool same = ufrag == remote_ufrag_ && pwd == remote_key_.view();
    identity::wipe(&pwd);
    if (same) return kOk;
    return fail(kErrInvalidArgument, "ICE: remote credentials changed (restart needs a new agent)");
  }
  remote_ufrag_ = std::move(ufrag);
  const int r = remote_key_.assign(pwd.data(), pwd.size());
  identity::wipe(&pwd);
  return r;
}

Agent::LocalBase *Agent::base_for(int family) {
  if (family == AF_INET) return &v4_;
  if (family == AF_INET6) return &v6_;
  return nullptr;
}

const Agent::LocalBase *Agent::base_for(int family) const {
  return const_cast<Agent *>(this)->base_for(family);
}

uint32_t Agent::prflx_priority(int family) const {
  const LocalBase *b = base_for(family);
  const uint16_t local_pref = b ? uint16_t((b->cand.priority >> 8) & 0xffff) : 0;
  return candidate_priority(CandidateType::kPeerReflexive, local_pref);
}

uint64_t Agent::pair_priority(const Pair &p) const {
  const uint64_t l = base_for(p.family)->cand.priority;
  const uint64_t r = remotes_[p.remote].cand.priority;
  const uint64_t g = controlling_ ? l : r, d = controlling_ ? r : l;
  return (std::min(g, d) << 32) + 2 * std::max(g, d) + (g > d ? 1 : 0);
}

void Agent::reprioritise() {
  for (Pair &p : pairs_) p.priority = pair_priority(p);
}

void Agent::add_local_candidate(const Candidate &c) {
  if (c.component != 1 || !c.address.is_set() || c.address.port() == 0) return;
  LocalBase *b = base_for(c.address.family());
  if (b == nullptr) return;
  if (c.type == CandidateType::kHost) {
    if (b->present && !b->synthesized && c.priority <= b->cand.priority) return;
    const bool had = b->present;
    b->present = true;
    b->synthesized = false;
    b->cand = c;
    if (!had) pair_family(c.address.family());
    reprioritise();
    return;
  }
  if (c.type != CandidateType::kServerReflexive) return;
  bool known = false;
  for (const Candidate &o : local_reflexive_) known |= o.address == c.address;
  if (!known && local_reflexive_.size() < kMaxLocalReflexive) local_reflexive_.push_back(c);
  if (!b->present && c.related.is_set() && c.related.family() == c.address.family()) {
    // RFC 8445 6.1.2.4: a reflexive candidate is checked from its base.
    b->present = true;
    b->synthesized = true;
    b->cand.type = CandidateType::kHost;
    b->cand.address = c.related;
    b->cand.related = SocketAddress();
    b->cand.priority = candidate_priority(CandidateType::kHost, uint16_t(c.priority >> 8));
    b->cand.foundation = candidate_foundation(CandidateType::kHost, c.related, SocketAddress());
    pair_family(c.address.family());
    reprioritise();
  }
}

void Agent::pair_family(int family) {
  for (size_t i = 0; i < remotes_.size(); ++i) {
    if (remotes_[i].cand.address.family() == family && find_pair(remotes_[i].cand.address) < 0) {
      add_pair(i);
    }
  }
}

void Agent::add_pair(size_t remote) {
  if (pairs_.size() >= kMaxPairs) {
    ++stats_.pairs_dropped;
    return;
  }
  Pair p;
  p.remote = remote;
  p.family = remotes_[remote].cand.address.family();
  p.priority = pair_priority(p);
  pairs_.push_back(p);
  update_frozen();
}

int Agent::find_remote(const SocketAddress &a) const {
  for (size_t i = 0; i < remotes_.size(); ++i) {
    if (remotes_[i].cand.address == a) return int(i);
  }
  return -1;
}

int Agent::find_pair(const SocketAddress &remote) const {
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (remotes_[pairs_[i].remote].cand.address == remote) return int(i);
  }
  return -1;
}

std::string Agent::pair_foundation(const Pair &p) const {
  return base_for(p.family)->cand.foundation + ":" + remotes_[p.remote].cand.foundation;
}

int Agent::add_remote_candidate(const Candidate &c, Timestamp now) {
  if (c.component != 1 || c.type == CandidateType::kRelay) {
    ++stats_.remote_ignored;
    return kOk;
  }
  if (!c.address.is_set() || c.address.port() == 0 || c.address.is_unspecified_ip()) {
    return fail(kErrInvalidArgument, "ICE: remote candidate without a usable address");
  }
  const int known = find_remote(c.address);
  if (known >= 0) {
    Remote &r = remotes_[size_t(known)];
    if (r.learned && c.type != CandidateType::kPeerReflexive) {
      // The signaled candidate names what we only knew as peer-reflexive
      // (trickle, RFC 8838): its pair keeps its state, with the signaled type and priority.
      r.cand = c;
      r.learned = false;
      reprioritise();
      update_frozen();
    } else {
      ++stats_.remote_ignored;
    }
    return kOk;
  }
  if (remotes_.size() >= kMaxRemoteCandidates) {
    ++stats_.remote_dropped;
    return fail(kErrLimitReached, "ICE: more than %zu remote candidates", kMaxRemoteCandidates);
  }
  const LocalBase *b = base_for(c.address.family());
  const bool pairable = b != nullptr && b->present;
  if (pairable && pairs_.size() >= kMaxPairs) {
    ++stats_.pairs_dropped;
    return fail(kErrLimitReached, "ICE: checklist full (%zu pairs)", kMaxPairs);
  }
  remotes_.push_back({c, false});
  if (pairable) add_pair(remotes_.size() - 1);
  last_now_ = std::max(last_now_, now);
  advance(now);
  return kOk;
}

void Agent::end_of_remote_candidates(Timestamp now) {
  end_of_remote_ = true;
  last_now_ = std::max(last_now_, now);
  advance(now);
}

void Agent::update_frozen() {
  std::vector<std::string> f(pairs_.size());
  for (size_t i = 0; i < pairs_.size(); ++i) f[i] = pair_foundation(pairs_[i]);
  // A success unfreezes its whole foundation (RFC 8445 7.2.5.3.3).
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (pairs_[i].state != PairState::kFrozen) continue;
    for (size_t j = 0; j < pairs_.size(); ++j) {
      if (f[j] == f[i] && pairs_[j].state == PairState::kSucceeded) {
        pairs_[i].state = PairState::kWaiting;
        break;
      }
    }
  }
  // One component: a foundation with nothing waiting or in progress gets its best frozen pair
  // going (6.1.2.6 for the initial list, 6.1.4.2 and RFC 8838 for later ones). Nothing else
  // shares a foundation's result, so waiting longer would only delay the check.
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (pairs_[i].state != PairState::kFrozen) continue;
    bool busy = false;
    size_t best = i;
    for (size_t j = 0; j < pairs_.size(); ++j) {
      if (f[j] != f[i]) continue;
      busy |= pairs_[j].state == PairState::kWaiting || pairs_[j].state == PairState::kInProgress;
      if (pairs_[j].state == PairState::kFrozen && pairs_[j].priority > pairs_[best].priority) {
        best = j;
      }
    }
    if (!busy) pairs_[best].state = PairState::kWaiting;
  }
}

int Agent::pick_ordinary() const {
  int best = -1;
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const Pair &p = pairs_[i];
    if (p.state != PairState::kWaiting || p.triggered) continue;
    if (best < 0 || p.priority > pairs_[size_t(best)].priority) best = int(i);
  }
  return best;
}

bool Agent::has_work_to_send() const {
  if (remote_key_.empty()) return false;
  if (state_ == State::kRunning) return !triggered_.empty() || pick_ordinary() >= 0;
  return false;
}

void Agent::enqueue_triggered(size_t pair) {
  if (pairs_[pair].triggered) return;
  pairs_[pair].triggered = true;
  triggered_.push_back(pair);
}

int Agent::write_request(const stun::TransactionId &id, int family, bool nominate,
                         uint8_t *buf, size_t cap, size_t *len) const {
  stun::MessageBuilder b(buf, cap);
  b.start(stun::kBinding, stun::kRequest, id);
  b.add_string(stun::kAttrUsername, remote_ufrag_ + ":" + config_.local_ufrag);
  b.add_u32(stun::kAttrPriority, prflx_priority(family));
  if (controlling_) {
    b.add_u64(stun::kAttrIceControlling, tie_breaker_);
    if (nominate) b.add_flag(stun::kAttrUseCandidate);
  } else {
    b.add_u64(stun::kAttrIceControlled, tie_breaker_);
  }
  if (!config_.software.empty()) b.add_string(stun::kAttrSoftware, config_.software);
  b.add_message_integrity(remote_key_.data(), remote_key_.size());
  b.add_fingerprint();
  return b.finish(len);
}

bool Agent::write_probe(int family, uint8_t *buf, size_t cap, size_t *len) {
  if (remote_key_.empty() || state_ != State::kRunning) return false;
  if (write_request(stun::TransactionId::random(), family, false, buf, cap, len) != kOk) {
    return false;
  }
  ++stats_.probes_written;
  return true;
}

bool Agent::start_check(size_t index, bool consent, Timestamp now) {
  Pair &p = pairs_[index];
  if (!consent) cancel_check(p, now);  // at most one live check per pair
  const bool nominate = !consent && controlling_ && p.use_candidate;
  uint8_t buf[stun::kMaxMessageLen];
  const stun::TransactionId id = stun::TransactionId::random();
  size_t n = 0;
  const int built = write_request(id, p.family, nominate, buf, sizeof buf, &n);
  uint64_t cookie = (++seq_ << kCookieSeqShift) | uint64_t(index);
  if (controlling_) cookie |= kCookieControlling;
  if (nominate) cookie |= kCookieUseCandidate;
  if (consent) cookie |= kCookieConsent;
  if (built != kOk ||
      client_.start(buf, n, remotes_[p.remote].cand.address, config_.check_rtx, now, cookie,
                    remote_key_.data(), remote_key_.size()) != kOk) {
    // Only absurd credentials get here; failing the pair keeps the scheduler moving.
    if (!consent) fail_pair(index);
    return false;
  }
  txns_.push_back({id, cookie, 0});
  if (consent) {
    ++stats_.consent_checks_sent;
  } else {
    p.cookie = cookie;
    p.state = PairState::kInProgress;
    ++stats_.checks_sent;
  }
  return true;
}

bool Agent::poll_transmit(Timestamp now, Datagram *out) {
  last_now_ = std::max(last_now_, now);
  if (state_ == State::kFailed) return false;
  if (!replies_.empty()) {
    out_ = std::move(replies_.front().data);
    *out = {out_.data(), out_.size(), replies_.front().to};
    replies_.pop_front();
    return true;
  }
  advance(now);
  if (now < next_send_ || state_ == State::kFailed) return false;
  stun::ClientTransactions::Transmit t;
  // Retransmissions first; a new transaction starts only when none is due, so the poll right
  // after start() can only return that new one.
  bool sent = client_.poll_transmit(now, &t);
  if (!sent && !remote_key_.empty()) {
    if (state_ == State::kRunning) {
      while (!sent && !triggered_.empty()) {
        const size_t i = triggered_.front();
        triggered_.pop_front();
        Pair &p = pairs_[i];
        p.triggered = false;
        // A stale answer may have validated it while queued; only nomination re-checks it.
        if (p.valid && !p.use_candidate) continue;
        if (start_check(i, false, now)) {
          ++stats_.triggered_checks;
          sent = client_.poll_transmit(now, &t);
        }
      }
      if (!sent) {
        const int i = pick_ordinary();
        if (i >= 0 && start_check(size_t(i), false, now)) sent = client_.poll_transmit(now, &t);
      }
    } else if (state_ == State::kCompleted && !consent_lost_ && now >= consent_next_) {
      consent_next_ = now + consent_interval();
      if (start_check(size_t(selected_), true, now)) sent = client_.poll_transmit(now, &t);
    }
  }
  if (!sent) return false;
  out_.assign(t.data, t.data + t.len);
  *out = {out_.data(), out_.size(), t.to};
  if (burst_left_ > 0) {
    --burst_left_;  // the first checks of a new agent leave together
  } else {
    next_send_ = now + ta_;
  }
  return true;
}

bool Agent::handle_datagram(const uint8_t *data, size_t len, const SocketAddress &from,
                            Timestamp now) {
  if (!stun::looks_like_stun(data, len)) return false;
  stun::Message m;
  if (stun::Message::parse(data, len, &m) != kOk || m.method() != stun::kBinding) return false;
  if (m.message_class() == stun::kRequest) {
    std::string_view ufrag;
    if (!username_ufrag(m, &ufrag) || ufrag != config_.local_ufrag) return false;
    last_now_ = std::max(last_now_, now);
    handle_request(m, from, now);
    advance(now);
    return true;
  }
  if (m.message_class() != stun::kSuccessResponse && m.message_class() != stun::kErrorResponse) {
    return false;
  }
  size_t k = 0;
  while (k < txns_.size() && txns_[k].txid != m.transaction_id()) ++k;
  if (k == txns_.size()) return false;
  last_now_ = std::max(last_now_, now);
  if (txns_[k].forget_at == 0) {
    client_.handle_datagram(data, len, from, now);
    collect(now);
  } else {
    // A check cancelled by a triggered one: no more retransmissions, but its answer still
    // counts (RFC 8445 7.3.1.4). Same acceptance rules as ClientTransactions.
    const Txn txn = txns_[k];
    const size_t i = size_t(txn.cookie & kCookiePairMask);
    if (i >= pairs_.size() || from != remotes_[pairs_[i].remote].cand.address) {
      ++stats_.responses_wrong_source;
    } else if (m.check_integrity(remote_key_.data(), remote_key_.size()) != kOk ||
               (m.message_class() == stun::kSuccessResponse && m.unknown_required_count() != 0)) {
      ++stats_.responses_bad_integrity;
    } else {
      txns_.erase(txns_.begin() + long(k));
      on_result(txn.cookie,
                m.message_class() == stun::kSuccessResponse
                    ? stun::ClientTransactions::Outcome::kSuccess
                    : stun::ClientTransactions::Outcome::kErrorResponse,
                std::vector<uint8_t>(data, data + len), 0, now);
    }
  }
  advance(now);
  return true;
}

void Agent::collect(Timestamp now) {
  stun::ClientTransactions::Result res;
  while (client_.poll_result(&res)) {
    for (size_t k = 0; k < txns_.size(); ++k) {
      if (txns_[k].cookie == res.cookie) {
        txns_.erase(txns_.begin() + long(k));
        break;
      }
    }
    on_result(res.cookie, res.outcome, res.response, res.rtt, now);
  }
}

void Agent::fail_pair(size_t index) {
  Pair &p = pairs_[index];
  p.state = PairState::kFailed;
  p.valid = false;  // a valid pair only fails when its nomination check did: the path died
  p.use_candidate = false;
  if (nominating_ == int(index)) nominating_ = -1;
  update_frozen();
}

void Agent::on_result(uint64_t cookie, stun::ClientTransactions::Outcome outcome,
                      const std::vector<uint8_t> &response, Timestamp rtt, Timestamp now) {
  const size_t i = size_t(cookie & kCookiePairMask);
  if (i >= pairs_.size()) return;
  Pair &p = pairs_[i];
  const bool consent = (cookie & kCookieConsent) != 0;
  const bool nominating = (cookie & kCookieUseCandidate) != 0;
  const bool sent_controlling = (cookie & kCookieControlling) != 0;
  const bool current = !consent && p.cookie == cookie;
  if (current) p.cookie = 0;
  stun::Message m;
  const bool parsed =
      !response.empty() && stun::Message::parse(response.data(), response.size(), &m) == kOk;

  SocketAddress mapped;
  // A success without XOR-MAPPED-ADDRESS is malformed and counts as an error.
  if (outcome == stun::ClientTransactions::Outcome::kSuccess && parsed &&
      m.xor_address(stun::kAttrXorMappedAddress, &mapped) == kOk) {
    // RFC 7675: any authenticated success from the selected pair's remote renews consent.
    if (state_ == State::kCompleted && int(i) == selected_ && !consent_lost_) {
      consent_expiry_ = now + ms(config_.consent_timeout_ms);
    }
    if (consent || state_ != State::kRunning) return;
    if (!current && p.cookie != 0 && (p.cookie & kCookieUseCandidate) == 0) {
      // A cancelled check's answer beat the check that replaced it: that one is moot now.
      drop_check(p);
    }
    p.state = PairState::kSucceeded;
    p.mapped = mapped;
    p.rtt = rtt;
    if (!p.valid) {
      p.valid = true;
      if (first_valid_at_ == 0) first_valid_at_ = now;
      PARLEY_LOG(kLogDebug, "ice", "valid pair -> %s (rtt %llu ms)",
                 remotes_[p.remote].cand.address.to_string().c_str(),
                 static_cast<unsigned long long>(rtt / kNanosPerMilli));
      emit(AgentEventType::kPairValid, &p);
    }
    update_frozen();
    if ((nominating && sent_controlling && controlling_) || (!controlling_ && p.peer_nominated)) {
      select(i, now);
    }
    return;
  }
  if (consent || state_ != State::kRunning) return;  // only a success counts for consent
  if (outcome == stun::ClientTransactions::Outcome::kErrorResponse) {
    int code = 0;
    if (parsed && m.error_code(&code, nullptr) == kOk && code == 487) {
      ++stats_.role_conflicts;
      // RFC 8445 7.2.5.1: take the role opposite the one the request claimed, unless a
      // conflict seen meanwhile already did; then check the pair again.
      if (sent_controlling == controlling_) set_role(!sent_controlling);
      if (current && p.valid) {
        p.state = PairState::kSucceeded;
      } else if (current) {
        p.state = PairState::kWaiting;
        enqueue_triggered(i);
      }
      return;
    }
  }
  // A timeout or any other error fails the pair. An answer to a cancelled check does not: the
  // triggered check that replaced it decides. Nor does a pair that is valid already lose that
  // to a repeat check; only a failed nomination shows its path died.
  if (!current) return;
  if (p.valid && !nominating) {
    p.state = PairState::kSucceeded;
    return;
  }
  fail_pair(i);
}

void Agent::drop_check(Pair &p) {
  client_.cancel(p.cookie);
  for (size_t k = 0; k < txns_.size(); ++k) {
    if (txns_[k].cookie == p.cookie) {
      txns_.erase(txns_.begin() + long(k));
      break;
    }
  }
  p.cookie = 0;
}

void Agent::cancel_check(Pair &p, Timestamp now) {
  if (p.cookie == 0) return;
  client_.cancel(p.cookie);
  size_t cancelled = 0;
  for (Txn &t : txns_) {
    if (t.cookie == p.cookie) t.forget_at = now + check_life_;
    cancelled += t.forget_at != 0;
  }
  if (cancelled > kMaxCancelled) {
    for (size_t k = 0; k < txns_.size(); ++k) {
      if (txns_[k].forget_at != 0) {
        txns_.erase(txns_.begin() + long(k));
        break;
      }
    }
  }
  p.cookie = 0;
}

void Agent::handle_request(const stun::Message &m, const SocketAddress &from, Timestamp now) {
  ++stats_.requests_received;
  if (state_ == State::kFailed) {
    ++stats_.requests_dropped;
    return;
  }
  // Unauthenticated requests get nothing: no 401 (it could not be authenticated either, and
  // an answer would make us a reflector for anyone who can guess a ufrag).
  if (local_key_.empty() || m.check_integrity(local_key_.data(), local_key_.size()) != kOk) {
    ++stats_.requests_bad_integrity;
    return;
  }
  if (m.unknown_required_count() != 0) {
    reply_error(m, from, 420, "Unknown Attribute", m.unknown_required(),
                m.unknown_required_count());
    return;
  }
  uint32_t priority = 0;
  if (m.u32(stun::kAttrPriority, &priority) != kOk || priority == 0) {
    reply_error(m, from, 400, "Bad Request", nullptr, 0);
    return;
  }
  // Role conflicts (RFC 8445 7.3.1.1). Once a pair is selected the roles are frozen: the
  // caller has already chosen QUIC client and server from them.
  if (state_ == State::kRunning) {
    uint64_t theirs = 0;
    if (controlling_ && m.has(stun::kAttrIceControlling) &&
        m.u64(stun::kAttrIceControlling, &theirs) == kOk) {
      ++stats_.role_conflicts;
      if (tie_breaker_ >= theirs) {
        reply_error(m, from, 487, "Role Conflict", nullptr, 0);
        return;
      }
      set_role(false);
    } else if (!controlling_ && m.has(stun::kAttrIceControlled) &&
               m.u64(stun::kAttrIceControlled, &theirs) == kOk) {
      ++stats_.role_conflicts;
      if (tie_breaker_ < theirs) {
        reply_error(m, from, 487, "Role Conflict", nullptr, 0);
        return;
      }
      set_role(true);
    }
  }
  reply_success(m, from);
  if (state_ != State::kRunning) return;

  // The source is a peer-reflexive candidate if we did not know it (RFC 8445 7.3.1.3).
  if (find_remote(from) < 0) {
    if (remotes_.size() >= kMaxRemoteCandidates) {
      ++stats_.remote_dropped;
      return;
    }
    Candidate c;
    c.type = CandidateType::kPeerReflexive;
    c.address = from;
    c.priority = priority;
    c.foundation = candidate_foundation(CandidateType::kPeerReflexive, from, SocketAddress());
    remotes_.push_back({c, true});
    ++stats_.remote_prflx_learned;
    const LocalBase *b = base_for(from.family());
    if (b != nullptr && b->present) add_pair(remotes_.size() - 1);
  }
  const int pi = find_pair(from);
  if (pi < 0) return;  // no local candidate of that family (or the checklist is full)
  Pair &p = pairs_[size_t(pi)];
  if (!controlling_ && m.has(stun::kAttrUseCandidate)) p.peer_nominated = true;
  if (p.valid) {
    // RFC 8445 7.3.1.5: the controlled side selects a nominated pair once it is valid.
    if (p.peer_nominated && !controlling_) select(size_t(pi), now);
    return;
  }
  // Triggered check (RFC 8445 7.3.1.4): the peer just reached us on this pair, so its NAT
  // most likely lets our check through now.
  if (p.state == PairState::kInProgress) cancel_check(p, now);
  p.state = PairState::kWaiting;
  enqueue_triggered(size_t(pi));
}

void Agent::reply_success(const stun::Message &m, const SocketAddress &from) {
  uint8_t buf[256];  // 20 + 24 (XOR-MAPPED, IPv6) + 24 + 8: at most 76 bytes
  stun::MessageBuilder b(buf, sizeof buf);
  b.start(stun::kBinding, stun::kSuccessResponse, m.transaction_id());
  b.add_xor_address(stun::kAttrXorMappedAddress, from);
  b.add_message_integrity(local_key_.data(), local_key_.size());
  b.add_fingerprint();
  size_t n = 0;
  if (b.finish(&n) != kOk) return;
  if (queue_reply(buf, n, from)) ++stats_.success_responses_sent;
}

void Agent::reply_error(const stun::Message &m, const SocketAddress &from, int code,
                        const char *reason, const uint16_t *unknown, size_t unknown_count) {
  uint8_t buf[256];  // the reason phrases are short and UNKNOWN-ATTRIBUTES holds at most 8
  stun::MessageBuilder b(buf, sizeof buf);
  b.start(stun::kBinding, stun::kErrorResponse, m.transaction_id());
  b.add_error_code(code, reason);
  if (unknown_count != 0) b.add_unknown_attributes(unknown, unknown_count);
  // The request authenticated, so the answer does too: the peer's ClientTransactions only
  // accepts authenticated responses.
  b.add_message_integrity(local_key_.data(), local_key_.size());
  b.add_fingerprint();
  size_t n = 0;
  if (b.finish(&n) != kOk) return;
  if (queue_reply(buf, n, from)) ++stats_.error_responses_sent;
}

bool Agent::queue_reply(const uint8_t *data, size_t len, const SocketAddress &to) {
  if (replies_.size() >= kMaxPendingReplies) {
    ++stats_.requests_dropped;
    return false;
  }
  replies_.push_back({std::vector<uint8_t>(data, data + len), to});
  return true;
}

void Agent::set_role(bool controlling) {
  if (controlling_ == controlling) return;
  controlling_ = controlling;
  nominating_ = -1;
  bool any_valid = false;
  for (Pair &p : pairs_) {
    p.use_candidate = false;
    any_valid |= p.valid;
  }
  // A new controlling side gives in-flight checks the usual grace before nominating.
  first_valid_at_ = controlling && any_valid ? last_now_ : 0;
  reprioritise();
  PARLEY_LOG(kLogInfo, "ice", "role conflict: now %s", controlling ? "controlling" : "controlled");
  emit(AgentEventType::kRoleChanged, nullptr);
}

void Agent::maybe_nominate(Timestamp now) {
  if (state_ != State::kRunning || !controlling_ || nominating_ >= 0 || remote_key_.empty()) {
    return;
  }
  int best = -1;
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (pairs_[i].valid && (best < 0 || pairs_[i].priority > pairs_[size_t(best)].priority)) {
      best = int(i);
    }
  }
  if (best < 0) return;
  if (first_valid_at_ == 0) first_valid_at_ = now;
  bool pending_higher = false;
  for (const Pair &p : pairs_) {
    const bool pending = p.state == PairState::kFrozen || p.state == PairState::kWaiting ||
                         p.state == PairState::kInProgress;
    pending_higher |= !p.valid && pending && p.priority > pairs_[size_t(best)].priority;
  }
  if (pending_higher && now < first_valid_at_ + ms(config_.nomination_wait_ms)) return;
  nominating_ = best;
  Pair &p = pairs_[size_t(best)];
  p.use_candidate = true;
  // Nomination goes first: the triggered queue, at its front (RFC 8445 8.1.1).
  if (p.triggered) triggered_.erase(std::find(triggered_.begin(), triggered_.end(), size_t(best)));
  p.triggered = true;
  triggered_.push_front(size_t(best));
  PARLEY_LOG(kLogDebug, "ice", "nominating %s",
             remotes_[p.remote].cand.address.to_string().c_str());
}

void Agent::select(size_t index, Timestamp now) {
  if (state_ != State::kRunning) return;
  state_ = State::kCompleted;
  selected_ = int(index);
  nominating_ = -1;
  // Completed (RFC 8445 8.1.2): no more checks. Requests are still answered and consent runs.
  for (const Txn &t : txns_) client_.cancel(t.cookie);
  txns_.clear();
  for (Pair &p : pairs_) {
    p.cookie = 0;
    p.triggered = false;
  }
  triggered_.clear();
  consent_next_ = now + consent_interval();
  consent_expiry_ = now + ms(config_.consent_timeout_ms);
  const Pair &p = pairs_[index];
  PARLEY_LOG(kLogInfo, "ice", "selected pair -> %s (%s)",
             remotes_[p.remote].cand.address.to_string().c_str(),
             controlling_ ? "controlling" : "controlled");
  emit(AgentEventType::kSelected, &p);
}

void Agent::check_failed(Timestamp) {
  if (state_ != State::kRunning || !end_of_remote_ || remote_key_.empty() ||
      !triggered_.empty()) {
    return;
  }
  for (const Pair &p : pairs_) {
    if (p.valid || p.state == PairState::kFrozen || p.state == PairState::kWaiting ||
        p.state == PairState::kInProgress) {
      return;
    }
  }
  state_ = State::kFailed;
  for (const Txn &t : txns_) client_.cancel(t.cookie);
  txns_.clear();
  replies_.clear();
  PARLEY_LOG(kLogInfo, "ice", "connectivity checks failed (%zu pairs)", pairs_.size());
  emit(AgentEventType::kFailed, nullptr);
}

void Agent::expire(Timestamp now) {
  txns_.erase(std::remove_if(txns_.begin(), txns_.end(),
                             [&](const Txn &t) { return t.forget_at != 0 && t.forget_at <= now; }),
              txns_.end());
  if (state_ == State::kCompleted && !consent_lost_ && now >= consent_expiry_) {
    consent_lost_ = true;
    for (const Txn &t : txns_) client_.cancel(t.cookie);
    txns_.clear();
    PARLEY_LOG(kLogInfo, "ice", "consent lost on the selected pair");
    emit(AgentEventType::kConsentLost, &pairs_[size_t(selected_)]);
  }
}

void Agent::advance(Timestamp now) {
  expire(now);
  maybe_nominate(now);
  check_failed(now);
}

Timestamp Agent::next_deadline() const {
  if (state_ == State::kFailed) return 0;
  Timestamp best = 0;
  auto consider = [&best](Timestamp t) {
    if (t == 0) t = 1;  // 0 means "no timer"
    if (best == 0 || t < best) best = t;
  };
  if (!replies_.empty()) consider(last_now_);
  // Everything ClientTransactions wants (retransmissions, and give-ups, which may thus run up
  // to Ta late) waits for the pacing slot.
  const Timestamp c = client_.next_deadline();
  if (c != 0) consider(std::max(c, next_send_));
  if (has_work_to_send()) consider(next_send_);
  if (state_ == State::kRunning && controlling_ && nominating_ < 0 && first_valid_at_ != 0) {
    const Timestamp t = first_valid_at_ + ms(config_.nomination_wait_ms);
    if (t > last_now_) consider(t);  // at or before last_now_ it has been acted on
  }
  if (state_ == State::kCompleted && !consent_lost_) {
    if (!remote_key_.empty()) consider(std::max(consent_next_, next_send_));
    consider(consent_expiry_);
  }
  for (const Txn &t : txns_) {
    if (t.forget_at != 0) consider(t.forget_at);
  }
  return best;
}

void Agent::handle_timeout(Timestamp now) {
  last_now_ = std::max(last_now_, now);
  if (state_ == State::kFailed) return;
  client_.handle_timeout(now);
  collect(now);
  advance(now);
}

bool Agent::poll_event(AgentEvent *out) {
  if (events_.empty()) return false;
  *out = events_.front();
  events_.pop_front();
  return true;
}

PairInfo Agent::info(const Pair &p) const {
  PairInfo r;
  const Remote &rem = remotes_[p.remote];
  const LocalBase *b = base_for(p.family);
  r.local_base = b->cand.address;
  r.remote = rem.cand.address;
  r.remote_type = rem.cand.type;
  r.priority = p.priority;
  r.rtt = p.rtt;
  r.local = r.local_base;
  r.local_type = CandidateType::kHost;
  if (p.mapped.is_set() && p.mapped != r.local_base) {
    r.local = p.mapped;
    r.local_type = CandidateType::kPeerReflexive;
    for (const Candidate &c : local_reflexive_) {
      if (c.address == p.mapped) r.local_type = CandidateType::kServerReflexive;
    }
  }
  return r;
}

void Agent::emit(AgentEventType t, const Pair *p) {
  AgentEvent e;
  e.type = t;
  if (p != nullptr) e.pair = info(*p);
  e.controlling = controlling_;
  events_.push_back(e);
}

Timestamp Agent::consent_interval() const {
  // RFC 7675: randomised over 0.8-1.2 of the interval, so consent checks of many flows
  // do not synchronise.
  const uint64_t permille = 800 + random_u64() % 401;
  return ms(config_.consent_interval_ms) * permille / 1000;
}

bool Agent::selected_pair(PairInfo *out) const {
  if (selected_ < 0) return false;
  *out = info(pairs_[size_t(selected_)]);
  return true;
}

std::vector<PairInfo> Agent::valid_pairs() const {
  std::vector<const Pair *> v;
  for (const Pair &p : pairs_) {
    if (p.valid) v.push_back(&p);
  }
  std::sort(v.begin(), v.end(),
            [](const Pair *x, const Pair *y) { return x->priority > y->priority; });
  std::vector<PairInfo> out;
  for (const Pair *p : v) out.push_back(info(*p));
  return out;
}

AgentStats Agent::stats() const {
  AgentStats s = stats_;
  const stun::ClientStats &c = client_.stats();
  s.retransmissions = c.retransmissions;
  s.responses_wrong_source += c.wrong_source;
  s.responses_bad_integrity += c.bad_integrity;
  return s;
}

bool Agent::peek_local_ufrag(const uint8_t *data, size_t len, std::string_view *ufrag) {
  if (!stun::looks_like_stun(data, len)) return false;
  stun::Message m;
  if (stun::Message::parse(data, len, &m) != kOk || m.method() != stun::kBinding ||
      m.message_class() != stun::kRequest) {
    return false;
  }
  return username_ufrag(m, ufrag);
}

}  // namespace parley::ice

// Why this file is long: it is the one place where a call's direct path meets real sockets and
// connections. An event here (a valid pair, a handshake, a restart, a silent path) changes the
// ICE generation, the direct QUIC connections (dialed, accepted, promoted, lingering), birthday
// probing's sockets, the retry schedule and the path manager together. The rules themselves
// are already elsewhere, sans-I/O: ice::Agent, ice::BirthdaySchedule, ice::RestartSequencer,
// path::Manager, path::DirectRetry.

#include "call/session.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "media/frame_header.h"

namespace parley::call {

namespace {

constexpr Timestamp kMs = 1000000;
// While a direct connection exists the session looks at its progress at least this often,
// so a path that went silent is noticed even when the host sends nothing for a while.
constexpr uint64_t kDirectPollMs = 20;
// A restart that finds no usable local address (a network still coming up) looks again this
// often, at most this many times, before it goes ahead anyway.
constexpr uint32_t kUnusableWaitMs = 100;
constexpr uint32_t kMaxUnusableWaits = 20;
// A replaced direct connection is kept this long, delivering what the peer still sends on it
// (the two sides promote the new one a moment apart), before it is closed.
constexpr uint32_t kReplacedLingerMs = 500;

path::Config manager_config(const DirectConfig &d) {
  path::Config c;
  c.dead_max_ms = d.dead_max_ms;
  if (c.dead_min_ms > c.dead_max_ms) c.dead_min_ms = c.dead_max_ms;
  return c;
}

std::string describe(ice::CandidateType t, const SocketAddress &a) {
  return std::string(ice::candidate_type_name(t)) + " " + a.to_string();
}

}  // namespace

const char *path_kind_name(PathKind p) { return p == PathKind::kDirect ? "direct" : "relay"; }

Session::Session(Env env, Params params)
    : env_(std::move(env)), p_(std::move(params)), manager_(manager_config(env_.direct)),
      timer_(*env_.loop) {}

int Session::create(Env env, Params params, const media::LocalMediaKey &mine,
                    const signal::SignedKey &peer_key, std::unique_ptr<Session> *out) {
  const identity::Fingerprint me = env.id->fingerprint();
  const identity::Fingerprint &caller = params.caller ? me : params.peer;
  const identity::Fingerprint &callee = params.caller ? params.peer : me;
  media::CallKeys keys;
  int r = media::derive_call_keys(mine, peer_key, params.caller, params.id, caller, callee,
                                  &keys);
  if (r != kOk) return r;
  std::unique_ptr<Session> s(new Session(std::move(env), std::move(params)));
  // A random start in the lower half, like RTP's random initial sequence number: the index
  // space (2^64) never runs out, and the wire sequence does not reveal the call's age.
  r = s->sealer_.init(keys.send.data(), randombytes_random() & 0x7fffffff);
  if (r != kOk) return r;
  r = s->opener_.init(keys.recv.data());
  if (r != kOk) return r;
  s->start();
  *out = std::move(s);
  return kOk;
}

Session::~Session() {
  *alive_ = nullptr;
  timer_.stop();
  stop_birthday(true);
  close_direct();
}

void Session::close_previous() {
  if (!previous_) return;
  previous_->set_handler([](quic::Connection &, const quic::Event &) {});
  previous_->close(0, "replaced by a newer direct path");
  previous_ = nullptr;
  env_.driver->kick();
}

void Session::close_direct() {
  // A connection lives until its kClosed event; nothing of this session may run then.
  close_previous();
  for (quic::Connection **c : {&direct_, &next_}) {
    if (!*c) continue;
    (*c)->set_handler([](quic::Connection &, const quic::Event &) {});
    (*c)->close(0, "call ended");
    *c = nullptr;
    env_.driver->kick();
  }
}

void Session::start() {
  const Timestamp now = monotonic_now();
  active_at_ = now;
  if (!env_.direct.enabled) {
    stats_.direct_error = kErrIceFailed;
    retry_.stop();
    return;
  }
  start_agent(now, p_.local_ufrag, p_.local_pwd, p_.local_candidates);
  if (agent_->set_remote_credentials(p_.remote_ufrag, std::string(p_.remote_pwd.view())) !=
      kOk) {
    give_up_direct(kErrIceFailed, "the peer's ICE credentials are unusable");
    return;
  }
  for (const auto &c : p_.remote_candidates) add_remote_candidate(c, now);
  maybe_start_birthday(now);
  if (p_.remote_candidates_done) remote_candidates_done(now);
  pump();
}

void Session::start_agent(Timestamp now, const std::string &ufrag,
                          const identity::SecretBuffer &pwd,
                          const std::vector<ice::Candidate> &local) {
  if (next_) {  // the previous generation's handshake: its agent is going
    next_->set_handler([](quic::Connection &, const quic::Event &) {});
    next_->close(0, "superseded by an ICE restart");
    next_ = nullptr;
  }
  // An attempt that a new generation overtakes before it verified a path did not work: its
  // failure is what the stats say until the new one settles.
  if (attempt_open_ && stats_.direct_error == 0) stats_.direct_error = kErrIceFailed;
  stop_birthday(!(direct_ && direct_verified_));
  remote_srflx4_ = ice::Candidate();
  ice::AgentConfig ac;
  ac.controlling = p_.caller;  // roles never change across restarts: no role conflict
  ac.local_ufrag = ufrag;
  ac.local_pwd = std::string(pwd.view());  // the agent keeps it wiped, and wipes this
  ac.ta_ms = env_.direct.ta_ms;
  retire_agent();
  agent_ = std::make_unique<ice::Agent>(std::move(ac), now);
  for (const auto &c : local) agent_->add_local_candidate(c);
  selected_remote_ = SocketAddress();
  valid_pairs_.clear();
  const uint32_t budget = path::direct_attempt_budget_ms(
      env_.direct.budget_ms, env_.relay->path_stats().smoothed_rtt / kMs);
  budget_end_ = now + Timestamp(budget) * kMs;
  attempt_open_ = true;
  agent_generation_ = restart_.generation();
  retry_.attempt_started();
  ++stats_.direct_attempts;
}

int Session::new_credentials(std::string *ufrag, identity::SecretBuffer *pwd) {
  *ufrag = ice::random_ice_chars(8);
  std::string text = ice::random_ice_chars(24);
  const int r = pwd->assign(text.data(), text.size());
  identity::wipe(&text);
  return r;
}

void Session::send_restart(uint64_t generation, const std::string &ufrag,
                           const identity::SecretBuffer &pwd,
                           const std::vector<ice::Candidate> &local) {
  signal::Message m;
  m.type = signal::Type::kIceRestart;
  m.call_id = p_.id;
  m.sequence = generation;
  m.ice_ufrag = ufrag;
  m.ice_pwd = std::string(pwd.view());
  m.candidates = local;
  if (m.candidates.size() > signal::kMaxCandidates) m.candidates.resize(signal::kMaxCandidates);
  if (env_.nat) m.nat = signal::nat_info(*env_.nat);
  const int r = env_.relay->send(m);
  identity::wipe(&m.ice_pwd);
  restart_unsent_ = r != kOk;
  if (r != kOk) {
    PARLEY_LOG(kLogInfo, "call", "ICE restart %llu not sent (%s); sent again once the relay "
               "is back", (unsigned long long)generation, error_description(r));
  }
}

void Session::relay_registered() {
  if (!restart_unsent_ || !env_.direct.enabled) return;
  restart_unsent_ = false;
  const Timestamp now = monotonic_now();
  restart_ice(now, "the relay is back");
  pump();
}

void Session::restart_ice(Timestamp now, const char *why) {
  if (!env_.direct.enabled || !env_.gather) return;
  Nat64Prefix nat64;
  const std::vector<ice::Candidate> local = env_.gather(&nat64);
  const bool usable = std::any_of(local.begin(), local.end(), [](const ice::Candidate &c) {
    return c.type == ice::CandidateType::kHost;
  });
  if (!usable && unusable_waits_ < kMaxUnusableWaits) {
    // A network that is still coming up (its link without carrier yet) has no address to
    // offer: a generation without candidates would only fail. Look again shortly.
    ++unusable_waits_;
    retry_.postpone(now + Timestamp(kUnusableWaitMs) * kMs);
    PARLEY_LOG(kLogDebug, "call", "no usable local address yet (%s); looking again in %u ms",
               why, unsigned(kUnusableWaitMs));
    return;
  }
  unusable_waits_ = 0;
  std::string ufrag;
  identity::SecretBuffer pwd;
  if (new_credentials(&ufrag, &pwd) != kOk) return;
  p_.nat64 = nat64;
  const uint64_t generation = restart_.begin_local();
  start_agent(now, ufrag, pwd, local);
  ++stats_.ice_restarts;
  PARLEY_LOG(kLogInfo, "call", "ICE restart, generation %llu (%s), %zu candidates",
             (unsigned long long)generation, why, local.size());
  send_restart(generation, ufrag, pwd, local);
}

void Session::on_ice_restart(const signal::Message &m, Timestamp now) {
  if (!env_.direct.enabled || !env_.gather) return;
  switch (restart_.on_remote(*m.sequence)) {
    case ice::RestartSequencer::Incoming::kStale:
      PARLEY_LOG(kLogDebug, "call", "ICE restart generation %llu ignored (now %llu)",
                 (unsigned long long)*m.sequence, (unsigned long long)restart_.generation());
      return;
    case ice::RestartSequencer::Incoming::kAdopt: {
      std::string ufrag;
      identity::SecretBuffer pwd;
      if (new_credentials(&ufrag, &pwd) != kOk) return;
      const std::vector<ice::Candidate> local = env_.gather(&p_.nat64);
      start_agent(now, ufrag, pwd, local);
      ++stats_.ice_restarts;
      PARLEY_LOG(kLogInfo, "call", "the peer restarts ICE, generation %llu (%zu candidates), "
                 "we answer with %zu", (unsigned long long)*m.sequence, m.candidates.size(),
                 local.size());
      send_restart(*m.sequence, ufrag, pwd, local);
      break;
    }
    case ice::RestartSequencer::Incoming::kAnswer:
      if (!agent_) return;
      break;
  }
  if (agent_->set_remote_credentials(m.ice_ufrag, m.ice_pwd) != kOk) {
    end_attempt(kErrIceFailed, "the peer's ICE credentials are unusable");
    return;
  }
  if (m.nat) p_.remote_nat = *m.nat;
  for (const auto &c : m.candidates) add_remote_candidate(c, now);
  maybe_start_birthday(now);
  remote_candidates_done(now);
  pump();
}

void Session::network_changed() {
  if (!env_.direct.enabled) return;
  const Timestamp now = monotonic_now();
  stop_birthday(true);  // the winner's mapping was the old network's
  retry_.reset(now);
  retry_.take(now);
  restart_ice(now, "the network changed");
  pump();
}

void Session::end_attempt(int error, const char *why) {
  const Timestamp now = monotonic_now();
  stats_.direct_error = error;
  stop_birthday(!(direct_ && direct_verified_));
  retire_agent();
  agent_.reset();
  attempt_open_ = false;
  if (next_) {
    next_->set_handler([](quic::Connection &, const quic::Event &) {});
    next_->close(0, "direct attempt over");
    next_ = nullptr;
    env_.driver->kick();
  }
  if (direct_ && manager_.state() == path::State::kDirect) {
    PARLEY_LOG(kLogInfo, "call", "ICE restart failed (%s); the direct path still works", why);
    return;
  }
  retry_.on_failure(now, error);
  stats_.next_retry_ms = retry_.next_delay_ms();
  PARLEY_LOG(kLogInfo, "call", "no direct path: %s; on the relay, direct tried again in %llu ms",
             why, (unsigned long long)((retry_.due() - now) / kMs));
}

void Session::give_up_direct(int error, const char *why) {
  if (!agent_ && !direct_ && !next_) return;
  if (direct_) {
    direct_->set_handler([](quic::Connection &, const quic::Event &) {});
    direct_->close(0, why);
    direct_ = nullptr;
    direct_verified_ = false;
    manager_.direct_down(monotonic_now());
  }
  end_attempt(error, why);
}

void Session::promote(quic::Connection &c, Timestamp now) {
  const bool replacing = direct_ != nullptr;
  if (direct_) {
    close_previous();
    previous_ = direct_;
    previous_close_at_ = now + Timestamp(kReplacedLingerMs) * kMs;
    previous_->set_handler([self = alive_](quic::Connection &conn, const quic::Event &e) {
      Session *s = *self;
      if (!s) return;
      if (e.type == quic::EventType::kDatagram) {
        s->on_direct_frame(e.data, e.len);
      } else if (e.type == quic::EventType::kClosed && &conn == s->previous_) {
        s->previous_ = nullptr;
      }
    });
  }
  direct_ = &c;
  next_ = nullptr;
  direct_verified_ = true;
  direct_remote_ = c.remote();
  // The pair it runs on (the handshake may beat nomination, which names it again).
  for (const ice::PairInfo &p : valid_pairs_) {
    if (p.remote == c.remote()) {
      stats_.local_candidate = describe(p.local_type, p.local);
      stats_.remote_candidate = describe(p.remote_type, p.remote);
    }
  }
  direct_rx_packets_ = c.stats().packets_received;
  attempt_open_ = false;
  retry_.on_success();
  stats_.direct_error = 0;
  stats_.direct_generation = agent_generation_;
  PARLEY_LOG(kLogInfo, "call", "direct path to %s verified", c.remote().to_string().c_str());
  // A working direct path is simply carried on the new connection; a lost or doubtful one
  // starts a fresh switch (make-before-break, both paths until the peer confirms).
  if (replacing && manager_.state() == path::State::kDirect) return;
  if (replacing) manager_.direct_down(now);
  manager_.direct_up(now);
}

void Session::pump() {
  const Timestamp now = monotonic_now();
  if (agent_) {
    agent_->handle_timeout(now);
    ice::Datagram d;
    while (agent_ && agent_->poll_transmit(now, &d)) env_.send(d.to, d.data, d.len);
    run_birthday(now);
    if (agent_ && eoc_held_ && now >= birthday_end_) {
      eoc_held_ = false;
      agent_->end_of_remote_candidates(now);
    }
    ice::AgentEvent e;
    while (agent_ && agent_->poll_event(&e)) on_agent_event(e);
    if (agent_ && attempt_open_ && now >= budget_end_) {
      end_attempt(kErrIceFailed, "the direct attempt ran out of time");
    }
  }
  if (previous_ && now >= previous_close_at_) close_previous();
  if (retry_.take(now)) restart_ice(now, "retrying the direct path");
  poll_direct(now);
  manager_.handle_timeout(now);
  drain_manager();
  Timestamp next = 0;
  auto take = [&next](Timestamp t) {
    if (t != 0 && (next == 0 || t < next)) next = t;
  };
  if (agent_) {
    take(agent_->next_deadline());
    if (attempt_open_) take(budget_end_);
    if (birthday_) take(birthday_->next_deadline());
    if (eoc_held_) take(birthday_end_);
  }
  if (previous_) take(previous_close_at_);
  take(retry_.due());
  take(manager_.next_deadline());
  if (direct_) take(now + kDirectPollMs * kMs);
  if (next == 0) {
    timer_.stop();
    return;
  }
  const uint64_t ms = next <= now ? 0 : (next - now + kMs - 1) / kMs;
  timer_.start(ms, 0, [this] { pump(); });
}

void Session::remote_candidates_done(Timestamp now) {
  if (birthday_ && now < birthday_end_) {
    eoc_held_ = true;
    return;
  }
  agent_->end_of_remote_candidates(now);
}

void Session::maybe_start_birthday(Timestamp now) {
  if (!agent_ || !attempt_open_ || birthday_ || !env_.nat || !env_.bind4.is_set() ||
      !remote_srflx4_.address.is_set()) {
    return;
  }
  const auto mapping = p_.remote_nat.mapping <= uint8_t(ice::NatMapping::kAddressDependent)
                           ? ice::NatMapping(p_.remote_nat.mapping)
                           : ice::NatMapping::kUnknown;
  const auto allocation = p_.remote_nat.allocation <= uint8_t(ice::PortAllocation::kRandom)
                              ? ice::PortAllocation(p_.remote_nat.allocation)
                              : ice::PortAllocation::kUnknown;
  const ice::BirthdayRole role = ice::birthday_role(*env_.nat, mapping, allocation);
  if (role == ice::BirthdayRole::kNone) return;
  if (role == ice::BirthdayRole::kHard) {
    // A winner that still carries the call is kept (a restart while direct works).
    if (birthday_winner_ && remote_srflx4_.address == birthday_peer_ && direct_verified_ &&
        manager_.state() == path::State::kDirect) {
      return;
    }
    stop_birthday(true);
    birthday_peer_ = remote_srflx4_.address;
    for (int k = 0; k < ice::kBirthdayPorts; ++k) {
      auto sock = std::make_unique<UdpSocket>(*env_.loop);
      const size_t index = birthday_sockets_.size();
      const int r = sock->bind(env_.bind4, [this, index](const uint8_t *d, size_t n,
                                                         const SocketAddress &from) {
        on_birthday_datagram(index, d, n, from);
      });
      if (r != kOk) {
        PARLEY_LOG(kLogInfo, "call", "birthday probing: %d sockets, then %s", k,
                   last_error_message());
        break;
      }
      birthday_sockets_.push_back(std::move(sock));
    }
    stats_.birthday_sockets += birthday_sockets_.size();
    birthday_.emplace(role, birthday_peer_, uint32_t(birthday_sockets_.size()),
                      ice::kBirthdayOpenIntervalUs, now, 0);
  } else {
    uint64_t seed = 0;
    randombytes_buf(&seed, sizeof seed);
    birthday_.emplace(role, remote_srflx4_.address, ice::kBirthdayProbes,
                      ice::kBirthdayProbeIntervalUs,
                      now + Timestamp(ice::kBirthdayEasyDelayMs) * kMs, seed);
  }
  stats_.birthday_role = ice::birthday_role_name(role);
  birthday_end_ = now + Timestamp(ice::kBirthdayRoundMs) * kMs;
  budget_end_ = std::max(budget_end_, birthday_end_);
  PARLEY_LOG(kLogInfo, "call", "birthday probing as the %s side toward %s (%s)",
             stats_.birthday_role.c_str(), remote_srflx4_.address.to_string().c_str(),
             role == ice::BirthdayRole::kHard ? "extra sockets opened" : "random ports");
}

void Session::run_birthday(Timestamp now) {
  if (!birthday_ || !agent_) return;
  SocketAddress to;
  uint32_t k = 0;
  uint8_t buf[stun::kMaxMessageLen];
  const uint64_t before = birthday_->sent();
  while (birthday_->poll(now, &to, &k)) {
    size_t n = 0;
    if (!agent_->write_probe(AF_INET, buf, sizeof buf, &n)) {
      birthday_->stop();  // the agent completed (or failed): nothing left to find
      break;
    }
    if (birthday_->role() == ice::BirthdayRole::kHard) {
      if (k < birthday_sockets_.size()) birthday_sockets_[k]->send(to, buf, n);
    } else {
      env_.send(to, buf, n);
    }
  }
  const uint64_t sent = birthday_->sent() - before;
  stats_.birthday_probes += sent;
  stats_.birthday_probes_max_attempt =
      std::max<uint64_t>(stats_.birthday_probes_max_attempt, birthday_->sent());
}

void Session::stop_birthday(bool all) {
  // Safe from inside a socket's own receive callback (UdpSocket outlives it).
  if (birthday_) birthday_->stop();
  birthday_sockets_.clear();
  if (!all || !birthday_winner_) return;
  env_.route(birthday_peer_, nullptr);
  birthday_winner_.reset();
}

void Session::on_birthday_datagram(size_t k, const uint8_t *data, size_t len,
                                   const SocketAddress &from) {
  if (from != birthday_peer_) return;  // only the peer's address was ever written to
  if (!birthday_winner_ && k < birthday_sockets_.size() && birthday_sockets_[k]) {
    // The first socket the peer reached carries the path from now on; the others close.
    birthday_winner_ = std::move(birthday_sockets_[k]);
    env_.route(birthday_peer_, birthday_winner_.get());
    ++stats_.birthday_hits;
    PARLEY_LOG(kLogInfo, "call", "birthday probing: the peer reached our socket %zu of %zu",
               k, birthday_sockets_.size());
    stop_birthday(false);
  }
  env_.deliver(data, len, from);
}

void Session::dial(const SocketAddress &remote) {
  // The peer's fingerprint is pinned: whoever answers there without the peer's key fails the
  // handshake, and the call stays on the relay.
  const identity::Fingerprint peer = p_.peer;
  quic::PeerVerifier verify = [peer](const identity::Fingerprint &fp) { return fp == peer; };
  quic::Connection *c = nullptr;
  const int r = env_.endpoint->connect(
      remote, verify,
      [self = alive_](quic::Connection &conn, const quic::Event &ev) {
        if (Session *s = *self) s->on_direct_event(conn, ev);
      },
      monotonic_now(), &c);
  if (r != kOk) {
    end_attempt(r, "cannot dial the peer's valid pair");
    return;
  }
  PARLEY_LOG(kLogDebug, "call", "dialing %s", remote.to_string().c_str());
  next_ = c;
  env_.driver->kick();
}

void Session::on_agent_event(const ice::AgentEvent &e) {
  switch (e.type) {
    case ice::AgentEventType::kPairValid:
      if (!is_valid_remote(e.pair.remote)) valid_pairs_.push_back(e.pair);
      // The handshake starts on the first valid pair, in parallel with nomination (which
      // waits up to nomination_wait_ms for better pairs, then takes a round trip): the pair
      // already carried a check both ways, and the first valid pair is nearly always the
      // one nominated. A different nominated pair still works: both are the peer's.
      if (agent_->controlling() && !next_ && attempt_open_) dial(e.pair.remote);
      break;
    case ice::AgentEventType::kSelected: {
      selected_remote_ = e.pair.remote;
      stats_.local_candidate = describe(e.pair.local_type, e.pair.local);
      stats_.remote_candidate = describe(e.pair.remote_type, e.pair.remote);
      PARLEY_LOG(kLogInfo, "call", "ICE selected %s -> %s (%s)", stats_.local_candidate.c_str(),
                 stats_.remote_candidate.c_str(), agent_->controlling() ? "dialing" : "accepting");
      if (agent_->controlling() && !next_ && attempt_open_) dial(e.pair.remote);
      break;
    }
    case ice::AgentEventType::kFailed:
      end_attempt(kErrIceFailed, "every candidate pair failed");
      break;
    case ice::AgentEventType::kConsentLost:
      // QUIC may have moved the connection to a new address (NAT rebinding) that the ICE
      // pair does not know: the pinned peer's ACKs on it are consent enough (RFC 7675's aim).
      if (direct_ && direct_verified_ && manager_.state() != path::State::kFallback) {
        PARLEY_LOG(kLogInfo, "call",
                   "STUN consent on the selected pair expired; the direct QUIC connection "
                   "still hears the peer, so it stays");
        break;
      }
      give_up_direct(kErrTimeout, "consent to send on the selected pair expired");
      break;
    default:
      break;
  }
}

bool Session::is_valid_remote(const SocketAddress &remote) const {
  return std::any_of(valid_pairs_.begin(), valid_pairs_.end(),
                     [&](const ice::PairInfo &p) { return p.remote == remote; });
}

bool Session::wants_connection(const SocketAddress &remote) const {
  if (!agent_ || agent_->controlling() || next_ || !attempt_open_) return false;
  // Any address of the peer's the agent knows (signaled, or learned from an authenticated
  // check), not only the nominated one: the caller dials its first valid pair, before
  // nomination, and its Initial can overtake nomination's effect here by a round trip.
  // Refusing it would cost a QUIC retransmission timeout (~1 s). Whoever connects must still
  // prove the peer's key.
  if (remote == selected_remote_) return true;
  return agent_->knows_remote(remote) ||
         is_valid_remote(remote);
}

quic::Endpoint::Incoming Session::accept_direct(const SocketAddress &remote) {
  quic::Endpoint::Incoming in;
  if (!wants_connection(remote)) return in;
  const identity::Fingerprint peer = p_.peer;
  in.verify = [peer](const identity::Fingerprint &fp) { return fp == peer; };
  in.handler = [self = alive_](quic::Connection &conn, const quic::Event &ev) {
    Session *s = *self;
    if (!s) return;
    if (!s->next_ && &conn != s->direct_) s->next_ = &conn;
    s->on_direct_event(conn, ev);
  };
  return in;
}

void Session::on_direct_event(quic::Connection &c, const quic::Event &e) {
  const Timestamp now = monotonic_now();
  if (&c == next_) {
    if (e.type == quic::EventType::kConnected) {
      // The handshake verified the pinned fingerprint: this really is the peer.
      promote(c, now);
    } else if (e.type == quic::EventType::kClosed) {
      const int err = e.close ? e.close->error : kOk;
      next_ = nullptr;
      if (agent_ && agent_->controlling()) {
        // Pinning refused whoever answered at the selected address, or the handshake never
        // completed: this attempt is over.
        end_attempt(err == kOk ? kErrIceFailed : err, "the direct handshake failed");
      } else {
        // An incoming handshake that failed (someone else's key) leaves the attempt open:
        // the peer's own connection may still come.
        PARLEY_LOG(kLogInfo, "call", "refused a direct connection: %s", error_description(err));
        if (err != kOk) stats_.direct_error = err;
      }
    }
    pump();
    return;
  }
  if (&c != direct_) return;
  switch (e.type) {
    case quic::EventType::kDatagram:
      on_direct_frame(e.data, e.len);
      break;
    case quic::EventType::kClosed: {
      const int err = e.close ? e.close->error : kOk;
      PARLEY_LOG(kLogInfo, "call", "direct connection closed (%s)", error_description(err));
      direct_ = nullptr;
      direct_verified_ = false;
      if (manager_.state() != path::State::kFallback) ++stats_.direct_lost;
      manager_.direct_down(now);
      // A verified direct path that died: reported as such, and tried again.
      if (!attempt_open_) {
        stats_.direct_error = err == kOk ? kErrClosed : err;
        retry_.on_failure(now, stats_.direct_error);
        stats_.next_retry_ms = retry_.next_delay_ms();
      }
      break;
    }
    default:
      break;
  }
  pump();
}

void Session::poll_direct(Timestamp now) {
  if (!direct_ || !direct_verified_) return;
  const quic::PathStats ps = direct_->stats();
  // QUIC follows the peer to a new address (NAT rebinding, the peer's network change): the
  // stats name the address media goes to now.
  if (direct_->remote() != direct_remote_) {
    if (direct_remote_.is_set()) {
      stats_.remote_candidate = "migrated " + direct_->remote().to_string();
    }
    direct_remote_ = direct_->remote();
  }
  // Any packet from the peer (ACKs included) proves the direct path still carries traffic.
  if (ps.packets_received != direct_rx_packets_) {
    direct_rx_packets_ = ps.packets_received;
    manager_.on_direct_rx(now);
  }
  manager_.set_direct_rtt(ps.smoothed_rtt);
}

void Session::drain_manager() {
  path::PathEvent pe;
  while (manager_.poll_event(&pe)) {
    if (pe.type != path::EventType::kActiveChanged) continue;
    if (pe.new_path == PathKind::kDirect && stats_.time_to_direct_ms < 0) {
      stats_.time_to_direct_ms = int64_t((pe.at - active_at_) / kMs);
    }
    ++stats_.path_changes;
    stats_.path = pe.new_path;
    PARLEY_LOG(kLogInfo, "call", "media path %s -> %s (%s)", path_kind_name(pe.old_path),
               path_kind_name(pe.new_path), path::reason_name(pe.reason));
    if (env_.on_path) env_.on_path(pe.old_path, pe.new_path, path::reason_name(pe.reason));
  }
  // Media fell back from a direct path that went silent: its connection may linger until the
  // QUIC idle timeout, but a new generation is tried after the usual delay, not after that.
  if (manager_.state() == path::State::kFallback && !attempt_open_ && retry_.due() == 0 &&
      env_.direct.enabled) {
    const Timestamp now = monotonic_now();
    ++stats_.direct_lost;
    retry_.on_failure(now, kErrTimeout);
    stats_.next_retry_ms = retry_.next_delay_ms();
  }
  path::PathMessage pm;
  while (manager_.poll_message(&pm)) {
    signal::Message m;
    m.type = pm.type == path::MessageType::kPropose ? signal::Type::kPathSwitchPropose
                                                    : signal::Type::kPathSwitchAck;
    m.call_id = p_.id;
    m.sequence = pm.sequence;
    m.path = signal::PathKind(pm.path);  // same numbering
    env_.relay->send(m);
  }
}

int Session::send(uint8_t flags, uint32_t timestamp, uint8_t profile, const uint8_t *payload,
                  size_t len) {
  media::FrameHeader h;
  h.flags = flags;
  h.profile = profile;
  h.stream_id = p_.stream;
  h.timestamp = timestamp;
  size_t n = 0;
  uint64_t index = 0;
  int r = sealer_.seal(h, payload, len, frame_, sizeof frame_, &n, &index);
  if (r != kOk) return r;
  ++stats_.frames_sent;
  const Timestamp now = monotonic_now();
  poll_direct(now);
  const unsigned paths = manager_.send_paths(now);
  int result = kErrNotRegistered;
  if ((paths & path::kSendDirect) && direct_ && direct_verified_) {
    r = direct_->send_datagram(frame_, n);
    if (r == kOk) {
      ++stats_.sent_direct;
      manager_.on_direct_tx(now);
      env_.driver->kick();
      result = kOk;
    } else {
      ++stats_.send_failed;
      result = r;
    }
  }
  if (paths & path::kSendRelay) {
    r = env_.relay->send_datagram(frame_, n);
    if (r == kOk) {
      ++stats_.sent_relay;
      result = kOk;
    } else {
      ++stats_.send_failed;
      if (result != kOk) result = r;
    }
  }
  drain_manager();
  return result;
}

void Session::on_relay_frame(const uint8_t *data, size_t len) {
  deliver(data, len, PathKind::kRelay);
}

void Session::on_direct_frame(const uint8_t *data, size_t len) {
  const Timestamp now = monotonic_now();
  manager_.on_direct_rx(now);
  deliver(data, len, PathKind::kDirect);
}

void Session::deliver(const uint8_t *data, size_t len, PathKind via) {
  media::FrameHeader h;
  uint64_t index = 0;
  size_t n = 0;
  const int r = opener_.open(data, len, &h, &index, plain_, sizeof plain_, &n);
  if (r == kErrMediaReplay) {
    ++stats_.duplicates;
    // The relay's copy came first (a direct path slower than the relay, at least this way):
    // the direct one still shows that our peer's direct frames reach us (the connection is
    // the pinned peer's), which is what confirms the peer's switch.
    if (via == PathKind::kDirect) {
      manager_.on_direct_media(monotonic_now());
      drain_manager();
    }
    return;
  }
  if (r != kOk) {
    ++stats_.auth_failed;
    return;
  }
  if (h.stream_id != p_.stream) {  // authentic, but for another stream: a relay mix-up
    ++stats_.auth_failed;
    return;
  }
  if (via == PathKind::kDirect) {
    ++stats_.received_direct;
    manager_.on_direct_media(monotonic_now());
  } else {
    ++stats_.received_relay;
  }
  ++stats_.received;
  if (stats_.received == 1) first_index_ = index;
  if (env_.on_media) env_.on_media(h, index, plain_, n, via);
  drain_manager();
}

bool Session::on_stun(const uint8_t *data, size_t len, const SocketAddress &from) {
  if (!agent_) return false;
  if (!agent_->handle_datagram(data, len, from, monotonic_now())) return false;
  pump();
  return true;
}

void Session::add_remote_candidate(const ice::Candidate &c, Timestamp now) {
  agent_->add_remote_candidate(c, now);
  if (c.type == ice::CandidateType::kServerReflexive && c.address.is_v4() &&
      (!remote_srflx4_.address.is_set() || c.priority > remote_srflx4_.priority)) {
    remote_srflx4_ = c;
  }
  if (!p_.nat64.is_set() || !c.address.is_v4()) return;
  ice::Candidate s = c;
  s.related = SocketAddress();
  if (nat64_synthesize(p_.nat64, c.address, &s.address) == kOk) {
    agent_->add_remote_candidate(s, now);
  }
}

void Session::on_signal(const signal::Message &m) {
  const Timestamp now = monotonic_now();
  switch (m.type) {
    case signal::Type::kIceRestart:
      on_ice_restart(m, now);
      break;
    case signal::Type::kCandidate:
      if (m.nat) p_.remote_nat = *m.nat;
      if (agent_) {
        for (const auto &c : m.candidates) add_remote_candidate(c, now);
        maybe_start_birthday(now);
        pump();
      }
      break;
    case signal::Type::kEndOfCandidates:
      if (agent_) {
        remote_candidates_done(now);
        pump();
      }
      break;
    case signal::Type::kPathSwitchPropose:
    case signal::Type::kPathSwitchAck: {
      path::PathMessage pm;
      pm.type = m.type == signal::Type::kPathSwitchPropose ? path::MessageType::kPropose
                                                           : path::MessageType::kAck;
      pm.path = path::Path(*m.path);  // the codec admits only 0 and 1
      pm.sequence = *m.sequence;
      manager_.on_peer_message(pm, now);
      drain_manager();
      pump();
      break;
    }
    default:
      break;
  }
}

namespace {
uint64_t checks_of(const ice::Agent &a) {
  const ice::AgentStats st = a.stats();
  return st.checks_sent + st.retransmissions;
}
}  // namespace

void Session::retire_agent() {
  if (!agent_) return;
  const uint64_t n = checks_of(*agent_);
  checks_before_ += n;
  checks_max_ = std::max(checks_max_, n);
}

quic::PathStats Session::path_stats() const {
  if (direct_ && direct_verified_ && stats_.path == PathKind::kDirect) return direct_->stats();
  return env_.relay->path_stats();
}

CallStats Session::stats() const {
  CallStats s = stats_;
  s.ice_generation = restart_.generation();
  const uint64_t current = agent_ ? checks_of(*agent_) : 0;
  s.ice_checks_sent = checks_before_ + current;
  s.ice_checks_max_attempt = std::max(checks_max_, current);
  if (direct_ && direct_verified_ && s.path == PathKind::kDirect) {
    s.rtt_ms = direct_->stats().smoothed_rtt / kMs;
  } else {
    s.rtt_ms = env_.relay->path_stats().smoothed_rtt / kMs;
  }
  if (s.received > 0) {
    const uint64_t span = opener_.highest_index() - first_index_ + 1;
    s.lost = span > s.received ? span - s.received : 0;
  }
  return s;
}

}  // namespace parley::call

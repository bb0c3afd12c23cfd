#include "call/relay_client.h"

#include <sodium.h>

#include <algorithm>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "identity/secret.h"

namespace parley::call {

const char *relay_state_name(RelayState s) {
  switch (s) {
    case RelayState::kIdle: return "idle";
    case RelayState::kConnecting: return "connecting";
    case RelayState::kRegistered: return "registered";
    case RelayState::kBackoff: return "backoff";
    case RelayState::kReplaced: return "replaced";
    case RelayState::kUntrusted: return "untrusted";
  }
  return "?";
}

RelayClient::RelayClient(Loop &loop, quic::Endpoint &endpoint, quic::EndpointDriver &driver,
                         const identity::Fingerprint &self, RelayClientConfig config,
                         Listener listener)
    : loop_(loop),
      endpoint_(endpoint),
      driver_(driver),
      self_(self),
      config_(std::move(config)),
      listener_(std::move(listener)),
      pinned_(config_.relay_fingerprint),
      backoff_(config_.backoff_initial_ms, config_.backoff_max_ms),
      resolver_(loop),
      retry_timer_(loop),
      attempt_timer_(loop),
      change_timer_(loop),
      flush_timer_(loop) {}

RelayClient::~RelayClient() {
  stopped_ = true;
  abandon_attempts("client gone");
  if (conn_) {
    conn_->set_handler(nullptr);
    conn_->close(0, "client gone");
  }
}

void RelayClient::start() {
  if (!stopped_) return;
  stopped_ = false;
  connect();
}

void RelayClient::stop() {
  stopped_ = true;
  retry_timer_.stop();
  resolver_.cancel();
  abandon_attempts("client stopped");
  if (conn_) {
    conn_->close(0, "client stopped");
    driver_.kick();
  }
  set_state(RelayState::kIdle, kOk);
}

void RelayClient::stop_after_flush(uint32_t linger_ms, std::function<void()> done) {
  if (!conn_ || state_ != RelayState::kRegistered || conn_->queued_bytes() == 0) {
    stop();
    done();
    return;
  }
  // The acknowledgements arrive on the loop; checked every few milliseconds, bounded.
  constexpr uint32_t kCheckMs = 5;
  const Timestamp give_up = monotonic_now() + Timestamp(linger_ms) * kNanosPerMilli;
  flush_timer_.start(kCheckMs, kCheckMs, [this, give_up, done = std::move(done)] {
    if (conn_ && conn_->queued_bytes() > 0 && monotonic_now() < give_up) return;
    if (conn_ && conn_->queued_bytes() > 0) {
      PARLEY_LOG(kLogInfo, "call", "closing the relay connection with %llu signaling bytes "
                 "unacknowledged", static_cast<unsigned long long>(conn_->queued_bytes()));
    }
    auto finish = done;  // the timer's function is not ours to outlive
    flush_timer_.stop();
    stop();
    finish();
  });
}

void RelayClient::network_changed(bool path_gone) {
  if (stopped_ || sink_) return;
  if (state_ == RelayState::kBackoff || state_ == RelayState::kConnecting || path_gone) {
    // Waiting, or dialing from a network that is gone: start over on the new one now.
    start_over("the network changed");
    return;
  }
  if (state_ != RelayState::kRegistered || !conn_) return;
  signal::Message reg;
  reg.type = signal::Type::kRegister;
  reg.software = config_.software;
  if (signal::encode(reg, &scratch_) == kOk) {
    conn_->send_message(stream_, scratch_.data(), scratch_.size());
    driver_.kick();
  }
  refreshing_ = true;
  change_timer_.start(config_.change_check_ms, 0, [this] {
    if (!refreshing_ || !conn_ || stopped_) return;
    PARLEY_LOG(kLogInfo, "call",
               "the relay did not answer on the new network within %u ms: reconnecting",
               config_.change_check_ms);
    start_over("no answer on the new network");
  });
}

void RelayClient::start_over(const char *why) {
  abandon_attempts(why);
  if (conn_) {
    conn_->set_handler(nullptr);
    conn_->close(0, why);
    conn_ = nullptr;
    stream_ = -1;
  }
  resolver_.cancel();
  retry_timer_.stop();
  change_timer_.stop();
  refreshing_ = false;
  backoff_.reset();
  connect();
}

void RelayClient::trust(const identity::Fingerprint &fp) {
  pinned_ = fp;
  retry_timer_.stop();
  backoff_.reset();
  abandon_attempts("relay trusted: reconnecting");
  if (conn_) {
    conn_->set_handler(nullptr);
    conn_->close(0, "relay trusted: reconnecting");
    conn_ = nullptr;
    stream_ = -1;
  }
  stopped_ = false;
  connect();
}

void RelayClient::set_state(RelayState s, int error) {
  if (s == state_) return;
  state_ = s;
  if (listener_.on_state) listener_.on_state(s, error);
}

void RelayClient::connect() {
  set_state(RelayState::kConnecting, kOk);
  if (config_.relay_name.empty()) {
    resolved_ = {config_.relay};
    race(resolved_);
    return;
  }
  // Resolved again on every connect: a relay that moved (a new address behind its name) is
  // found by the next reconnect.
  std::string host;
  uint16_t port = 0;
  int r = split_host_port(config_.relay_name, &host, &port);
  if (r == kOk) {
    r = resolver_.resolve(host, port, [this](int error, const std::vector<SocketAddress> &all) {
      if (stopped_) return;
      if (error != kOk) {
        PARLEY_LOG(kLogWarn, "call", "relay %s: %s", config_.relay_name.c_str(),
                   last_error_message());
        schedule_reconnect(error);
        return;
      }
      resolved_ = all;
      race(all);
    });
  }
  if (r != kOk) schedule_reconnect(r);
}

void RelayClient::race(const std::vector<SocketAddress> &addresses) {
  // RFC 8305 4: IPv6 first, then the families alternating, so one dead family costs the other
  // a single attempt delay. An IPv4 address is also tried through a known NAT64 prefix (an
  // IPv6-only network), after the address itself.
  std::vector<SocketAddress> v6, v4;
  for (const auto &a : addresses) {
    if (a.is_v6() && config_.ipv6) v6.push_back(a);
    if (a.is_v4() && config_.ipv4) v4.push_back(a);
    if (a.is_v4() && config_.ipv6 && nat64_.is_set()) {
      SocketAddress s;
      if (nat64_synthesize(nat64_, a, &s) == kOk) v6.push_back(s);
    }
  }
  order_.clear();
  for (size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
    if (i < v6.size()) order_.push_back(v6[i]);
    if (i < v4.size()) order_.push_back(v4[i]);
  }
  next_ = 0;
  failures_.clear();
  last_failure_ = kOk;
  if (order_.empty()) {
    const char *have = config_.ipv4 && config_.ipv6 ? "IPv4 or IPv6"
                       : config_.ipv6               ? "IPv6"
                                                    : "IPv4";
    fail(kErrNoUsableAddress, "relay %s has no %s address (the context's sockets are %s)",
         config_.relay_name.empty() ? config_.relay.to_string().c_str()
                                    : config_.relay_name.c_str(),
         have, have);
    PARLEY_LOG(kLogWarn, "call", "%s", last_error_message());
    schedule_reconnect(kErrNoUsableAddress);
    return;
  }
  if (!pinned_) {
    PARLEY_LOG(kLogWarn, "call",
               "no relay fingerprint configured: learning the relay's identity without "
               "registering; nothing is sent until the host trusts it");
  }
  dial_next();
}

bool RelayClient::dial_next() {
  // Unpinned, the verifier refuses whatever the relay presents: in TLS 1.3 the client checks
  // the server's certificate before it sends its own, so the relay learns nothing of ours.
  auto verify = [this](const identity::Fingerprint &fp) {
    if (pinned_) return fp == *pinned_;
    presented_ = fp;
    return false;
  };
  while (next_ < order_.size()) {
    const SocketAddress to = order_[next_++];
    quic::Connection *c = nullptr;
    const int r = endpoint_.connect(to, verify,
                                    [this](quic::Connection &cn, const quic::Event &e) {
                                      on_event(cn, e);
                                    },
                                    monotonic_now(), &c);
    if (r != kOk) {
      failures_ += (failures_.empty() ? "" : ", ") + to.to_string() + " (" +
                   error_description(r) + ")";
      last_failure_ = r;
      continue;
    }
    attempts_.push_back({c, to});
    if (next_ < order_.size()) {
      attempt_timer_.start(config_.attempt_delay_ms, 0, [this] { dial_next(); });
    }
    driver_.kick();
    return true;
  }
  return false;
}

void RelayClient::abandon_attempts(const char *why) {
  attempt_timer_.stop();
  for (Attempt &a : attempts_) {
    a.conn->set_handler(nullptr);
    a.conn->close(0, why);
  }
  attempts_.clear();
}

void RelayClient::on_attempt_closed(quic::Connection &c, const quic::CloseInfo &close) {
  for (size_t i = 0; i < attempts_.size(); ++i) {
    if (attempts_[i].conn != &c) continue;
    const int err = close.error != kOk ? close.error : kErrClosed;
    failures_ += (failures_.empty() ? "" : ", ") + attempts_[i].to.to_string() + " (" +
                 error_description(err) + ")";
    last_failure_ = err;
    current_ = attempts_[i].to;
    attempts_.erase(attempts_.begin() + long(i));
    break;
  }
  if (!pinned_ && presented_) {
    PARLEY_LOG(kLogWarn, "call",
               "the relay at %s presents identity %s, which nobody pinned: waiting for "
               "the host to trust it",
               current_.to_string().c_str(), presented_->hex().c_str());
    abandon_attempts("relay not trusted yet");
    retry_timer_.stop();
    set_state(RelayState::kUntrusted, kOk);
    return;
  }
  if (close.error == kErrPeerIdentity) {
    PARLEY_LOG(kLogError, "call", "relay identity check failed: %s", close.reason.c_str());
  }
  if (stopped_) return;
  // RFC 8305 5: a failed attempt starts the next one at once.
  attempt_timer_.stop();
  if (!attempts_.empty() || dial_next()) return;
  // A literal keeps its connection's error; a name says what each of its addresses did.
  int error = last_failure_;
  if (!config_.relay_name.empty()) {
    error = fail(kErrAllAddressesFailed, "relay %s: every address failed: %s",
                 config_.relay_name.c_str(), failures_.c_str());
    PARLEY_LOG(kLogWarn, "call", "%s", last_error_message());
  }
  schedule_reconnect(error);
}

void RelayClient::schedule_reconnect(int error) {
  if (stopped_) return;
  const uint32_t delay = backoff_.next(randombytes_random());
  PARLEY_LOG(kLogInfo, "call", "relay connection lost (%s); reconnecting in %u ms",
             error_description(error), delay);
  set_state(RelayState::kBackoff, error);
  retry_timer_.start(delay, 0, [this] {
    if (!stopped_) connect();
  });
}

void RelayClient::on_event(quic::Connection &c, const quic::Event &e) {
  if (&c != conn_) {
    // An attempt of the race: the first to connect becomes the relay connection.
    if (e.type == quic::EventType::kClosed) {
      on_attempt_closed(c, *e.close);
      return;
    }
    if (e.type != quic::EventType::kConnected) return;
    for (const Attempt &a : attempts_) {
      if (a.conn == &c) current_ = a.to;
    }
    attempts_.erase(std::remove_if(attempts_.begin(), attempts_.end(),
                                   [&](const Attempt &a) { return a.conn == &c; }),
                    attempts_.end());
    abandon_attempts("another address of the relay answered first");
    conn_ = &c;
  }
  switch (e.type) {
    case quic::EventType::kConnected: {
      if (c.open_stream(&stream_) != kOk) {
        c.close(0, "cannot open a stream");
        return;
      }
      signal::Message reg;
      reg.type = signal::Type::kRegister;
      reg.software = config_.software;
      if (signal::encode(reg, &scratch_) == kOk) {
        c.send_message(stream_, scratch_.data(), scratch_.size());
      }
      break;
    }
    case quic::EventType::kMessage: {
      signal::Message m;
      if (signal::decode(e.data, e.len, &m) != kOk) {
        PARLEY_LOG(kLogWarn, "call", "undecodable message from the relay: %s",
                   last_error_message());
        return;
      }
      if (m.type == signal::Type::kRegisterAck) {
        observed_ = m.observed_address;
        if (refreshing_ && state_ == RelayState::kRegistered) {
          // The connection works on the new network: nothing else to do.
          refreshing_ = false;
          change_timer_.stop();
          ++refreshes_;
          return;
        }
        ++registrations_;
        backoff_.reset();
        set_state(RelayState::kRegistered, kOk);
        return;
      }
      if (listener_.on_message) listener_.on_message(m);
      identity::wipe(&m.ice_pwd);  // the call keeps its copy in wiped memory
      break;
    }
    case quic::EventType::kDatagram:
      if (listener_.on_datagram) listener_.on_datagram(e.data, e.len);
      break;
    case quic::EventType::kClosed: {
      conn_ = nullptr;
      stream_ = -1;
      refreshing_ = false;
      change_timer_.stop();
      const int err = e.close->error != kOk ? e.close->error : kErrClosed;
      if (e.close->by_peer && e.close->error == kOk && e.close->app_code == signal::kCloseReplaced) {
        PARLEY_LOG(kLogWarn, "call",
                   "the relay registered this identity from another connection; not "
                   "reconnecting");
        stopped_ = true;
        set_state(RelayState::kReplaced, kErrClosed);
      } else if (stopped_) {
        set_state(RelayState::kIdle, err);
      } else {
        schedule_reconnect(err);
      }
      break;
    }
  }
}

void RelayClient::attach_test_sink(TestSink sink) {
  stop();
  sink_ = std::move(sink);
  set_state(RelayState::kRegistered, kOk);
}

int RelayClient::send(const signal::Message &m) {
  if (sink_) return sink_(&m, nullptr, 0);
  if (state_ != RelayState::kRegistered || !conn_) {
    return fail(kErrNotRegistered, "not registered with the relay (state %s)",
                relay_state_name(state_));
  }
  int r = signal::encode(m, &scratch_);
  if (r != kOk) return r;
  r = conn_->send_message(stream_, scratch_.data(), scratch_.size());
  // The encoding may hold an ICE password; the connection has its own copy now.
  if (!m.ice_pwd.empty()) identity::wipe_memory(scratch_.data(), scratch_.size());
  if (r == kOk) driver_.kick();
  return r;
}

int RelayClient::send_datagram(const uint8_t *data, size_t len) {
  if (sink_) return sink_(nullptr, data, len);
  if (state_ != RelayState::kRegistered || !conn_) {
    return fail(kErrNotRegistered, "not registered with the relay (state %s)",
                relay_state_name(state_));
  }
  const int r = conn_->send_datagram(data, len);
  if (r == kOk) driver_.kick();
  return r;
}

}  // namespace parley::call

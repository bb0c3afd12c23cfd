#include "call/relay_client.h"

#include <sodium.h>

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
      retry_timer_(loop) {}

RelayClient::~RelayClient() {
  stopped_ = true;
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
  if (conn_) {
    conn_->close(0, "client stopped");
    driver_.kick();
  }
  set_state(RelayState::kIdle, kOk);
}

void RelayClient::trust(const identity::Fingerprint &fp) {
  pinned_ = fp;
  retry_timer_.stop();
  backoff_.reset();
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
    current_ = config_.relay;
    dial();
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
      if (error == kOk) {
        error = kErrNoUsableAddress;
        for (const auto &a : all) {
          if (a.family() == config_.family) {
            current_ = a;
            error = kOk;
            break;
          }
        }
        if (error != kOk) {
          fail(kErrNoUsableAddress, "'%s' has no IPv%c address (the context's socket is IPv%c)",
               config_.relay_name.c_str(), config_.family == AF_INET6 ? '6' : '4',
               config_.family == AF_INET6 ? '6' : '4');
        }
      }
      if (error != kOk) {
        PARLEY_LOG(kLogWarn, "call", "relay %s: %s", config_.relay_name.c_str(),
                   last_error_message());
        schedule_reconnect(error);
        return;
      }
      dial();
    });
  }
  if (r != kOk) schedule_reconnect(r);
}

void RelayClient::dial() {
  // Unpinned, the verifier refuses whatever the relay presents: in TLS 1.3 the client checks
  // the server's certificate before it sends its own, so the relay learns nothing of ours.
  auto verify = [this](const identity::Fingerprint &fp) {
    if (pinned_) return fp == *pinned_;
    presented_ = fp;
    return false;
  };
  if (!pinned_) {
    PARLEY_LOG(kLogWarn, "call",
               "no relay fingerprint configured: learning the relay's identity without "
               "registering; nothing is sent until the host trusts it");
  }
  quic::Connection *c = nullptr;
  const int r = endpoint_.connect(current_, verify,
                                  [this](quic::Connection &cn, const quic::Event &e) {
                                    on_event(cn, e);
                                  },
                                  monotonic_now(), &c);
  if (r != kOk) {
    schedule_reconnect(r);
    return;
  }
  conn_ = c;
  driver_.kick();
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
      const int err = e.close->error != kOk ? e.close->error : kErrClosed;
      if (!pinned_ && presented_) {
        PARLEY_LOG(kLogWarn, "call",
                   "the relay at %s presents identity %s, which nobody pinned: waiting for "
                   "the host to trust it",
                   current_.to_string().c_str(), presented_->hex().c_str());
        retry_timer_.stop();
        set_state(RelayState::kUntrusted, kOk);
        return;
      }
      if (e.close->error == kErrPeerIdentity) {
        PARLEY_LOG(kLogError, "call", "relay identity check failed: %s",
                   e.close->reason.c_str());
      }
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

#include "path/manager.h"

#include "base/error.h"
#include "signal/message.h"

namespace parley::path {

// The manager's numbers are the wire's, so the call layer's conversion can never drift.
static_assert(uint8_t(Path::kRelay) == uint8_t(signal::PathKind::kRelay), "path numbering");
static_assert(uint8_t(Path::kDirect) == uint8_t(signal::PathKind::kDirect), "path numbering");
static_assert(uint8_t(MessageType::kPropose) == uint8_t(signal::Type::kPathSwitchPropose),
              "message numbering");
static_assert(uint8_t(MessageType::kAck) == uint8_t(signal::Type::kPathSwitchAck),
              "message numbering");

namespace {

constexpr Timestamp ms(uint64_t v) { return Timestamp(v) * kNanosPerMilli; }

// Doubling stops long before the shift could overflow; recover_max_ms caps the result anyway.
constexpr uint32_t kMaxBackoffShift = 16;

}  // namespace

const char *reason_name(Reason r) {
  switch (r) {
    case Reason::kDirectVerified: return "direct-verified";
    case Reason::kDirectLost: return "direct-lost";
    case Reason::kDirectClosed: return "direct-closed";
    case Reason::kPeerFallback: return "peer-fallback";
    case Reason::kDirectRecovered: return "direct-recovered";
    case Reason::kConfirmTimeout: return "confirm-timeout";
  }
  return "unknown";
}

const char *state_name(State s) {
  switch (s) {
    case State::kRelay: return "relay";
    case State::kSwitching: return "switching";
    case State::kDirect: return "direct";
    case State::kFallback: return "fallback";
  }
  return "unknown";
}

Manager::Manager(const Config &config) : cfg_(config) {
  if (cfg_.rtt_multiplier == 0) cfg_.rtt_multiplier = 1;
  if (cfg_.dead_min_ms == 0) cfg_.dead_min_ms = 1;
  if (cfg_.dead_max_ms < cfg_.dead_min_ms) cfg_.dead_max_ms = cfg_.dead_min_ms;
  if (cfg_.recover_max_ms < cfg_.recover_after_ms) cfg_.recover_max_ms = cfg_.recover_after_ms;
}

Timestamp Manager::dead_after() const {
  // No sample yet: the longest allowed silence rather than a guess that could be too short.
  if (srtt_ns_ == 0) return ms(cfg_.dead_max_ms);
  // Saturating: an absurd srtt from a broken stats source must not wrap to a tiny deadline.
  const uint64_t cap = ms(cfg_.dead_max_ms);
  uint64_t d = srtt_ns_ > cap ? cap : srtt_ns_ * cfg_.rtt_multiplier;
  d += ms(cfg_.dead_margin_ms);
  if (d < ms(cfg_.dead_min_ms)) d = ms(cfg_.dead_min_ms);
  if (d > cap) d = cap;
  return d;
}

Timestamp Manager::recover_after() const {
  const uint32_t shift = failures_ <= 1 ? 0 : failures_ - 1;
  uint64_t d = ms(cfg_.recover_after_ms) << (shift < kMaxBackoffShift ? shift : kMaxBackoffShift);
  if (d > ms(cfg_.recover_max_ms)) d = ms(cfg_.recover_max_ms);
  return d;
}

// --- facts ---

void Manager::direct_up(Timestamp now) {
  if (direct_up_) return;
  direct_up_ = true;
  // The handshake that just completed was itself traffic from the peer.
  rx_seen_ = true;
  last_rx_ = now;
  tx_outstanding_ = false;
  dead_ = false;
  healthy_ = true;
  healthy_since_ = now;
  start_attempt(now, Reason::kDirectVerified);
  step(now);
}

void Manager::direct_down(Timestamp now) {
  if (!direct_up_) return;
  direct_up_ = false;
  rx_seen_ = tx_outstanding_ = dead_ = healthy_ = false;
  // Frames seen on the old connection say nothing about a future one.
  media_seen_ = false;
  if (state_ == State::kDirect) {
    ++stats_.fallbacks;
    push_event(Path::kDirect, Path::kRelay, Reason::kDirectClosed, now);
  } else if (state_ == State::kSwitching) {
    ++stats_.aborted_attempts;
    stats_.last_abort_reason = Reason::kDirectClosed;
  }
  // The peer may not see the close yet (an idle timeout, a consent loss here): whatever it
  // sends us on direct from now on is lost, so ask it to fall back. Not from kFallback:
  // that transition already told it.
  if (state_ == State::kDirect || state_ == State::kSwitching) {
    push_message(MessageType::kPropose, Path::kRelay, attempt_);
  }
  set_state(State::kRelay, now);
}

void Manager::note_rx(Timestamp now) {
  rx_seen_ = true;
  last_rx_ = now;
  tx_outstanding_ = false;
  if (dead_) {
    dead_ = false;
    healthy_ = true;
    healthy_since_ = now;
  }
}

void Manager::on_direct_rx(Timestamp now) {
  if (!direct_up_) return;
  note_rx(now);
  step(now);
}

void Manager::on_direct_tx(Timestamp now) {
  if (!direct_up_) return;
  // Only the first unanswered send counts: the question is how long the oldest one has gone
  // unanswered, not the newest.
  if (!tx_outstanding_) {
    tx_outstanding_ = true;
    first_tx_ = now;
  }
  step(now);
}

void Manager::on_direct_media(Timestamp now) {
  // Recorded even before our own direct_up: the peer's frames reaching us is what its
  // proposal asks about, whatever our side's connection state says.
  media_seen_ = true;
  last_media_ = now;
  if (direct_up_) note_rx(now);
  maybe_ack(now);
  step(now);
}

void Manager::set_direct_rtt(uint64_t smoothed_rtt_ns) { srtt_ns_ = smoothed_rtt_ns; }

int Manager::on_peer_message(const PathMessage &msg, Timestamp now) {
  if ((msg.type != MessageType::kPropose && msg.type != MessageType::kAck) ||
      (msg.path != Path::kRelay && msg.path != Path::kDirect) || msg.sequence == 0 ||
      msg.sequence > (UINT64_MAX >> 1)) {
    return kErrInvalidArgument;
  }
  if (msg.type == MessageType::kAck) {
    // Only an ack of our current proposal means anything: an older one is about a direct
    // path that has since died or closed, and one for a sequence we never proposed cannot be
    // honest (remembering it would pre-approve a future attempt without proof).
    if (msg.path != Path::kDirect || msg.sequence != attempt_ || acked_) {
      ++stats_.messages_ignored;
    } else {
      // Kept even if we are not (or no longer) in kSwitching for it; it only ever completes
      // the attempt it names.
      acked_ = true;
    }
    step(now);
    return kOk;
  }

  // A proposal. The peer sends Propose(direct, s) and later maybe Propose(relay, s) for the
  // same attempt s, then Propose(direct, s+1)...; anything not newer than the newest seen is
  // a duplicate or was overtaken.
  const uint64_t key = msg.sequence * 2 + (msg.path == Path::kRelay ? 1 : 0);
  if (key <= peer_key_) {
    ++stats_.messages_ignored;
    step(now);
    return kOk;
  }
  peer_key_ = key;
  if (msg.path == Path::kDirect) {
    peer_proposal_ = msg.sequence;
    maybe_ack(now);
  } else {
    // The peer gave up on direct: an ack it never asked for would be stale on arrival.
    peer_proposal_ = 0;
    if (state_ == State::kDirect || state_ == State::kSwitching) {
      fall_back(now, Reason::kPeerFallback, false);
    } else if (state_ == State::kFallback && !dead_) {
      // The peer still finds the path broken: restart our hysteresis so we do not propose a
      // switch it cannot confirm.
      healthy_ = true;
      healthy_since_ = now;
    }
  }
  step(now);
  return kOk;
}

void Manager::maybe_ack(Timestamp now) {
  if (peer_proposal_ == 0 || peer_proposal_ <= acked_peer_ || !media_seen_) return;
  // "Recently" = within our own dead-after time: older frames do not show the path works now.
  if (now - last_media_ > dead_after()) return;
  acked_peer_ = peer_proposal_;
  push_message(MessageType::kAck, Path::kDirect, peer_proposal_);
}

// --- transitions ---

void Manager::set_state(State s, Timestamp now) {
  if (s == state_) return;
  state_ = s;
  stats_.last_change = now;
}

void Manager::start_attempt(Timestamp now, Reason reason) {
  ++attempt_;
  ++stats_.attempts;
  acked_ = false;
  attempt_reason_ = reason;
  attempt_started_ = now;
  set_state(State::kSwitching, now);
  push_message(MessageType::kPropose, Path::kDirect, attempt_);
}

void Manager::complete_switch(Timestamp now) {
  ++stats_.switches;
  direct_since_ = now;
  set_state(State::kDirect, now);
  push_event(Path::kRelay, Path::kDirect, attempt_reason_, now);
}

void Manager::fall_back(Timestamp now, Reason reason, bool tell_peer) {
  if (state_ == State::kDirect) {
    ++stats_.fallbacks;
    // A fallback after direct carried media for a long time is a first failure; one soon
    // after switching means the path is flapping, so the next recovery waits longer.
    if (now - direct_since_ >= ms(cfg_.stable_after_ms)) {
      failures_ = 1;
    } else if (failures_ < kMaxBackoffShift + 1) {
      ++failures_;
    }
    push_event(Path::kDirect, Path::kRelay, reason, now);
  } else if (state_ == State::kSwitching) {
    ++stats_.aborted_attempts;
    stats_.last_abort_reason = reason;
    if (failures_ < kMaxBackoffShift + 1) ++failures_;
  }
  if (tell_peer) push_message(MessageType::kPropose, Path::kRelay, attempt_);
  // The recovery clock: from now if the path still answers (the peer's word or a timeout
  // made us fall back), from the first packet after the silence if it is dead.
  healthy_ = !dead_;
  healthy_since_ = now;
  set_state(State::kFallback, now);
}

void Manager::step(Timestamp now) {
  if (!direct_up_) return;
  if (!dead_ && tx_outstanding_ && now - first_tx_ >= dead_after()) {
    dead_ = true;
    healthy_ = false;
    if (state_ == State::kDirect || state_ == State::kSwitching) {
      fall_back(now, Reason::kDirectLost, true);
    }
  }
  if (state_ == State::kSwitching) {
    if (acked_ && now - attempt_started_ >= ms(cfg_.dual_send_min_ms)) {
      complete_switch(now);
    } else if (now - attempt_started_ >= ms(cfg_.confirm_timeout_ms)) {
      fall_back(now, Reason::kConfirmTimeout, false);
    }
  } else if (state_ == State::kFallback) {
    if (!dead_ && healthy_ && now - healthy_since_ >= recover_after()) {
      start_attempt(now, Reason::kDirectRecovered);
    }
  }
}

// --- time ---

Timestamp Manager::next_deadline() const {
  if (!direct_up_) return 0;
  Timestamp next = 0;
  auto take = [&next](Timestamp t) {
    if (t == 0) t = 1;  // 0 means "none" to the caller; an origin-0 clock still gets a timer
    if (next == 0 || t < next) next = t;
  };
  if (!dead_ && tx_outstanding_) take(first_tx_ + dead_after());
  if (state_ == State::kSwitching) {
    if (acked_) take(attempt_started_ + ms(cfg_.dual_send_min_ms));
    take(attempt_started_ + ms(cfg_.confirm_timeout_ms));
  } else if (state_ == State::kFallback && !dead_ && healthy_) {
    take(healthy_since_ + recover_after());
  }
  return next;
}

void Manager::handle_timeout(Timestamp now) { step(now); }

// --- outputs ---

unsigned Manager::send_paths(Timestamp now) {
  step(now);
  switch (state_) {
    case State::kDirect:
      ++stats_.frames_direct;
      return kSendDirect;
    case State::kSwitching:
    case State::kFallback:
      ++stats_.frames_both;
      return kSendRelay | kSendDirect;
    case State::kRelay:
      break;
  }
  ++stats_.frames_relay;
  return kSendRelay;
}

void Manager::push_event(Path from, Path to, Reason reason, Timestamp now) {
  if (event_count_ == kMaxEvents) {
    event_head_ = (event_head_ + 1) % kMaxEvents;
    --event_count_;
    ++stats_.events_dropped;
  }
  PathEvent &e = events_[(event_head_ + event_count_) % kMaxEvents];
  e.type = EventType::kActiveChanged;
  e.old_path = from;
  e.new_path = to;
  e.reason = reason;
  e.attempt = attempt_;
  e.at = now;
  ++event_count_;
}

bool Manager::poll_event(PathEvent *out) {
  if (event_count_ == 0) return false;
  *out = events_[event_head_];
  event_head_ = (event_head_ + 1) % kMaxEvents;
  --event_count_;
  return true;
}

void Manager::push_message(MessageType type, Path path, uint64_t sequence) {
  // One waiting message per kind: remove an older one of this kind, keeping the others'
  // order, then append the new one.
  for (size_t i = 0; i < message_count_; ++i) {
    if (messages_[i].type == type && messages_[i].path == path) {
      for (size_t j = i + 1; j < message_count_; ++j) messages_[j - 1] = messages_[j];
      --message_count_;
      ++stats_.messages_coalesced;
      break;
    }
  }
  // Three kinds exist (propose direct, propose relay, ack direct), so there is always room.
  if (message_count_ == kMaxMessages) return;
  PathMessage &m = messages_[message_count_++];
  m.type = type;
  m.path = path;
  m.sequence = sequence;
}

bool Manager::poll_message(PathMessage *out) {
  if (message_count_ == 0) return false;
  *out = messages_[0];
  for (size_t i = 1; i < message_count_; ++i) messages_[i - 1] = messages_[i];
  --message_count_;
  return true;
}

}  // namespace parley::path

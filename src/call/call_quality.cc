#include "call/call_quality.h"

#include <algorithm>

#include "base/log.h"

namespace parley::call {

namespace {
constexpr int64_t kRoundTimeoutMs = 2000;
// How far ahead an upgrade switches: propose, ack and confirm must all cross the relay first.
constexpr int64_t kLeadMs = 300;

quality::ControllerConfig controller_config(bool caller, uint8_t best) {
  quality::ControllerConfig c;
  c.propose = caller;
  c.best_profile = best;
  return c;
}
uint32_t ms_to_ts48(int64_t ms) { return uint32_t(ms * 48); }
}  // namespace

CallQuality::CallQuality(bool caller, VoiceChannel *voice, uint8_t best, bool adaptive, Io io)
    : adaptive_(adaptive),
      voice_(voice),
      best_(best),
      io_(std::move(io)),
      ctl_(controller_config(caller, best), voice->profile()) {
  st_.profile = voice->profile();
}

void CallQuality::set_now(uint8_t profile, quality::Reason why) {
  const uint8_t from = voice_->profile();
  voice_->set_profile(profile);
  st_.profile = profile;
  ++st_.changes;
  st_.last_reason = why;
  if (io_.changed) io_.changed(from, profile, why, voice_->next_timestamp());
}

void CallQuality::schedule(uint8_t profile, uint32_t at_ts) {
  const uint8_t from = voice_->profile();
  voice_->schedule_profile(profile, at_ts);
  st_.profile = profile;
  ++st_.changes;
  st_.last_reason = quality::Reason::kRecovered;
  if (io_.changed) io_.changed(from, profile, quality::Reason::kRecovered, at_ts);
}

void CallQuality::cancel_round(int64_t now_ms) {
  signal::Message m;
  m.type = signal::Type::kQualityDirective;
  m.sequence = round_.sequence;
  m.profile = voice_->profile();
  io_.send(m);
  round_.active = false;
  ctl_.upgrade_result(false, now_ms);
}

void CallQuality::tick(const QualityInputs &in, int64_t now_ms) {
  path_ = in.path;
  local_.loss_permille = loss_.permille(now_ms);
  // Judged as settled: a young window's jitter neither downgrades nor lets an upgrade pass.
  const uint32_t jitter =
      quality::settled_jitter_ms(in.jitter_ms, in.jitter_window_ms, voice_->profile());
  local_.jitter_ms = jitter;
  local_.rtt_ms = in.rtt_ms;
  local_.queue_ms = in.queue_ms;
  local_at_ms_ = now_ms;
  st_.loss_permille = local_.loss_permille;

  signal::Message r;
  r.type = signal::Type::kQualityReport;
  r.loss_permille = local_.loss_permille;
  r.rtt_ms = in.rtt_ms;
  r.jitter_ms = jitter;
  r.queue_ms = in.queue_ms;
  io_.send(r);

  ctl_.report(0, local_, now_ms);
  if (round_.active && (path_ != path::Path::kDirect || now_ms >= round_.deadline_ms)) {
    cancel_round(now_ms);
  }
  if (path_ != path::Path::kDirect || !adaptive_) return;  // the relay judges, or nobody

  const quality::Decision d = ctl_.poll(now_ms);
  if (d.action == quality::Action::kDowngrade) {
    PARLEY_LOG(kLogInfo, "quality", "downgrade %u -> %u (%s of %s)", voice_->profile(),
               d.profile, quality::reason_name(d.reason), d.link == 0 ? "ours" : "the peer's");
    set_now(d.profile, d.reason);
    pending_.active = false;
    signal::Message m;
    m.type = signal::Type::kQualityDirective;
    m.profile = d.profile;
    if (round_.active) {
      m.sequence = round_.sequence;  // also cancels our round at the peer
      round_.active = false;
      ctl_.upgrade_result(false, now_ms);
    }
    io_.send(m);
  } else if (d.action == quality::Action::kProposeUpgrade) {
    uint32_t peer_ts = 0;
    int64_t peer_at_us = 0;
    if (!voice_->peer_timestamp(&peer_ts, &peer_at_us)) {
      ctl_.upgrade_result(false, now_ms);
      return;
    }
    const int64_t lead_ms = kLeadMs + 2 * int64_t(in.signal_rtt_ms);
    // The peer's clock now: its last frame's timestamp, plus the time since it arrived,
    // plus the one-way delay and one frame (its first sample was captured that much before
    // it reached us).
    const int64_t since_ms = std::max<int64_t>(0, now_ms - peer_at_us / 1000);
    const uint32_t peer_now =
        peer_ts + ms_to_ts48(since_ms + int64_t(in.rtt_ms) / 2) + voice_->frame_ts48();
    ++st_.proposed;
    round_.active = true;
    round_.sequence = next_sequence_++;
    round_.profile = d.profile;
    // Both on frame boundaries (the peer's frames are as long as ours: one profile for the
    // call), so each names exactly the first frame of the new profile; each is the boundary
    // nearest to "now + lead" on its own grid, so the two are within a frame of each other
    // plus the error of the peer-clock estimate.
    const uint32_t frame = voice_->frame_ts48();
    const uint32_t lead = ms_to_ts48(lead_ms);
    round_.ts_self = voice_->next_timestamp() + (lead + frame / 2) / frame * frame;
    round_.ts_peer = peer_ts + (peer_now - peer_ts + lead + frame / 2) / frame * frame;
    round_.deadline_ms = now_ms + kRoundTimeoutMs;
    signal::Message m;
    m.type = signal::Type::kUpgradePropose;
    m.sequence = round_.sequence;
    m.profile = round_.profile;
    m.media_timestamp = round_.ts_peer;
    io_.send(m);
  }
}

void CallQuality::on_message(const signal::Message &m, int64_t now_ms) {
  using signal::Type;
  if (!adaptive_ && m.type == Type::kUpgradePropose) {
    signal::Message a;  // pinned: never better than what we send
    a.type = Type::kUpgradeAck;
    a.sequence = *m.sequence;
    a.profile = voice_->profile();
    io_.send(a);
    ++st_.refusals_sent;
    return;
  }
  if (!adaptive_ && m.type != Type::kQualityReport) return;
  switch (m.type) {
    case Type::kQualityReport: {
      quality::LinkReport r;
      r.loss_permille = m.loss_permille.value_or(0);
      r.jitter_ms = m.jitter_ms.value_or(0);
      r.rtt_ms = m.rtt_ms.value_or(0);
      r.queue_ms = m.queue_ms.value_or(0);
      ctl_.report(1, r, now_ms);
      break;
    }
    case Type::kQualityDirective: {
      if (m.sequence && pending_.active && pending_.sequence == *m.sequence) {
        pending_.active = false;  // the round was cancelled
      }
      const uint8_t p = std::min<uint8_t>(*m.profile, uint8_t(quality::ladder_size() - 1));
      if (p > voice_->profile()) {
        pending_.active = false;
        set_now(p, quality::Reason::kDirective);
        ctl_.apply(p, now_ms);
        if (round_.active) {
          round_.active = false;
          ctl_.upgrade_result(false, now_ms);
        }
      }
      break;
    }
    case Type::kUpgradePropose: {
      const uint8_t allowed = std::max(best_, ctl_.allows_entering(0, now_ms));
      signal::Message a;
      a.type = Type::kUpgradeAck;
      a.sequence = *m.sequence;
      a.profile = allowed;
      io_.send(a);
      // A profile off the ladder is refused: no confirm could switch to it.
      pending_.active = allowed <= *m.profile && *m.profile < quality::ladder_size();
      if (!pending_.active) ++st_.refusals_sent;
      pending_.sequence = *m.sequence;
      pending_.profile = *m.profile;
      pending_.ts = *m.media_timestamp;
      break;
    }
    case Type::kUpgradeConfirm: {
      if (!pending_.active || pending_.sequence != *m.sequence) break;
      pending_.active = false;
      // Only the profile we accepted: a confirm naming another (a better one than we allow,
      // past our cap, or one off the ladder) switches nothing and ends the round.
      if (*m.profile != pending_.profile) {
        PARLEY_LOG(kLogInfo, "quality", "upgrade-confirm for %u, but round %llu proposed %u",
                   *m.profile, static_cast<unsigned long long>(pending_.sequence),
                   pending_.profile);
        break;
      }
      if (int32_t(voice_->next_timestamp() - *m.media_timestamp) > 0) ++st_.late_switches;
      ctl_.apply(*m.profile, now_ms);
      schedule(*m.profile, *m.media_timestamp);
      break;
    }
    case Type::kUpgradeAck: {
      if (!round_.active || round_.sequence != *m.sequence) break;
      if (m.profile && *m.profile <= round_.profile) {
        signal::Message c;
        c.type = Type::kUpgradeConfirm;
        c.sequence = round_.sequence;
        c.profile = round_.profile;
        c.media_timestamp = round_.ts_peer;
        io_.send(c);
        round_.active = false;
        ctl_.upgrade_result(true, now_ms);
        schedule(round_.profile, round_.ts_self);
      } else {
        ++st_.refused;
        PARLEY_LOG(kLogInfo, "quality", "upgrade to %u refused by the peer (allows %u)",
                   round_.profile, m.profile.value_or(255));
        cancel_round(now_ms);
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace parley::call

#include "relay/judge.h"

#include <algorithm>

#include "base/log.h"

namespace parley::relay {

namespace {
constexpr int64_t kFlowingMs = 1000;      // media through us this recently: we judge
constexpr int64_t kReportStaleMs = 3000;  // a participant's report older than this is ignored
constexpr int64_t kRoundTimeoutMs = 2000;
constexpr int64_t kLeadMs = 300;          // propose -> ack -> confirm, plus margin
constexpr uint64_t kRelayRoundBit = uint64_t(1) << 63;
}  // namespace

Judge::Judge(uint8_t profile, size_t links)
    : ctl_(quality::ControllerConfig{}, profile),
      links_(std::min<size_t>(links, quality::kMaxLinks)),
      next_sequence_(kRelayRoundBit | 1),
      in_force_(profile) {}

void Judge::add_link(int link) {
  if (link >= 0 && link < quality::kMaxLinks && size_t(link) >= links_.size()) {
    links_.resize(size_t(link) + 1);
  }
}

bool Judge::media_flowing(int64_t now_ms) const { return now_ms - last_media_ms_ <= kFlowingMs; }

void Judge::on_frame(int link_id, uint32_t sequence, uint32_t ts48, uint8_t profile,
                     int64_t now_ms) {
  Link *lp = slot(link_id);
  if (!lp) return;
  Link &l = *lp;
  l.used = true;
  last_media_ms_ = now_ms;
  const bool first = !l.seq.have();
  const uint64_t before = l.seq.newest();
  const uint64_t index = l.seq.extend(sequence);
  l.uplink.on_frame(index, now_ms);
  if (!first && index <= before) return;  // reordered or repeated: not the newest
  const uint32_t step = ts48 - l.last_ts;
  if (!first && index == before + 1 && step >= 480 && step <= 2880) l.frame_ts = step;
  l.last_ts = ts48;
  l.last_ts_ms = now_ms;
  l.sent_profile = profile;
}

void Judge::on_report(int link_id, const signal::Message &m, int64_t now_ms) {
  Link *l = slot(link_id);
  if (!l) return;
  l->used = true;
  l->report_loss = m.loss_permille.value_or(0);
  l->report_jitter = m.jitter_ms.value_or(0);
  l->report_queue = m.queue_ms.value_or(0);
  l->report_ms = now_ms;
}

void Judge::on_transport(int link_id, uint32_t rtt_ms, uint32_t queue_ms, uint64_t acked,
                         uint64_t lost, int64_t now_ms) {
  Link *lp = slot(link_id);
  if (!lp) return;
  Link &l = *lp;
  const uint64_t da = acked - l.acked, dl = lost - l.lost;
  if (l.transport_ms > INT64_MIN / 2 && da + dl > 0) {
    l.transport_loss = uint16_t(dl * 1000 / (da + dl));
  } else if (l.transport_ms > INT64_MIN / 2) {
    l.transport_loss = 0;
  }
  l.acked = acked;
  l.lost = lost;
  l.rtt_ms = rtt_ms;
  l.queue_ms = queue_ms;
  l.transport_ms = now_ms;
}

void Judge::on_ack(int link, const signal::Message &m) {
  if (!m.sequence || !(*m.sequence & kRelayRoundBit)) return;
  round_.on_ack(*m.sequence, link, m.profile.value_or(uint8_t(quality::ladder_size() - 1)));
}

void Judge::remove(int link_id) {
  Link *l = slot(link_id);
  if (!l) return;
  *l = Link{};
  ctl_.remove(link_id);
  round_.remove(link_id);
}

void Judge::tick(int64_t now_ms, std::vector<Out> *out) {
  auto to_all = [&](const signal::Message &m) {
    for (size_t i = 0; i < links_.size(); ++i) {
      if (links_[i].used) out->push_back(Out{int(i), m});
    }
  };
  if (!media_flowing(now_ms)) {
    // The call went direct (its peers judge) or everyone is silent: nothing to decide, and a
    // round in flight is dropped (participants switch only on a confirm, which never comes).
    if (round_.state() == quality::RoundState::kPending) {
      round_ = quality::UpgradeRound{};
      ctl_.upgrade_result(false, now_ms);
    }
    flowing_ = false;
    return;
  }
  if (!flowing_) {
    // Judging (again): start from what the participants send with, so a call coming back
    // from the direct path keeps the profile its peers agreed on.
    flowing_ = true;
    uint8_t observed = 0;
    for (const Link &l : links_) {
      if (l.used && l.seq.have() && now_ms - l.last_ts_ms <= kFlowingMs) {
        observed = std::max(observed, l.sent_profile);
      }
    }
    ctl_.apply(observed, now_ms);
    in_force_ = ctl_.profile();
  }
  int64_t max_rtt = 0;
  for (size_t i = 0; i < links_.size(); ++i) {
    Link &l = links_[i];
    if (!l.used) continue;
    quality::LinkReport r;
    r.loss_permille = std::max(l.uplink.permille(now_ms), l.transport_loss);
    r.queue_ms = l.queue_ms;
    r.rtt_ms = l.rtt_ms;
    if (now_ms - l.report_ms <= kReportStaleMs) {
      r.loss_permille = std::max(r.loss_permille, l.report_loss);
      r.jitter_ms = l.report_jitter;
      r.queue_ms = std::max(r.queue_ms, l.report_queue);
    }
    max_rtt = std::max<int64_t>(max_rtt, l.rtt_ms);
    ctl_.report(int(i), r, now_ms);
  }

  const quality::RoundState rs = round_.poll(now_ms);
  if (rs == quality::RoundState::kConfirmed) {
    ++st_.confirmed;
    ctl_.upgrade_result(true, now_ms);
    in_force_ = round_.profile();
    for (size_t i = 0; i < links_.size(); ++i) {
      if (!links_[i].used) continue;
      signal::Message c;
      c.type = signal::Type::kUpgradeConfirm;
      c.sequence = round_.sequence();
      c.profile = round_.profile();
      c.media_timestamp = round_ts_[i];
      out->push_back(Out{int(i), c});
    }
    PARLEY_LOG(kLogInfo, "relay", "quality: upgrade to profile %u confirmed", in_force_);
  } else if (rs == quality::RoundState::kCancelled) {
    ++st_.cancelled;
    ctl_.upgrade_result(false, now_ms);
    signal::Message c;
    c.type = signal::Type::kQualityDirective;
    c.sequence = round_.sequence();
    c.profile = in_force_;
    to_all(c);
    PARLEY_LOG(kLogInfo, "relay", "quality: upgrade to profile %u cancelled (%s)",
               round_.profile(), round_.refused_by() >= 0 ? "refused" : "timed out");
  }

  const quality::Decision d = ctl_.poll(now_ms);
  if (d.action == quality::Action::kDowngrade) {
    ++st_.directives;
    in_force_ = d.profile;
    signal::Message m;
    m.type = signal::Type::kQualityDirective;
    m.profile = d.profile;
    if (round_.state() == quality::RoundState::kPending) {
      m.sequence = round_.sequence();  // also cancels the round everywhere
      round_ = quality::UpgradeRound{};
      ctl_.upgrade_result(false, now_ms);
    }
    to_all(m);
    PARLEY_LOG(kLogInfo, "relay", "quality: everyone to profile %u (%s on link %d)", d.profile,
               quality::reason_name(d.reason), d.link);
  } else if (d.action == quality::Action::kProposeUpgrade) {
    ++st_.proposals;
    const uint64_t seq = next_sequence_++;
    int awaited[quality::kMaxLinks];
    size_t n = 0;
    const int64_t lead_ms = kLeadMs + 2 * max_rtt;
    for (size_t i = 0; i < links_.size(); ++i) {
      Link &l = links_[i];
      if (!l.used) continue;
      awaited[n++] = int(i);
      // Its clock now: its newest frame's timestamp plus the time since, plus its one-way
      // delay to us and one frame; then the lead, up to its next frame boundary.
      const int64_t ahead = std::max<int64_t>(0, now_ms - l.last_ts_ms) + l.rtt_ms / 2 + lead_ms;
      const uint32_t want = uint32_t(ahead * 48) + l.frame_ts;
      round_ts_[i] = l.last_ts + (want + l.frame_ts - 1) / l.frame_ts * l.frame_ts;
      signal::Message p;
      p.type = signal::Type::kUpgradePropose;
      p.sequence = seq;
      p.profile = d.profile;
      p.media_timestamp = round_ts_[i];
      out->push_back(Out{int(i), p});
    }
    round_.start(seq, d.profile, awaited, n, now_ms + kRoundTimeoutMs);
  }
}

}  // namespace parley::relay

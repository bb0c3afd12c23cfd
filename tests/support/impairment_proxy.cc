#include "impairment_proxy.h"

#include "base/clock.h"
#include "base/error.h"

namespace parley::testing {

int ImpairmentProxy::start(const SocketAddress &listen, const SocketAddress &target) {
  target_ = target;
  client_side_ = std::make_unique<UdpSocket>(loop_);
  int r = client_side_->bind(listen, [this](const uint8_t *d, size_t n, const SocketAddress &from) {
    client_ = from;
    on_packet(true, d, n);
  });
  if (r != kOk) return r;
  client_side_->set_buffer_sizes(4 << 20, 4 << 20);
  return rebind();
}

int ImpairmentProxy::rebind() {
  auto s = std::make_unique<UdpSocket>(loop_);
  SocketAddress any = target_;
  SocketAddress::parse_ip(target_.ip_string(), 0, &any);
  const int r = s->bind(any, [this](const uint8_t *d, size_t n, const SocketAddress &from) {
    if (from == target_) on_packet(false, d, n);
  });
  if (r != kOk) return r;
  s->set_buffer_sizes(4 << 20, 4 << 20);
  upstream_ = std::move(s);
  return kOk;
}

void ImpairmentProxy::on_packet(bool upstream, const uint8_t *data, size_t len) {
  DirectionStats &st = upstream ? up_ : down_;
  const Impairment &cfg = upstream ? up_cfg_ : down_cfg_;
  ++st.received;
  if (len >= count_min_size_) ++st.received_at_least_min_size;
  if (cfg.loss > 0 && uniform() < cfg.loss) {
    ++st.dropped;
    if (len >= count_min_size_) ++st.dropped_at_least_min_size;
    return;
  }
  std::vector<uint8_t> pkt(data, data + len);
  if (cfg.duplicate > 0 && uniform() < cfg.duplicate) {
    ++st.duplicated;
    emit(upstream, pkt);
  }
  auto &held = held_[upstream ? 0 : 1];
  if (!held && cfg.reorder > 0 && uniform() < cfg.reorder) {
    // Held back until the next packet of this direction has overtaken it (or, if none
    // comes, released by the timer after kReorderHoldNs).
    ++st.reordered;
    held = std::make_unique<std::vector<uint8_t>>(std::move(pkt));
    held_since_[upstream ? 0 : 1] = monotonic_now();
    arm();
    return;
  }
  emit(upstream, std::move(pkt));
  if (held) {
    emit(upstream, std::move(*held));
    held.reset();
  }
}

void ImpairmentProxy::emit(bool upstream, std::vector<uint8_t> data) {
  const Impairment &cfg = upstream ? up_cfg_ : down_cfg_;
  uint64_t delay_ns = uint64_t(cfg.delay_ms) * kNanosPerMilli;
  if (cfg.jitter_ms) delay_ns += uint64_t(uniform() * cfg.jitter_ms * kNanosPerMilli);
  if (delay_ns == 0) {
    send_now(upstream, data);
    return;
  }
  delayed_.emplace(monotonic_now() + delay_ns, Pending{upstream, std::move(data)});
  arm();
}

void ImpairmentProxy::send_now(bool upstream, const std::vector<uint8_t> &data) {
  DirectionStats &st = upstream ? up_ : down_;
  ++st.forwarded;
  if (upstream) {
    upstream_->send(target_, data.data(), data.size());
  } else if (client_.is_set()) {
    client_side_->send(client_, data.data(), data.size());
  }
}

void ImpairmentProxy::arm() {
  uint64_t due = delayed_.empty() ? 0 : delayed_.begin()->first;
  for (int i = 0; i < 2; ++i) {
    if (held_[i] && (due == 0 || held_since_[i] + kReorderHoldNs < due)) {
      due = held_since_[i] + kReorderHoldNs;
    }
  }
  if (due == 0) return;
  const uint64_t now = monotonic_now();
  timer_.start(due > now ? (due - now + kNanosPerMilli - 1) / kNanosPerMilli : 0, 0, [this] {
    const uint64_t t = monotonic_now();
    for (int i = 0; i < 2; ++i) {
      if (held_[i] && held_since_[i] + kReorderHoldNs <= t) {
        emit(i == 0, std::move(*held_[i]));
        held_[i].reset();
      }
    }
    while (!delayed_.empty() && delayed_.begin()->first <= t) {
      auto it = delayed_.begin();
      send_now(it->second.upstream, it->second.data);
      delayed_.erase(it);
    }
    arm();
  });
}

}  // namespace parley::testing

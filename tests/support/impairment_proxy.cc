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
  upstream_ = std::move(s);
  return kOk;
}

void ImpairmentProxy::on_packet(bool upstream, const uint8_t *data, size_t len) {
  DirectionStats &st = upstream ? up_ : down_;
  const Impairment &cfg = upstream ? up_cfg_ : down_cfg_;
  ++st.received;
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
  if (cfg.reorder > 0 && uniform() < cfg.reorder) {
    // Held back a few milliseconds: the packets behind it overtake it.
    ++st.reordered;
    delayed_.emplace(monotonic_now() + kReorderHoldNs, Pending{upstream, std::move(pkt)});
    arm();
    return;
  }
  emit(upstream, std::move(pkt));
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
  if (delayed_.empty()) return;
  const uint64_t now = monotonic_now(), due = delayed_.begin()->first;
  timer_.start(due > now ? (due - now + kNanosPerMilli - 1) / kNanosPerMilli : 0, 0, [this] {
    const uint64_t t = monotonic_now();
    while (!delayed_.empty() && delayed_.begin()->first <= t) {
      auto it = delayed_.begin();
      send_now(it->second.upstream, it->second.data);
      delayed_.erase(it);
    }
    arm();
  });
}

}  // namespace parley::testing

#include "ice/birthday.h"

namespace parley::ice {

const char *birthday_role_name(BirthdayRole r) {
  switch (r) {
    case BirthdayRole::kHard: return "hard";
    case BirthdayRole::kEasy: return "easy";
    case BirthdayRole::kNone: break;
  }
  return "none";
}

namespace {
bool random_and_dependent(NatMapping m, PortAllocation a) {
  return m == NatMapping::kAddressDependent && a == PortAllocation::kRandom;
}
}  // namespace

BirthdayRole birthday_role(const NatBehavior &ours, NatMapping peer_mapping,
                           PortAllocation peer_allocation) {
  const bool we_hard = random_and_dependent(ours.mapping, ours.allocation);
  const bool they_hard = random_and_dependent(peer_mapping, peer_allocation);
  if (we_hard && peer_mapping != NatMapping::kAddressDependent) return BirthdayRole::kHard;
  if (they_hard && ours.mapping != NatMapping::kAddressDependent) return BirthdayRole::kEasy;
  return BirthdayRole::kNone;
}

BirthdaySchedule::BirthdaySchedule(BirthdayRole role, const SocketAddress &target,
                                   uint32_t count, uint32_t interval_us, Timestamp start,
                                   uint64_t seed)
    : role_(role),
      target_(target),
      count_(count),
      interval_(Timestamp(interval_us) * 1000),
      next_(start),
      rng_(seed) {
  if (role_ == BirthdayRole::kEasy) {
    // Never more probes than ports to probe.
    const uint32_t ports = 65536u - kBirthdayFirstPort;
    if (count_ > ports) count_ = ports;
    used_.assign(ports, false);
  }
  if (role_ == BirthdayRole::kNone || !target_.is_set()) count_ = 0;
}

uint16_t BirthdaySchedule::next_port() {
  const uint32_t ports = uint32_t(used_.size());
  for (;;) {
    // splitmix64: a fast, well-mixed sequence from the seed.
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const uint32_t k = uint32_t(z % ports);
    if (!used_[k]) {
      used_[k] = true;
      return uint16_t(kBirthdayFirstPort + k);
    }
  }
}

bool BirthdaySchedule::poll(Timestamp now, SocketAddress *to, uint32_t *number) {
  if (stopped_ || sent_ >= count_ || now < next_) return false;
  *to = target_;
  if (role_ == BirthdayRole::kEasy) to->set_port(next_port());
  *number = sent_++;
  // Lateness within one interval (timer granularity) is absorbed; after a longer stall the
  // pace restarts from now: the overdue probes are never paid back in a burst, which would
  // put more than the pace's worth into the second around the stall.
  next_ = now - next_ > interval_ ? now + interval_ : next_ + interval_;
  return true;
}

Timestamp BirthdaySchedule::next_deadline() const {
  return stopped_ || sent_ >= count_ ? 0 : next_;
}

}  // namespace parley::ice

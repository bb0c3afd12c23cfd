#include "quality/ladder.h"

#include <algorithm>

namespace parley::quality {

namespace {
constexpr uint32_t kUnbounded = UINT32_MAX;
// docs/quality.md, "The ladder". Profiles 0-2 carry FEC (useful at a few percent); 3 and 4
// carry redundant copies and survive tens of percent. Queue and jitter limits follow the
// bitrate: a queue means the path carries less than we send, so the next rung down (about
// half the bits) is the answer.
constexpr Rung kRungs[] = {
    {0, {20, 40, 40}, {5, 15, 20}},
    {1, {50, 60, 60}, {10, 25, 30}},
    {2, {50, 100, 100}, {10, 40, 50}},
    {3, {300, 200, 200}, {40, 80, 100}},
    {4, {1000, kUnbounded, kUnbounded}, {1000, kUnbounded, kUnbounded}},
};
constexpr size_t kCount = sizeof kRungs / sizeof kRungs[0];
static_assert(kCount == 5, "one rung per media profile");
}  // namespace

const char *reason_name(Reason r) {
  switch (r) {
    case Reason::kNone: return "none";
    case Reason::kLoss: return "loss";
    case Reason::kCongestion: return "congestion";
    case Reason::kJitter: return "jitter";
    case Reason::kRecovered: return "recovered";
    case Reason::kDirective: return "directive";
  }
  return "unknown";
}

const Rung &rung(uint8_t profile) { return kRungs[profile < kCount ? profile : kCount - 1]; }

size_t ladder_size() { return kCount; }

bool within(const LinkReport &r, const Limits &l, Reason *why) {
  Reason w = Reason::kNone;
  if (r.loss_permille > l.loss_permille) {
    w = Reason::kLoss;
  } else if (r.queue_ms > l.queue_ms) {
    w = Reason::kCongestion;
  } else if (r.jitter_ms > l.jitter_ms) {
    w = Reason::kJitter;
  }
  if (why) *why = w;
  return w == Reason::kNone;
}

uint8_t best_to_keep(const LinkReport &r, Reason *why) {
  Reason first = Reason::kNone;
  for (size_t i = 0; i < kCount; ++i) {
    Reason w;
    if (within(r, kRungs[i].keep, &w)) {
      if (why) *why = first;
      return kRungs[i].profile;
    }
    if (first == Reason::kNone) first = w;
  }
  if (why) *why = first;
  return kRungs[kCount - 1].profile;
}

uint32_t settled_jitter_ms(uint32_t jitter_ms, uint32_t window_ms, uint8_t profile) {
  if (window_ms >= kJitterSettleMs) return jitter_ms;
  return std::min(jitter_ms, rung(profile).keep.jitter_ms);
}

uint8_t best_to_enter(const LinkReport &r) {
  for (size_t i = 0; i < kCount; ++i) {
    if (within(r, kRungs[i].enter, nullptr)) return kRungs[i].profile;
  }
  return kRungs[kCount - 1].profile;
}

}  // namespace parley::quality

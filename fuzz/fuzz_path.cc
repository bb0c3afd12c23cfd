// libFuzzer target: the path-switch handlers. Two path::Managers (the two sides of a call)
// exchange their path-switch-propose/ack messages through the signal codec over a relay
// channel the input controls (deliver, drop, duplicate, reorder), the input also forges
// messages of its own (any sequence, path and type), and decides the facts each side sees
// (direct up/down, packets and media frames on the direct path, RTT samples) and the clock.
//
// Input: records until the input ends (a short last record is dropped). Integers big-endian.
//   record: op u8, side = op bit 7 (0: A, 1: B), op & 0x7f taken mod 12:
//     0 clock      ms u16                      the clock advances
//     1 up         --                          direct_up
//     2 down       --                          direct_down
//     3 rx         --                          on_direct_rx
//     4 tx         --                          on_direct_tx
//     5 media      --                          on_direct_media
//     6 rtt        ms u16                      set_direct_rtt
//     7 deliver    --                          the oldest message queued toward `side` arrives
//     8 drop       --                          ... is lost
//     9 dup        --                          ... arrives and stays queued (a duplicate)
//     10 forge     type u8 | path u8 | sequence u64
//                                              a message to `side` (type 10 + type % 2),
//                                              through the codec like a real one
//     11 timer     --                          the clock jumps to `side`'s next_deadline (if
//                                              any and later) and handle_timeout runs; then a
//                                              frame is sent (send_paths)
// The clock starts at 1 s and only moves forward.
//
// Checked: a side reaches kDirect only holding the peer's ack of its current attempt, with
// direct up, and after at least dual_send_min_ms of dual sending; send_paths never answers
// direct-only without kDirect or nothing at all; messages are well formed (sequence != 0,
// acks only for the direct path, proposals within the attempts made) and an ack answers a
// proposal the side received, after a direct media frame within its dead-after time; the
// queue never holds more than kMaxMessages; events report real changes consistent with
// active() in order, with non-decreasing times; on_peer_message answers kOk or
// kErrInvalidArgument, and the latter changes nothing.
//
// corpus/path/ seeds:
//   seed-switch-and-fallback  both sides come up, media and acks cross, both switch to
//                             direct; then A's sends go unanswered until it falls back, and
//                             the path recovers
//   seed-stale-forged         duplicated, dropped and forged messages (stale, unknown path,
//                             sequence 0, 2^63 + 1), a direct_down while switching, a confirm
//                             timeout
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "path/manager.h"
#include "signal/message.h"
#include "fuzz_support.h"

namespace {

using parley::fuzz::be;

using namespace parley;
using namespace parley::path;

constexpr Timestamp kMs = kNanosPerMilli;

struct Side {
  Manager m;
  std::deque<std::vector<uint8_t>> inbox;  // encoded messages on their way to this side
  // What the harness saw, to judge the manager by.
  uint64_t acked_attempt = 0;        // the peer acked this attempt of ours (delivered)
  uint64_t max_peer_proposal = 0;    // highest Propose(direct) delivered to this side
  bool media_seen = false;
  Timestamp last_media = 0;
  State state = State::kRelay;
  Timestamp switching_since = 0;
  Path events_path = Path::kRelay;   // where the events so far say media goes
  Timestamp last_event_at = 0;
};

// Same shape the call layer uses: path messages go as signal messages of the same type.
bool encode(const PathMessage &pm, std::vector<uint8_t> *out) {
  signal::Message s;
  s.type = signal::Type(uint8_t(pm.type));
  s.call_id = signal::CallId{};
  s.sequence = pm.sequence;
  s.path = signal::PathKind(uint8_t(pm.path));
  return signal::encode(s, out) == kOk;
}

bool same(const Manager &a, const Manager &b) {
  const Stats &x = a.stats(), &y = b.stats();
  return a.state() == b.state() && a.attempt() == b.attempt() &&
         a.direct_is_up() == b.direct_is_up() && x.switches == y.switches &&
         x.fallbacks == y.fallbacks && x.attempts == y.attempts &&
         a.next_deadline() == b.next_deadline();
}

void deliver(Side &to, const std::vector<uint8_t> &bytes, Timestamp now) {
  signal::Message s;
  if (signal::decode(bytes.data(), bytes.size(), &s) != kOk) return;  // the relay drops it
  if (s.type != signal::Type::kPathSwitchPropose && s.type != signal::Type::kPathSwitchAck) {
    return;
  }
  PathMessage pm;
  pm.type = MessageType(uint8_t(s.type));
  pm.path = Path(uint8_t(*s.path));
  pm.sequence = *s.sequence;
  const Manager before = to.m;
  const int r = to.m.on_peer_message(pm, now);
  CHECK(r == kOk || r == kErrInvalidArgument);
  if (r != kOk) {
    CHECK(same(before, to.m));
    return;
  }
  if (pm.type == MessageType::kAck && pm.path == Path::kDirect && pm.sequence == to.m.attempt()) {
    to.acked_attempt = pm.sequence;
  }
  if (pm.type == MessageType::kPropose && pm.path == Path::kDirect &&
      pm.sequence > to.max_peer_proposal) {
    to.max_peer_proposal = pm.sequence;
  }
}

void observe(Side &s, Side &peer, Timestamp now) {
  Manager &m = s.m;
  const State st = m.state();
  if (st != s.state) {
    if (st == State::kSwitching) s.switching_since = now;
    if (st == State::kDirect) {
      CHECK(s.state == State::kSwitching);
      CHECK(m.direct_is_up());
      CHECK(s.acked_attempt == m.attempt());
      CHECK(now >= s.switching_since + Timestamp(m.config().dual_send_min_ms) * kMs);
    }
    s.state = st;
  }
  CHECK((m.active() == Path::kDirect) == (st == State::kDirect));
  if (st == State::kDirect || st == State::kSwitching) CHECK(m.direct_is_up());
  PathEvent e;
  while (m.poll_event(&e)) {
    CHECK(e.type == EventType::kActiveChanged);
    CHECK(e.old_path != e.new_path);
    if (m.stats().events_dropped == 0) CHECK(e.old_path == s.events_path);
    CHECK(e.at >= s.last_event_at && e.at <= now);
    s.events_path = e.new_path;
    s.last_event_at = e.at;
  }
  CHECK(s.events_path == m.active());
  PathMessage pm;
  size_t n = 0;
  while (m.poll_message(&pm)) {
    ++n;
    CHECK(n <= Manager::kMaxMessages);
    CHECK(pm.sequence != 0);
    CHECK(pm.type == MessageType::kPropose || pm.type == MessageType::kAck);
    if (pm.type == MessageType::kPropose) {
      CHECK(pm.sequence <= m.attempt());
    } else {
      CHECK(pm.path == Path::kDirect);
      CHECK(pm.sequence <= s.max_peer_proposal);
      CHECK(s.media_seen);
    }
    std::vector<uint8_t> bytes;
    CHECK(encode(pm, &bytes));
    peer.inbox.push_back(std::move(bytes));
    if (peer.inbox.size() > 64) peer.inbox.pop_front();  // the relay's queue is bounded too
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  Side sides[2];
  Timestamp now = 1000 * kMs;
  size_t pos = 0;
  while (pos < size) {
    const uint8_t raw = data[pos++];
    Side &s = sides[raw >> 7];
    const uint8_t *p = data + pos;
    const size_t left = size - pos;
    switch ((raw & 0x7f) % 12) {
      case 0:
        if (left < 2) return 0;
        now += be(p, 2) * kMs;
        pos += 2;
        break;
      case 1:
        s.m.direct_up(now);
        break;
      case 2:
        s.m.direct_down(now);
        break;
      case 3:
        s.m.on_direct_rx(now);
        break;
      case 4:
        s.m.on_direct_tx(now);
        break;
      case 5:
        s.media_seen = true;
        s.last_media = now;
        s.m.on_direct_media(now);
        break;
      case 6:
        if (left < 2) return 0;
        s.m.set_direct_rtt(be(p, 2) * kMs);
        pos += 2;
        break;
      case 7:
      case 8:
      case 9:
        if (s.inbox.empty()) break;
        if ((raw & 0x7f) % 12 != 8) deliver(s, s.inbox.front(), now);
        if ((raw & 0x7f) % 12 != 9) s.inbox.pop_front();
        break;
      case 10: {
        if (left < 10) return 0;
        signal::Message f;
        f.type = p[0] & 1 ? signal::Type::kPathSwitchAck : signal::Type::kPathSwitchPropose;
        f.call_id = signal::CallId{};
        f.path = signal::PathKind(p[1]);
        f.sequence = be(p + 2, 8);
        pos += 10;
        std::vector<uint8_t> bytes;
        if (signal::encode(f, &bytes) == kOk) deliver(s, bytes, now);
        break;
      }
      case 11: {
        const Timestamp d = s.m.next_deadline();
        if (d > now) now = d;
        s.m.handle_timeout(now);
        const unsigned paths = s.m.send_paths(now);
        CHECK(paths == kSendRelay || paths == kSendDirect || paths == (kSendRelay | kSendDirect));
        if (paths == kSendDirect) CHECK(s.m.state() == State::kDirect);
        break;
      }
    }
    observe(sides[0], sides[1], now);
    observe(sides[1], sides[0], now);
  }
  return 0;
}

// libFuzzer target: a real client Context (its loop thread, socket and QUIC endpoint) whose
// relay is played by the fuzzer: every signaling message and datagram the relay could send
// it, in any order, interleaved with what the host does (call, accept, reject, hang up, send,
// join and leave rooms). The relay is not trusted with memory safety: whatever it sends, no
// call, room or route may be touched after it is gone (the use-after-free of a call whose
// stream id a relay changed was found this way).
//
// The harness is the peer as well: it holds an identity and signs media keys with it, so
// invites and accepts can be genuine (or forged, stale, or replayed), and once both sides'
// keys of a call are known it seals real frames, which reach the call's session.
//
// Input: records until the input ends (a short last record is dropped).
//   op u8, then by op % 16:
//     0  invite:      call u8 | stream u8 | key u8 (0: genuine, 1: forged, 2: stale, 3: role
//                     of an accept)
//     1  ringing:     call u8 | stream u8
//     2  accept:      call u8 | stream u8 | key u8 (as for invite, 3: role of an invite)
//     3  reject / 4 hangup / 5 error: call u8 | code u8 | text u8 (length, cut to 16)
//     6  candidate / end of candidates: call u8 | which u8
//     7  quality message: call-or-room u8 | type u8 | profile u8 | seq u8 | ts u8
//     8  path switch propose/ack: call u8 | which u8 | seq u8
//     9  room update: room u8 | own stream u8 | members u8 (count, then a stream u8 each)
//     10 datagram: stream u8 | seq u8 | len u8 (garbage payload of that length)
//     11 sealed frame from the peer: call u8 | voice u8
//     12 host call: call u8            13 host accept/reject/hangup: call u8 | which u8
//     14 host join/leave: room u8 | which u8
//     15 host send datagram: call u8
// Calls and rooms are named by small indices into fixed pools of ids, so messages meet.
// Direct paths are off: the harness must not send probes anywhere but the loopback relay
// address nobody listens on.
#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "call/context.h"
#include "context_test_access.h"
#include "media/e2e_keys.h"
#include "media/frame_crypto.h"
#include "media/frame_header.h"

namespace {

using namespace parley;
using call::ContextTestAccess;

constexpr int kCalls = 4;
constexpr int kRooms = 2;

struct World {
  std::unique_ptr<identity::Identity> me, peer;
  std::array<signal::CallId, kCalls> calls;
  std::array<signal::RoomId, kRooms> rooms;
  World() {
    if (sodium_init() < 0) std::abort();
    log_set_level(kLogOff);  // quiet: the fuzzer makes every warning happen
    identity::Identity::generate(&me);
    identity::Identity::generate(&peer);
    for (auto &c : calls) c = signal::CallId::random();
    for (auto &r : rooms) r = signal::RoomId::random();
  }
};

World &world() {
  static World w;
  return w;
}

struct Reader {
  const uint8_t *p;
  size_t n;
  bool get(uint8_t *v) {
    if (n == 0) return false;
    *v = *p++;
    --n;
    return true;
  }
};

// What the harness, as the peer, knows of each call's keys.
struct PeerCall {
  media::LocalMediaKey mine;  // the peer's
  bool have_mine = false;
  bool peer_is_caller = false;
  std::optional<signal::SignedKey> theirs;  // the context's, from its invite or accept
  media::FrameSealer sealer;
  bool sealer_ready = false;
  uint32_t stream = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  World &w = world();
  call::ContextConfig cfg;
  SocketAddress::parse("127.0.0.1:0", &cfg.bind);
  SocketAddress::parse("127.0.0.1:9", &cfg.relay.relay);  // discard: nobody answers
  cfg.relay.relay_fingerprint = w.peer->fingerprint();
  cfg.direct.enabled = false;
  // Touched on the context's loop thread only (the sink runs there, also from timers and the
  // context's destructor, so it is declared before the context and outlives it).
  std::map<signal::CallId, PeerCall> peer_calls;
  std::unique_ptr<call::Context> ctx;
  if (call::Context::create(*w.me, cfg, [](const call::Event &) {}, &ctx) != kOk) return 0;

  // Remembers the context's own offers (their signed keys).
  ContextTestAccess::attach_relay_sink(
      *ctx, [&](const signal::Message *m, const uint8_t *, size_t) -> int {
        if (m && m->call_id && m->media_key &&
            (m->type == signal::Type::kCallInvite || m->type == signal::Type::kCallAccept)) {
          peer_calls[*m->call_id].theirs = *m->media_key;
        }
        return kOk;
      });

  auto peer_message = [&](signal::Type t, const signal::CallId &id) {
    signal::Message m;
    m.type = t;
    m.call_id = id;
    m.from = w.peer->fingerprint();
    m.to = w.me->fingerprint();
    return m;
  };
  // An invite or accept from the peer with a media key of the given kind.
  auto offer = [&](signal::Type t, const signal::CallId &id, uint8_t stream, uint8_t kind) {
    signal::Message m = peer_message(t, id);
    m.stream_id = stream;
    const bool invite = t == signal::Type::kCallInvite;
    media::KeyRole role = invite ? media::KeyRole::kCaller : media::KeyRole::kCallee;
    if (kind % 4 == 3) role = invite ? media::KeyRole::kCallee : media::KeyRole::kCaller;
    uint64_t issued = wall_clock_ms();
    if (kind % 4 == 2) issued -= 2 * media::kMaxMediaKeyAgeMs;
    ContextTestAccess::on_loop(*ctx, [&] {
      PeerCall &pc = peer_calls[id];
      if (media::make_local_media_key(*w.peer, id, w.me->fingerprint(), role, issued,
                                      &pc.mine) != kOk) {
        return;
      }
      pc.have_mine = true;
      pc.peer_is_caller = invite;
      pc.sealer_ready = false;
      pc.stream = stream;
      m.media_key = pc.mine.signed_key;
    });
    if (!m.media_key) m.media_key = signal::SignedKey{};
    if (kind % 4 == 1) m.media_key->signature[0] ^= 1;
    m.identity_key.emplace();
    std::memcpy(m.identity_key->data(), w.peer->public_key(), identity::kPublicKeyLen);
    m.ice_ufrag = "fuzzufrag";
    m.ice_pwd = "fuzzfuzzfuzzfuzzfuzzfuzz";
    m.codecs = {1};
    return m;
  };

  Reader in{data, size};
  uint8_t op;
  while (in.get(&op)) {
    uint8_t a = 0, b = 0, c = 0, d = 0, e = 0;
    switch (op % 16) {
      case 0:
      case 2: {
        if (!in.get(&a) || !in.get(&b) || !in.get(&c)) return 0;
        const auto t = op % 16 == 0 ? signal::Type::kCallInvite : signal::Type::kCallAccept;
        ContextTestAccess::relay_message(*ctx, offer(t, w.calls[a % kCalls], b, c));
        break;
      }
      case 1: {
        if (!in.get(&a) || !in.get(&b)) return 0;
        signal::Message m = peer_message(signal::Type::kCallRinging, w.calls[a % kCalls]);
        m.stream_id = b;
        ContextTestAccess::relay_message(*ctx, m);
        break;
      }
      case 3:
      case 4:
      case 5: {
        if (!in.get(&a) || !in.get(&b) || !in.get(&c)) return 0;
        const signal::Type t = op % 16 == 3   ? signal::Type::kCallReject
                               : op % 16 == 4 ? signal::Type::kCallHangup
                                              : signal::Type::kError;
        signal::Message m = peer_message(t, w.calls[a % kCalls]);
        if (t == signal::Type::kError && (a & 0x80)) {
          m.call_id.reset();
          if (a & 0x40) m.room_id = w.rooms[a % kRooms];
        }
        m.error_code = -int(b % 48);
        const size_t len = std::min<size_t>(c % 17, in.n);
        m.text.assign(reinterpret_cast<const char *>(in.p), len);
        for (auto &ch : m.text) ch = char(ch & 0x7f);  // the codec admits UTF-8 only
        in.p += len;
        in.n -= len;
        ContextTestAccess::relay_message(*ctx, m);
        break;
      }
      case 6: {
        if (!in.get(&a) || !in.get(&b)) return 0;
        signal::Message m = peer_message(
            b & 1 ? signal::Type::kEndOfCandidates : signal::Type::kCandidate,
            w.calls[a % kCalls]);
        if (!(b & 1)) {
          ice::Candidate cand;
          cand.type = ice::CandidateType::kHost;
          SocketAddress::parse("127.0.0.1:9", &cand.address);
          cand.priority = ice::candidate_priority(cand.type, b);
          cand.foundation = ice::candidate_foundation(cand.type, cand.address, SocketAddress());
          m.candidates.push_back(cand);
        }
        ContextTestAccess::relay_message(*ctx, m);
        break;
      }
      case 7: {
        if (!in.get(&a) || !in.get(&b) || !in.get(&c) || !in.get(&d) || !in.get(&e)) return 0;
        static const signal::Type kTypes[] = {
            signal::Type::kQualityReport, signal::Type::kQualityDirective,
            signal::Type::kUpgradePropose, signal::Type::kUpgradeAck,
            signal::Type::kUpgradeConfirm};
        signal::Message m = peer_message(kTypes[b % 5], w.calls[a % kCalls]);
        if (a & 0x80) {
          m.call_id.reset();
          m.room_id = w.rooms[a % kRooms];
        }
        m.profile = uint8_t(c % 6);
        m.sequence = uint64_t(d) | (d & 0x80 ? uint64_t(1) << 63 : 0);
        m.media_timestamp = uint32_t(e) * 960;
        m.loss_permille = uint16_t(c) * 4;
        m.rtt_ms = d;
        m.jitter_ms = e;
        m.queue_ms = c;
        ContextTestAccess::relay_message(*ctx, m);
        break;
      }
      case 8: {
        if (!in.get(&a) || !in.get(&b) || !in.get(&c)) return 0;
        signal::Message m = peer_message(
            b & 1 ? signal::Type::kPathSwitchAck : signal::Type::kPathSwitchPropose,
            w.calls[a % kCalls]);
        m.sequence = c;
        m.path = signal::PathKind(b >> 1 & 1);
        ContextTestAccess::relay_message(*ctx, m);
        break;
      }
      case 9: {
        if (!in.get(&a) || !in.get(&b) || !in.get(&c)) return 0;
        signal::Message m;
        m.type = signal::Type::kRoomUpdate;
        m.room_id = w.rooms[a % kRooms];
        m.stream_id = b;
        for (int i = 0; i < c % 6; ++i) {
          uint8_t s;
          if (!in.get(&s)) return 0;
          signal::Member mb;
          mb.fingerprint = i == 0 ? w.me->fingerprint() : w.peer->fingerprint();
          mb.stream_id = s;
          m.members.push_back(mb);
        }
        ContextTestAccess::relay_message(*ctx, m);
        break;
      }
      case 10: {
        if (!in.get(&a) || !in.get(&b) || !in.get(&c)) return 0;
        uint8_t frame[media::kFrameHeaderSize + 255];
        media::FrameHeader h;
        h.stream_id = a;
        h.sequence = b;
        media::write_frame_header(h, frame);
        const size_t len = std::min<size_t>(c, in.n);
        std::memcpy(frame + media::kFrameHeaderSize, in.p, len);
        in.p += len;
        in.n -= len;
        ContextTestAccess::relay_datagram(*ctx, frame, media::kFrameHeaderSize + len);
        break;
      }
      case 11: {
        if (!in.get(&a) || !in.get(&b)) return 0;
        const signal::CallId &id = w.calls[a % kCalls];
        uint8_t frame[64 + media::kFrameOverhead];
        size_t n = 0;
        bool ready = false;
        ContextTestAccess::on_loop(*ctx, [&] {
          auto it = peer_calls.find(id);
          if (it == peer_calls.end()) return;
          PeerCall &pc = it->second;
          if (!pc.sealer_ready && pc.have_mine && pc.theirs) {
            media::CallKeys keys;
            const auto &caller = pc.peer_is_caller ? w.peer->fingerprint() : w.me->fingerprint();
            const auto &callee = pc.peer_is_caller ? w.me->fingerprint() : w.peer->fingerprint();
            if (media::derive_call_keys(pc.mine, *pc.theirs, pc.peer_is_caller, id, caller,
                                        callee, &keys) == kOk &&
                pc.sealer.init(keys.send.data(), 1) == kOk) {
              pc.sealer_ready = true;
            }
          }
          if (!pc.sealer_ready) return;
          media::FrameHeader h;
          h.stream_id = pc.stream;
          h.flags = b & 1 ? media::kFrameFlagVoice : 0;
          const uint8_t payload[8] = {b, 1, 2, 3, 4, 5, 6, 7};
          uint64_t index = 0;
          ready = pc.sealer.seal(h, payload, sizeof payload, frame, sizeof frame, &n, &index) ==
                  kOk;
        });
        if (ready) ContextTestAccess::relay_datagram(*ctx, frame, n);
        break;
      }
      case 12: {
        if (!in.get(&a)) return 0;
        ctx->start_call_with_id(w.peer->fingerprint(), w.calls[a % kCalls]);
        break;
      }
      case 13: {
        if (!in.get(&a) || !in.get(&b)) return 0;
        const signal::CallId &id = w.calls[a % kCalls];
        if (b % 3 == 0) ctx->accept(id);
        if (b % 3 == 1) ctx->reject(id);
        if (b % 3 == 2) ctx->hangup(id);
        break;
      }
      case 14: {
        if (!in.get(&a) || !in.get(&b)) return 0;
        if (b & 1) {
          ctx->leave_room(w.rooms[a % kRooms]);
        } else {
          ctx->join_room(w.rooms[a % kRooms]);
        }
        break;
      }
      case 15: {
        if (!in.get(&a)) return 0;
        const uint8_t payload[4] = {a, 0, 0, 1};
        ctx->send_media(w.calls[a % kCalls], 0, 0, payload, sizeof payload);
        break;
      }
    }
  }
  ctx.reset();
  return 0;
}

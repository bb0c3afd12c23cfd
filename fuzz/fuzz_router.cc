// libFuzzer target: the relay's Router, stateful. The input is a program for a few clients
// (two of them share an identity, so registrations get replaced): connect, register, invite,
// answer, hang up, resume calls (with a genuine proof, or a broken one), join and leave
// rooms, send raw bytes and media, stop reading, let time pass, close. The router talks to fake connections (relay::Link), whose closes arrive later
// like a QUIC close does.
//
// Invariants checked (abort on violation): every gauge stays within its limit, a client that
// stops reading never has more queued than its cap, and once every connection is closed no
// registration, call, room or room member is left (a phantom member is a leak of state).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "identity/identity.h"
#include "media/e2e_keys.h"
#include "media/frame_header.h"
#include "relay/router.h"
#include "signal/message.h"

namespace {

using parley::Timestamp;
using parley::relay::Link;
using parley::relay::Router;
using parley::signal::Message;
using parley::signal::Type;

constexpr int kLinks = 5;       // link i speaks for identity i % kIdentities
constexpr int kIdentities = 3;
constexpr int kIds = 4;         // call and room ids drawn from a small pool, so they collide
constexpr size_t kQueueCap = 2048;

struct FakeLink final : Link {
  parley::identity::Fingerprint fp;
  parley::SocketAddress addr;
  bool reading = true, closed = false;
  size_t queued = 0;
  std::vector<uint32_t> streams;  // stream ids the relay told this client about
  const parley::identity::Fingerprint &peer() const override { return fp; }
  parley::SocketAddress remote() const override { return addr; }
  int send_message(int64_t, const uint8_t *data, size_t len) override {
    if (closed) return parley::kErrClosed;
    if (!reading) {
      if (queued + 4 + len > kQueueCap) return parley::kErrQueueFull;
      queued += 4 + len;
      return parley::kOk;
    }
    Message m;
    if (parley::signal::decode(data, len, &m) != parley::kOk) std::abort();  // relay sent junk
    if (m.stream_id && streams.size() < 16) streams.push_back(*m.stream_id);
    return parley::kOk;
  }
  int send_datagram(const uint8_t *, size_t) override {
    return closed ? parley::kErrClosed : parley::kOk;
  }
  void close(uint64_t, const std::string &) override { closed = true; }
  parley::quic::PathStats stats() const override { return {}; }
};

struct Input {
  const uint8_t *p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
};

struct World {
  std::unique_ptr<Router> router;
  std::unique_ptr<FakeLink> links[kLinks];
  parley::identity::Fingerprint ids[kIdentities];
  // Real identities (fixed seeds): resumes carry proofs the router verifies.
  std::unique_ptr<parley::identity::Identity> keys[kIdentities];
  parley::signal::Id16 pool[kIds];
  Timestamp now = parley::kNanosPerSecond;

  World() {
    parley::relay::RouterLimits limits;
    limits.max_calls = 6;
    limits.max_calls_per_client = 2;
    limits.max_incoming_invites = 2;
    limits.max_rooms = 3;
    limits.max_room_size = 3;
    limits.max_rooms_per_client = 2;
    limits.ring_timeout_ms = 1000;
    limits.signal_rate = 200;
    limits.signal_burst = 60;
    limits.signal_byte_burst = 1 << 16;
    router = std::make_unique<Router>(limits);
    router->advance(now);
    for (int i = 0; i < kIdentities; ++i) {
      uint8_t seed[32];
      std::memset(seed, 0x10 + i, sizeof seed);
      if (parley::identity::Identity::from_seed(seed, sizeof seed, &keys[i]) != parley::kOk) {
        std::abort();
      }
      ids[i] = keys[i]->fingerprint();
    }
    for (int i = 0; i < kIds; ++i) std::memset(pool[i].bytes, 0x40 + i, 16);
  }

  void deliver(FakeLink *l, const Message &m) {
    std::vector<uint8_t> b;
    if (parley::signal::encode(m, &b) != parley::kOk) return;
    router->on_link_message(l, 0, b.data(), b.size());
  }

  void close_link(int i) {
    router->on_link_closed(links[i].get());
    links[i].reset();
  }

  void check() const {
    const parley::relay::RouterGauges g = router->gauges();
    const parley::relay::RouterLimits &lim = router->limits();
    if (g.calls > lim.max_calls || g.rooms > lim.max_rooms ||
        g.room_members > lim.max_rooms * lim.max_room_size || g.registered > kIdentities ||
        g.connections > kLinks) {
      std::abort();
    }
    for (const auto &l : links) {
      if (l && l->queued > kQueueCap) std::abort();
    }
  }

  void step(Input &in) {
    const uint8_t op = in.byte();
    const int i = in.byte() % kLinks;
    FakeLink *l = links[i].get();
    Message m;
    switch (op % 15) {
      case 0:  // connect
        if (!l) {
          links[i] = std::make_unique<FakeLink>();
          links[i]->fp = ids[i % kIdentities];
          parley::SocketAddress::parse("192.0.2.1:4000", &links[i]->addr);
          router->on_link_connected(links[i].get());
        }
        return;
      case 1:  // the client (or the network) closes
        if (l) close_link(i);
        return;
      case 2:
        if (!l) return;
        m.type = Type::kRegister;
        deliver(l, m);
        return;
      case 3: {  // invite
        if (!l) return;
        m.type = Type::kCallInvite;
        m.call_id = pool[in.byte() % kIds];
        m.from = in.byte() & 0x80 ? ids[(i + 1) % kIdentities] : l->fp;  // sometimes a spoof
        m.to = ids[in.byte() % kIdentities];
        m.ice_ufrag = "abcd";
        m.ice_pwd = "abcdefghijklmnopqrstuv";
        m.media_key.emplace();
        m.identity_key.emplace();
        m.codecs = {1};
        deliver(l, m);
        return;
      }
      case 4: {  // a call message: ringing, accept, reject, hangup, candidates, quality
        if (!l) return;
        static const Type kTypes[] = {Type::kCallRinging, Type::kCallAccept, Type::kCallReject,
                                      Type::kCallHangup, Type::kQualityReport,
                                      Type::kUpgradeAck};
        m.type = kTypes[in.byte() % 6];
        m.call_id = pool[in.byte() % kIds];
        m.from = l->fp;
        m.to = ids[in.byte() % kIdentities];
        m.loss_permille = 1;
        m.rtt_ms = 20;
        m.jitter_ms = 2;
        m.sequence = uint64_t(in.byte()) << 56;
        deliver(l, m);
        return;
      }
      case 5:
      case 6:  // room join / leave
        if (!l) return;
        m.type = op % 15 == 5 ? Type::kRoomJoin : Type::kRoomLeave;
        m.room_id = pool[in.byte() % kIds];
        deliver(l, m);
        return;
      case 7: {  // room quality report or ack
        if (!l) return;
        m.type = in.byte() & 1 ? Type::kQualityReport : Type::kUpgradeAck;
        m.room_id = pool[in.byte() % kIds];
        m.loss_permille = in.byte();
        m.rtt_ms = 30;
        m.jitter_ms = 3;
        m.sequence = in.byte();
        deliver(l, m);
        return;
      }
      case 8: {  // raw bytes as a signaling message
        if (!l) return;
        const size_t len = std::min<size_t>(in.byte(), in.n);
        router->on_link_message(l, 0, in.p, len);
        in.p += len;
        in.n -= len;
        return;
      }
      case 9: {  // a media frame on a stream the client heard of (or not)
        if (!l) return;
        uint8_t frame[64] = {};
        parley::media::FrameHeader h;
        const uint8_t pick = in.byte();
        h.stream_id = !l->streams.empty() && pick < 200 ? l->streams[pick % l->streams.size()]
                                                        : pick;
        h.sequence = in.byte();
        h.timestamp = in.byte();
        parley::media::write_frame_header(h, frame);
        router->on_link_datagram(l, frame, parley::media::kFrameHeaderSize + (in.byte() % 32));
        return;
      }
      case 10: {  // time passes
        now += Timestamp(in.byte()) * 20 * parley::kNanosPerMilli;
        router->advance(now);
        router->handle_timeouts();
        router->judge_tick();
        return;
      }
      case 11:  // the client stops (or resumes) reading
        if (l) l->reading = !l->reading;
        return;
      case 12:  // the closes the relay asked for complete
        for (int k = 0; k < kLinks; ++k) {
          if (links[k] && links[k]->closed) close_link(k);
        }
        return;
      case 13:  // the relay shuts down gracefully
        if (in.byte() == 0xff) router->stop_accepting();
        return;
      case 14: {  // a resume: the peer's signed key for this call as proof (bit 7: broken)
        if (!l) return;
        const uint8_t how = in.byte();
        const int peer = in.byte() % kIdentities;
        m.type = Type::kCallResume;
        m.call_id = pool[in.byte() % kIds];
        m.from = l->fp;
        m.to = ids[peer];
        m.stream_id = uint32_t(in.byte()) + 1;
        parley::media::LocalMediaKey key;
        const auto role = how & 1 ? parley::media::KeyRole::kCaller
                                  : parley::media::KeyRole::kCallee;
        if (parley::media::make_local_media_key(*keys[peer], *m.call_id, l->fp, role, 1, &key) !=
            parley::kOk) {
          std::abort();
        }
        m.media_key = key.signed_key;
        if (how & 0x80) m.media_key->signature[how & 63] ^= 1;
        m.identity_key.emplace();
        std::memcpy(m.identity_key->data(), keys[peer]->public_key(),
                    parley::identity::kPublicKeyLen);
        deliver(l, m);
        return;
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parley::log_set_level(parley::kLogOff);
  World w;
  Input in{data, size};
  for (int steps = 0; !in.empty() && steps < 4096; ++steps) {
    w.step(in);
    w.check();
  }
  for (int k = 0; k < kLinks; ++k) {
    if (w.links[k]) w.close_link(k);
  }
  const parley::relay::RouterGauges g = w.router->gauges();
  if (g.connections || g.registered || g.calls || g.calls_active || g.rooms || g.room_members) {
    std::abort();  // state outlived every connection
  }
  return 0;
}

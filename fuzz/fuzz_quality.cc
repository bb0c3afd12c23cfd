// libFuzzer target: the quality layer's message handlers as the peer (or a relay) drives them.
// One CallQuality (a call's participant and, on the direct path, its judge) gets the call's
// quality messages (quality-report, quality-directive, upgrade-propose/ack/confirm) through
// the signal codec, as the context hands them over, interleaved with ticks, clock steps and
// the peer's voice frames; next to it a relay-style judge (a quality::Controller over several
// links with an UpgradeRound) gets reports, acks, leaves and polls.
//
// Input: one config byte, then records until the input ends (a short last record is
// dropped). All integers big-endian.
//   config u8   bit 0: caller (judges and proposes on the direct path); bit 1: not adaptive;
//               bits 2-4: best profile (host cap, mod 5); bits 5-7: starting profile (mod 5)
//   record: op u8 (taken mod 8), then
//     0 clock      ms u16                      the clock advances
//     1 tick       path u8 | jitter u16 | window u16 | rtt u16 | queue u16 | signal_rtt u16
//     2 frame      step u8                     the peer's frame index advances by step
//                                              (0: a repeat) and on_frame sees it
//     3 voice      ts u32                      a voice frame of the peer (its timestamp)
//     4 message    type u8 | present u8 | sequence u64 | profile u8 | ts u32 | loss u16 |
//                  rtt u16 | jitter u16 | queue u16
//                  type is 12 + type % 5; `present` bits 0-7 say which of sequence, profile,
//                  ts, loss, rtt, jitter, queue (and bit 7: sequence is the relay's) are
//                  set; then encoded and decoded as the context would receive it
//                  (messages the codec refuses never reach the handler)
//     5 echo       --                          answers our own last upgrade-propose with
//                                              upgrade-ack of its profile (a peer that
//                                              accepts), to reach confirmed rounds
//     6 judge      sub u8 | link u8 | a u16 | b u16 | c u16
//                  sub % 6: report(link, loss=a, jitter=b, queue=c) / remove(link) /
//                  poll (a proposal starts a round awaiting links 0..link%8) /
//                  round ack(link, allowed=a%5) / round poll / upgrade_result(a&1)
//     7 pcm        frames u8                   pushes frames % 5 frames of 10 ms of silence
//                                              and encodes them (our timestamps move)
// The clock starts at 1000 ms and only moves forward.
//
// Checked: the profile stays on the ladder everywhere (CallQuality's stats, the voice
// channel, every `changed` report, the controllers); the participant's profile gets better
// only by an upgrade-confirm of a round it accepted or, as the judge, by the peer's ack of its
// own round, never better than its cap; a pinned (non-adaptive) call never changes; our
// proposals carry increasing sequence numbers and are ours alone (the caller's); a confirm
// only follows an ack; the judge's decisions are one rung up at a time, downgrades go down.
//
// corpus/quality/ seeds:
//   seed-caller-upgrade   the caller on a clean direct path with the peer's frames: reports
//                         every 250 ms until it proposes; the peer accepts (echo); then loss
//                         forces a downgrade
//   seed-callee-rounds    the callee: a proposal it accepts and its confirm, a directive, a
//                         round cancelled by a directive, a relay round, a stray ack
//   seed-judge            the relay-style judge: three links report clean conditions until it
//                         proposes; all ack, the round is confirmed; then a lossy link
//   seed-pinned           a non-adaptive call: a proposal (refused), a directive (ignored)
//   seed-downgrade-overtakes-round
//                         the judge proposes, a lossy link downgrades it past the proposal,
//                         then the round is confirmed (found by CI: it used to jump rungs)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "call/call_quality.h"
#include "call/voice_channel.h"
#include "quality/controller.h"
#include "quality/ladder.h"
#include "quality/round.h"
#include "signal/message.h"
#include "fuzz_support.h"

namespace {

using parley::fuzz::be;

using namespace parley;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  if (size < 1) return 0;
  const uint8_t cfg = data[0];
  const bool caller = cfg & 1;
  const bool adaptive = !(cfg & 2);
  const uint8_t n_profiles = uint8_t(quality::ladder_size());
  const uint8_t best = uint8_t(((cfg >> 2) & 7) % n_profiles);
  const uint8_t start = uint8_t(((cfg >> 5) & 7) % n_profiles);

  call::AudioConfig ac;
  ac.profile = start;
  ac.best_profile = best;
  ac.adaptive = adaptive;
  std::shared_ptr<call::VoiceChannel> voice;
  if (call::VoiceChannel::create(ac, &voice) != kOk) std::abort();
  voice->start([](uint32_t, uint8_t, const uint8_t *, size_t) {});

  // What the harness knows of the conversation.
  std::vector<signal::Message> sent;
  bool upgrade_allowed = false;  // inside a handler that may upgrade (confirm, or ack)
  uint64_t last_proposal = 0;
  bool acked_since_proposal = false;
  call::CallQuality::Io io;
  io.send = [&](signal::Message &m) {
    std::vector<uint8_t> bytes;
    // Everything we send must pass the codec (the context adds the call id).
    m.call_id = signal::CallId{};
    CHECK(signal::encode(m, &bytes) == kOk);
    if (m.type == signal::Type::kUpgradePropose) {
      CHECK(caller && adaptive);
      CHECK(*m.sequence > last_proposal && (*m.sequence & call::kRelayRoundBit) == 0);
      CHECK(*m.profile < n_profiles && *m.profile >= best);
      last_proposal = *m.sequence;
      acked_since_proposal = false;
    }
    if (m.type == signal::Type::kUpgradeConfirm) {
      CHECK(acked_since_proposal && *m.sequence == last_proposal);
    }
    if (m.profile) CHECK(*m.profile < n_profiles);
    sent.push_back(m);
    return kOk;
  };
  io.changed = [&](uint8_t from, uint8_t to, quality::Reason, uint32_t) {
    CHECK(adaptive);
    CHECK(from < n_profiles && to < n_profiles);
    if (to < from) CHECK(upgrade_allowed && to >= best);
  };
  call::CallQuality q(caller, voice.get(), best, adaptive, io);

  quality::ControllerConfig jc;
  jc.best_profile = best;
  quality::Controller judge(jc, start);
  quality::UpgradeRound round;
  uint64_t round_seq = call::kRelayRoundBit;

  int64_t now_ms = 1000;
  uint64_t frame_index = 0;
  std::vector<int16_t> pcm(480);
  size_t pos = 1;
  while (pos < size) {
    const uint8_t op = data[pos++] % 8;
    const uint8_t *p = data + pos;
    const size_t left = size - pos;
    switch (op) {
      case 0:
        if (left < 2) return 0;
        now_ms += be(p, 2);
        pos += 2;
        break;
      case 1: {
        if (left < 11) return 0;
        call::QualityInputs in;
        in.path = p[0] & 1 ? path::Path::kDirect : path::Path::kRelay;
        in.jitter_ms = be(p + 1, 2);
        in.jitter_window_ms = be(p + 3, 2);
        in.rtt_ms = be(p + 5, 2);
        in.queue_ms = be(p + 7, 2);
        in.signal_rtt_ms = be(p + 9, 2);
        pos += 11;
        q.tick(in, now_ms);
        break;
      }
      case 2:
        if (left < 1) return 0;
        frame_index += p[0];
        pos += 1;
        q.on_frame(frame_index, now_ms);
        break;
      case 3: {
        if (left < 4) return 0;
        const uint8_t payload[8] = {};
        voice->on_voice_frame(be(p, 4), payload, sizeof payload, now_ms * 1000);
        pos += 4;
        break;
      }
      case 4: {
        if (left < 23) return 0;
        signal::Message m;
        m.type = signal::Type(12 + p[0] % 5);
        const uint8_t present = p[1];
        m.call_id = signal::CallId{};
        uint64_t seq = uint64_t(be(p + 2, 4)) << 32 | be(p + 6, 4);
        if (present & 0x80) seq |= call::kRelayRoundBit;
        if (present & 1) m.sequence = seq;
        if (present & 2) m.profile = p[10];
        if (present & 4) m.media_timestamp = be(p + 11, 4);
        if (present & 8) m.loss_permille = uint16_t(be(p + 15, 2));
        if (present & 16) m.rtt_ms = be(p + 17, 2);
        if (present & 32) m.jitter_ms = be(p + 19, 2);
        if (present & 64) m.queue_ms = be(p + 21, 2);
        pos += 23;
        std::vector<uint8_t> bytes;
        if (signal::encode(m, &bytes) != kOk) break;
        signal::Message d;
        if (signal::decode(bytes.data(), bytes.size(), &d) != kOk) std::abort();
        if (d.type == signal::Type::kUpgradeAck && d.sequence && *d.sequence == last_proposal) {
          acked_since_proposal = true;
        }
        upgrade_allowed =
            d.type == signal::Type::kUpgradeConfirm || d.type == signal::Type::kUpgradeAck;
        q.on_message(d, now_ms);
        upgrade_allowed = false;
        break;
      }
      case 5: {
        if (last_proposal == 0) break;
        signal::Message a;
        a.type = signal::Type::kUpgradeAck;
        a.call_id = signal::CallId{};
        a.sequence = last_proposal;
        for (const signal::Message &s : sent) {
          if (s.type == signal::Type::kUpgradePropose && *s.sequence == last_proposal) {
            a.profile = *s.profile;
          }
        }
        acked_since_proposal = true;
        upgrade_allowed = true;
        q.on_message(a, now_ms);
        upgrade_allowed = false;
        break;
      }
      case 6: {
        if (left < 8) return 0;
        const uint8_t sub = p[0] % 6;
        const int link = p[1] % quality::kMaxLinks;
        const uint32_t a = be(p + 2, 2), b = be(p + 4, 2), c = be(p + 6, 2);
        pos += 8;
        const uint8_t before = judge.profile();
        if (sub == 0) {
          quality::LinkReport r;
          r.loss_permille = uint16_t(a);
          r.jitter_ms = b;
          r.queue_ms = c;
          judge.report(link, r, now_ms);
        } else if (sub == 1) {
          judge.remove(link);
          round.remove(link);
        } else if (sub == 2) {
          const bool was_in_flight = judge.upgrade_in_flight();
          const quality::Decision d = judge.poll(now_ms);
          if (d.action == quality::Action::kDowngrade) {
            CHECK(d.profile > before && d.profile < n_profiles && judge.profile() == d.profile);
          } else if (d.action == quality::Action::kProposeUpgrade) {
            CHECK(!was_in_flight && d.profile + 1 == before && d.profile >= best);
            CHECK(judge.profile() == before);
            int links[8];
            const size_t n = size_t(link % 8) + 1;
            for (size_t i = 0; i < n; ++i) links[i] = int(i);
            round.start(++round_seq, d.profile, links, n, now_ms + 2000);
          } else {
            CHECK(judge.profile() == before);
          }
        } else if (sub == 3) {
          round.on_ack(round.sequence(), link, uint8_t(a % n_profiles));
        } else if (sub == 4) {
          const quality::RoundState s = round.poll(now_ms);
          if (s == quality::RoundState::kConfirmed || s == quality::RoundState::kCancelled) {
            const bool ok = s == quality::RoundState::kConfirmed;
            judge.upgrade_result(ok, now_ms);
            CHECK(judge.profile() >= before - (ok ? 1 : 0));
            CHECK(round.state() == quality::RoundState::kIdle);
          }
        } else {
          judge.upgrade_result(a & 1, now_ms);
          CHECK(judge.profile() + 1 >= before);
        }
        CHECK(judge.profile() < n_profiles);
        CHECK(judge.allows_entering_all(now_ms) < n_profiles);
        break;
      }
      case 7: {
        if (left < 1) return 0;
        const size_t frames = p[0] % 5;  // opus encoding is what costs here
        pos += 1;
        for (size_t i = 0; i < frames; ++i) voice->push(pcm.data(), pcm.size());
        voice->encode_ready(now_ms * 1000);
        break;
      }
    }
    CHECK(q.stats().profile < n_profiles);
    CHECK(q.stats().profile == voice->profile());
    CHECK(q.controller().profile() < n_profiles);
    if (!adaptive) CHECK(voice->profile() == start && q.stats().changes == 0);
  }
  return 0;
}

// Adaptive quality of one call, as a participant and, on the direct path, as a judge
// (docs/design.md "Quality"; docs/quality.md has the protocol). Runs on the context's loop
// thread and does no I/O of its own: the context feeds it frame indices, a tick with the
// path's numbers, and the call's quality messages, and it sends through `Io::send`.
//
// Every tick (250 ms) it measures what it receives (loss over the last second, the jitter
// buffer's arrival jitter, the path's RTT and standing queue) and sends that as a
// quality-report; the relay forwards it to the peer and, while the call's media goes through
// it, judges from it.
//
// Judging: on the direct path both peers judge. Either downgrades at once (its own view or
// the peer's report crossing a limit) and announces it with a quality-directive; the peer
// follows at once. Only the caller proposes upgrades: upgrade-propose with the media
// timestamp (in the peer's own timestamps) at which the peer switches; the peer answers
// upgrade-ack with the best profile it allows; on acceptance the caller sends
// upgrade-confirm and both switch at their agreed timestamps, which fall on the same
// instant; a refusal or 2 s without an answer cancels (quality-directive with the round's
// sequence and the profile in force). On the relay path the relay judges (sequence numbers
// >= 2^63 are its rounds); this side only reports and follows. The profile survives path
// switches: whoever judges next starts from the one in force.
#ifndef PARLEY_CALL_CALL_QUALITY_H
#define PARLEY_CALL_CALL_QUALITY_H

#include <cstdint>
#include <functional>

#include "call/voice_channel.h"
#include "path/manager.h"
#include "quality/controller.h"
#include "quality/loss_meter.h"
#include "signal/message.h"

namespace parley::call {

// Sequence numbers of the relay's upgrade rounds have this bit set; a peer's never do.
constexpr uint64_t kRelayRoundBit = uint64_t(1) << 63;
constexpr int64_t kQualityTickMs = 250;

struct QualityInputs {
  path::Path path = path::Path::kRelay;
  uint32_t jitter_ms = 0;     // the jitter buffer's arrival jitter
  uint32_t jitter_window_ms = 0;  // how long its window has been filling (settling below 3 s)
  uint32_t rtt_ms = 0;        // of the media path in use
  uint32_t queue_ms = 0;      // its smoothed RTT minus its minimum RTT
  uint32_t signal_rtt_ms = 0; // of the relay connection (signaling takes it)
};

struct QualityStats {
  uint8_t profile = 0;
  uint64_t changes = 0;
  quality::Reason last_reason = quality::Reason::kNone;
  uint16_t loss_permille = 0;  // what the last report said
  uint64_t late_switches = 0;  // a confirm that arrived after its timestamp had passed
  uint64_t proposed = 0;       // upgrade rounds we started (the judge of a direct call)
  uint64_t refused = 0;        // ... that the peer refused
  uint64_t refusals_sent = 0;  // proposals (the peer's or the relay's) we refused
};

class CallQuality {
 public:
  struct Io {
    // Sends a call-scoped message (the context sets the call id). kOk or an error.
    std::function<int(signal::Message &m)> send;
    // Our sending profile changed (or will, at media timestamp `at_ts` of ours).
    std::function<void(uint8_t from, uint8_t to, quality::Reason why, uint32_t at_ts)> changed;
  };
  // `best` is the best profile this side will ever send or accept (the host's cap);
  // `adaptive` false pins the profile (reports only; directives ignored, proposals refused).
  CallQuality(bool caller, VoiceChannel *voice, uint8_t best, bool adaptive, Io io);

  void on_frame(uint64_t index, int64_t now_ms) { loss_.on_frame(index, now_ms); }
  void tick(const QualityInputs &in, int64_t now_ms);
  void on_message(const signal::Message &m, int64_t now_ms);

  QualityStats stats() const { return st_; }
  const quality::Controller &controller() const { return ctl_; }

 private:
  void set_now(uint8_t profile, quality::Reason why);
  // An agreed upgrade: our sending switches at our media timestamp `at_ts`.
  void schedule(uint8_t profile, uint32_t at_ts);
  void cancel_round(int64_t now_ms);

  bool adaptive_;
  VoiceChannel *voice_;
  uint8_t best_;
  Io io_;
  quality::Controller ctl_;
  quality::LossMeter loss_;
  quality::LinkReport local_;
  int64_t local_at_ms_ = INT64_MIN / 2;
  path::Path path_ = path::Path::kRelay;
  QualityStats st_;
  // Our round as the judge of a direct call.
  struct Round {
    bool active = false;
    uint64_t sequence = 0;
    uint8_t profile = 0;
    uint32_t ts_self = 0, ts_peer = 0;
    int64_t deadline_ms = 0;
  } round_;
  uint64_t next_sequence_ = 1;
  // A proposal we accepted, waiting for its confirm.
  struct Pending {
    bool active = false;
    uint64_t sequence = 0;
    uint8_t profile = 0;
    uint32_t ts = 0;
  } pending_;
};

}  // namespace parley::call

#endif

// The relay as quality judge of one relayed call or room (docs/design.md "Quality": on
// relayed calls and rooms the relay decides). Sans-I/O: the router feeds it what it sees —
// every forwarded frame's header, each participant's quality reports, its own QUIC numbers
// of each participant's connection — with the time, and sends what tick() returns.
//
// A participant's link is the worst of: its uplink loss (gaps in the sequence numbers of
// the frames it sends us), its report (what it receives: loss, jitter, its own queue), and
// our connection to it (standing queue = smoothed RTT - min RTT, DATAGRAM loss). The judge
// acts only while media flows through the relay (a frame in the last second): on a direct
// call the peers judge themselves.
//
// Downgrades go to everyone at once (quality-directive). Upgrades are rounds: propose to
// everyone (each with a switch timestamp in its own media clock, from the newest timestamp
// it sent, aligned to its frame grid), every participant acks with the best profile it
// allows, confirm when all accept; any refusal or a 2 s timeout cancels it for everyone
// (quality-directive with the round's sequence and the profile in force). Round sequence
// numbers have bit 63 set, so clients tell the relay's rounds from a peer's.
#ifndef PARLEY_RELAY_JUDGE_H
#define PARLEY_RELAY_JUDGE_H

#include <cstdint>
#include <vector>

#include "quality/controller.h"
#include "quality/loss_meter.h"
#include "quality/round.h"
#include "signal/message.h"

namespace parley::relay {

class Judge {
 public:
  struct Out {
    int link;            // the participant to send it to
    signal::Message m;   // without its call or room id (the router adds it)
  };
  struct Stats {
    uint64_t directives = 0, proposals = 0, confirmed = 0, cancelled = 0;
  };

  // `links`: how many participants to make room for now (a call: 2); add_link() grows it.
  // Everything a frame touches is allocated here or in add_link(), never per packet.
  Judge(uint8_t profile, size_t links);
  // Room for participant `link` (< quality::kMaxLinks): call before its first frame.
  void add_link(int link);

  // A frame from `link`, forwarded (header fields).
  void on_frame(int link, uint32_t sequence, uint32_t ts48, uint8_t profile, int64_t now_ms);
  // The participant's quality-report (what it receives).
  void on_report(int link, const signal::Message &m, int64_t now_ms);
  // Our connection to the participant: called on every tick with its QUIC numbers.
  void on_transport(int link, uint32_t rtt_ms, uint32_t queue_ms, uint64_t datagrams_acked,
                    uint64_t datagrams_lost, int64_t now_ms);
  // The participant's upgrade-ack.
  void on_ack(int link, const signal::Message &m);
  void remove(int link);
  // Decides; appends what to send to `out`.
  void tick(int64_t now_ms, std::vector<Out> *out);

  uint8_t profile() const { return ctl_.profile(); }
  Stats stats() const { return st_; }

 private:
  struct Link {
    bool used = false;
    quality::LossMeter uplink;
    quality::SequenceExtender seq;  // of its frames
    uint32_t last_ts = 0;      // its newest frame's timestamp and when it came
    int64_t last_ts_ms = 0;
    uint32_t frame_ts = 960;   // its frame length (48 kHz units), from timestamp steps
    uint8_t sent_profile = 0;  // the profile its frames say
    uint16_t report_loss = 0;  // its latest quality-report
    uint32_t report_jitter = 0, report_queue = 0;
    int64_t report_ms = INT64_MIN / 2;
    uint32_t rtt_ms = 0, queue_ms = 0;
    uint64_t acked = 0, lost = 0;  // at the previous tick
    uint16_t transport_loss = 0;
    int64_t transport_ms = INT64_MIN / 2;
  };
  bool media_flowing(int64_t now_ms) const;

  quality::Controller ctl_;
  quality::UpgradeRound round_;
  Link *slot(int i) { return i >= 0 && size_t(i) < links_.size() ? &links_[size_t(i)] : nullptr; }
  std::vector<Link> links_;
  int64_t last_media_ms_ = INT64_MIN / 2;
  bool flowing_ = false;  // media flowed at the previous tick
  uint32_t round_ts_[quality::kMaxLinks] = {};  // each participant's switch timestamp
  uint64_t next_sequence_;
  uint8_t in_force_;
  Stats st_;
};

}  // namespace parley::relay

#endif

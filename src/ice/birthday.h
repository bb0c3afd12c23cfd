// Birthday probing, sans-I/O: how an endpoint-independent NAT (the easy side) and an
// address-dependent NAT that picks ports at random (the hard side) still meet directly.
//
// The hard side cannot tell anyone which port its NAT will give a flow toward the peer, so it
// makes many: it opens kBirthdayPorts extra sockets, each of which sends one probe to the easy
// side's public address (opening a mapping toward it at some random public port; the easy
// side's NAT drops the probe). The easy side sends probes to distinct random ports of the hard
// side's public address (each opening its own NAT's filter toward that port). A probe that
// lands on one of the hard side's open mappings reaches its socket, and the two go on with
// ordinary ICE checks through that socket (the meeting of two random sets, as in the birthday
// problem: 256 open ports and 1024 probes into 64,512 meet with probability 98.3 %).
//
// Probes are small STUN Binding requests made by the call's ICE agent (Agent::write_probe):
// never QUIC, and answered by the peer's agent as ordinary checks. Only while a call's direct
// attempt is open, only toward the address the peer signaled, bounded in count per attempt and
// in rate (docs/security.md "Packets toward addresses we were told about").
#ifndef PARLEY_ICE_BIRTHDAY_H
#define PARLEY_ICE_BIRTHDAY_H

#include <cstdint>
#include <vector>

#include "base/address.h"
#include "base/clock.h"
#include "ice/nat_behavior.h"

namespace parley::ice {

// Extra sockets the hard side opens (Tailscale's figure: few enough for any OS's descriptor
// limits, many enough that ~1,000 probes meet one almost surely).
constexpr int kBirthdayPorts = 256;
// The easy side's probes per attempt, and their pace (all of them toward one address).
constexpr uint32_t kBirthdayProbes = 1024;
constexpr uint32_t kBirthdayProbeIntervalUs = 5000;
// The hard side's probes, one per socket, paced too.
constexpr uint32_t kBirthdayOpenIntervalUs = 2000;
// Ports probed: the dynamic range NATs allocate from.
constexpr uint16_t kBirthdayFirstPort = 1024;
// The easy side starts probing this long after its attempt starts: the hard side opens its
// sockets over about half a second, and a probe to a port not open yet is lost.
constexpr uint32_t kBirthdayEasyDelayMs = 250;
// After the last probe is due: time for its answer and the checks it triggers.
constexpr uint32_t kBirthdayGraceMs = 1000;
// How long a birthday round lasts from its start, on either side (the hard side keeps its
// sockets open until the easy side's last probe could have arrived).
constexpr uint32_t kBirthdayRoundMs = kBirthdayEasyDelayMs +
                                      kBirthdayProbes * kBirthdayProbeIntervalUs / 1000 +
                                      kBirthdayGraceMs;

enum class BirthdayRole : uint8_t {
  kNone = 0,
  kHard = 1,  // we open the sockets
  kEasy = 2,  // we send the probes
};
const char *birthday_role_name(BirthdayRole r);  // "none", "hard", "easy"

// Our role given our NAT and what the peer signaled of its NAT: hard when ours is
// address-dependent with random ports and the peer's is not known to be address-dependent;
// easy the other way round. kNone for any other pair (two hard NATs cannot meet this way; a
// sequential one is predicted instead: predicted_candidates).
BirthdayRole birthday_role(const NatBehavior &ours, NatMapping peer_mapping,
                           PortAllocation peer_allocation);

// One side's schedule of probes for one attempt: `count` destinations handed out one per
// `interval_us` from `start`; a caller that polls late gets one probe, not the overdue ones,
// so any second holds at most 1 s / interval + 1 probes however late the caller polls. The easy side's destinations are distinct random ports of
// `target`'s IP; the hard side's are `target` itself, once per socket (the caller sends the
// k-th from its k-th socket).
class BirthdaySchedule {
 public:
  // `seed` draws the easy side's ports (random in production, fixed in tests).
  BirthdaySchedule(BirthdayRole role, const SocketAddress &target, uint32_t count,
                   uint32_t interval_us, Timestamp start, uint64_t seed);
  // The next probe due at `now`: true with its destination and its number (0, 1, ...).
  bool poll(Timestamp now, SocketAddress *to, uint32_t *number);
  // When the next probe is due; 0 once all were handed out (or after stop()).
  Timestamp next_deadline() const;
  // No more probes (a probe met, or the attempt ended).
  void stop() { stopped_ = true; }
  uint32_t sent() const { return sent_; }
  BirthdayRole role() const { return role_; }

 private:
  uint16_t next_port();

  BirthdayRole role_;
  SocketAddress target_;
  uint32_t count_;
  Timestamp interval_;
  Timestamp next_;  // when the next probe is due
  uint32_t sent_ = 0;
  bool stopped_ = false;
  uint64_t rng_;
  std::vector<bool> used_;  // ports already probed (easy side)
};

}  // namespace parley::ice

#endif

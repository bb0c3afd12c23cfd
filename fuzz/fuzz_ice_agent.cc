// libFuzzer target: one ICE agent (ice/agent.h) with authenticated traffic. The harness
// holds both passwords, so the checks and answers it builds from the input pass
// MESSAGE-INTEGRITY and FINGERPRINT and reach the agent's state machine, not just its parser:
// Binding requests from the peer (any role, tie-breaker, priority, nomination, unknown
// attributes, some with a wrong key), answers to the transactions the agent really started
// (success with any mapped address, 487/400/other errors, from the right or a wrong source),
// raw datagrams, trickled candidates, end of candidates and the clock.
//
// Input: one config byte, then records until the input ends (a short last record is
// dropped). Integers big-endian. Addresses are `a` u8: a % 12 picks one of ten fixed peer
// addresses (IPv4 and IPv6), our own host or srflx address.
//   config u8   bit 0: controlling; bit 1: an IPv6 host candidate too; bit 2: a srflx
//               candidate too; bit 3: remote credentials are set only by op 8; bits 4-7: a
//               tie-breaker nibble (the rest fixed)
//   record: op u8 (taken mod 10), then
//     0 clock      ms u16
//     1 poll       --                    everything due now is taken from poll_transmit
//     2 timer      --                    the clock jumps to next_deadline() (if later),
//                                        handle_timeout runs, then everything due is taken
//     3 candidate  a u8 | type u8 | prio u32 | component u8   (trickled; type % 4)
//     4 end        --                    end_of_remote_candidates
//     5 request    a u8 | flags u8 | prio u32 | tie u64 | txid byte u8
//                  flags: bit 0 ICE-CONTROLLING, bit 1 ICE-CONTROLLED, bit 2 USE-CANDIDATE,
//                  bit 3 no PRIORITY, bit 4 a comprehension-required unknown attribute,
//                  bit 5 wrong key, bit 6 another ufrag, bit 7 no FINGERPRINT
//     6 response   which u8 | kind u8 | a u8 | mapped u8
//                  answers the which % n-th of the last requests the agent sent;
//                  kind % 8: 0-3 success with XOR-MAPPED-ADDRESS `mapped`, 4 success without
//                  it, 5 error 487, 6 error 400, 7 success with a wrong key; kind bit 3:
//                  from `a` instead of where the request went; bit 4: repeat it (a duplicate)
//     7 raw        a u8 | len u8 | bytes
//     8 creds      which u8              set_remote_credentials: the right ones, or (odd,
//                                        once they are set) different ones: refused
//     9 local      a u8 | type u8        add_local_candidate (host or srflx of `a`)
// The clock starts at 1 s and only moves forward.
//
// Checked: checks are paced (no request less than Ta after the previous one) and only go
// to addresses the agent knows as the peer's; every answer goes to where a request came from
// and answers one authenticated request the agent was given (no reflection, no amplification:
// answers never outnumber requests and each is small), a success naming that source; once a
// pair is selected, requests go to it alone, and none once consent is lost; remote candidates and pairs stay
// within their caps; kSelected comes at most once and kFailed only at the end; after
// handle_timeout and draining at `now`, next_deadline() is not already due (no timer spin);
// a datagram the agent declines leaves its counters alone.
//
// corpus/ice_agent/ seeds:
//   seed-controlling-selects     controlling with a srflx candidate: checks answered, the
//                                nomination answered (selected), consent checks, consent lost
//   seed-controlled-peer-checks  controlled: the peer's checks (nominating, role conflict,
//                                unknown attribute, no PRIORITY, wrong key), answers of 487
//                                and 400, a raw STUN header
//   seed-all-fail                credentials only later; candidates of every kind; end of
//                                candidates; no answers until every pair fails
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "ice/agent.h"
#include "stun/message.h"
#include "fuzz_support.h"

namespace {

using parley::fuzz::be;

using namespace parley;
using namespace parley::ice;

constexpr Timestamp kMs = kNanosPerMilli;
const char kLocalUfrag[] = "LoCa";
const char kLocalPwd[] = "localpasswordlocalpass";  // 22 ice-chars
const char kRemoteUfrag[] = "ReMo";
const char kRemotePwd[] = "remotepasswordremotepw";

const char *const kAddrs[] = {
    "192.0.2.1:6000",    "192.0.2.2:6001",  "198.51.100.7:7000", "203.0.113.5:40000",
    "10.0.0.9:5001",     "192.0.2.1:6002",  "[2001:db8::1]:6000", "[2001:db8::2]:6002",
    "[2001:db8::3]:1",   "100.64.0.1:3478", "10.0.0.1:5000",     "198.51.100.200:5000",
};
constexpr size_t kNumAddrs = sizeof kAddrs / sizeof kAddrs[0];

struct Harness {
  Agent *agent;
  Timestamp now = 1000 * kMs;
  Timestamp last_request = 0;
  size_t requests = 0;  // requests sent so far
  struct Sent {
    stun::TransactionId txid;
    SocketAddress to;
  };
  std::deque<Sent> sent;  // the agent's latest requests
  struct Got {
    stun::TransactionId txid;
    SocketAddress from;
  };
  std::deque<Got> delivered;  // authenticated requests we gave it, newest last
  uint64_t answers = 0;
  bool selected = false, failed = false;
  bool creds_set = false;
  SocketAddress addrs[kNumAddrs];
};

SocketAddress addr(const Harness &h, uint8_t a) { return h.addrs[a % kNumAddrs]; }

void drain(Harness &h) {
  Datagram d;
  while (h.agent->poll_transmit(h.now, &d)) {
    CHECK(!h.failed);
    stun::Message m;
    CHECK(stun::Message::parse(d.data, d.len, &m) == kOk);
    CHECK(m.method() == stun::kBinding);
    if (m.message_class() == stun::kRequest) {
      // Pacing: one request per Ta over the whole agent, after the first burst.
      CHECK(h.requests < AgentConfig().burst || h.now - h.last_request >= 20 * kMs);
      ++h.requests;
      h.last_request = h.now;
      CHECK(h.agent->knows_remote(d.to));
      // Once selected only consent checks go out, on the selected pair; none once lost.
      PairInfo sel;
      if (h.agent->selected_pair(&sel)) CHECK(d.to == sel.remote);
      CHECK(!h.agent->consent_lost());
      CHECK(m.check_integrity(reinterpret_cast<const uint8_t *>(kRemotePwd),
                              sizeof kRemotePwd - 1) == kOk);
      h.sent.push_back({m.transaction_id(), d.to});
      if (h.sent.size() > 16) h.sent.pop_front();
    } else {
      // An answer: to a request we delivered, where it came from; small.
      CHECK(d.len <= 128);
      bool found = false;
      for (const Harness::Got &g : h.delivered) {
        found |= g.txid == m.transaction_id() && g.from == d.to;
      }
      CHECK(found);
      if (m.message_class() == stun::kSuccessResponse) {
        SocketAddress mapped;
        CHECK(m.xor_address(stun::kAttrXorMappedAddress, &mapped) == kOk && mapped == d.to);
      }
      ++h.answers;
      CHECK(h.answers <= h.agent->stats().requests_received);
    }
  }
  AgentEvent e;
  while (h.agent->poll_event(&e)) {
    if (e.type == AgentEventType::kSelected) {
      CHECK(!h.selected && !h.failed);
      h.selected = true;
      CHECK(h.agent->selected());
      CHECK(h.agent->knows_remote(e.pair.remote));
    } else if (e.type == AgentEventType::kFailed) {
      CHECK(!h.selected && !h.failed);
      h.failed = true;
    } else if (e.type == AgentEventType::kPairValid || e.type == AgentEventType::kConsentLost) {
      CHECK(h.agent->knows_remote(e.pair.remote));
    }
  }
  CHECK(h.agent->remote_candidate_count() <= kMaxRemoteCandidates);
  CHECK(h.agent->pair_count() <= kMaxPairs);
  CHECK(h.selected == h.agent->selected() && h.failed == h.agent->failed());
}

// Offers `data`; a declined datagram must leave the agent's counters alone.
void offer(Harness &h, const uint8_t *data, size_t len, const SocketAddress &from) {
  const AgentStats before = h.agent->stats();
  const size_t remotes = h.agent->remote_candidate_count();
  if (!h.agent->handle_datagram(data, len, from, h.now)) {
    const AgentStats after = h.agent->stats();
    CHECK(std::memcmp(&before, &after, sizeof before) == 0);
    CHECK(remotes == h.agent->remote_candidate_count());
  }
}

stun::TransactionId txid_from(uint8_t b, uint64_t salt) {
  stun::TransactionId t;
  for (size_t i = 0; i < sizeof t.bytes; ++i) t.bytes[i] = uint8_t(b + i * 7 + (salt >> (i % 8)));
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  log_set_level(kLogOff);
  if (size < 1) return 0;
  const uint8_t cfg = data[0];
  Harness h;
  for (size_t i = 0; i < kNumAddrs; ++i) {
    if (SocketAddress::parse(kAddrs[i], &h.addrs[i]) != kOk) std::abort();
  }
  AgentConfig ac;
  ac.controlling = cfg & 1;
  ac.tie_breaker = 0x8000000000000000ull | uint64_t(cfg >> 4) << 56 | 0x1234;
  ac.local_ufrag = kLocalUfrag;
  ac.local_pwd = kLocalPwd;
  Agent agent(ac, h.now);
  h.agent = &agent;
  Candidate host;
  host.address = h.addrs[10];
  host.priority = candidate_priority(CandidateType::kHost, 65535);
  host.foundation = "1";
  agent.add_local_candidate(host);
  if (cfg & 2) {
    Candidate h6 = host;
    SocketAddress::parse("[2001:db8::aa]:5000", &h6.address);
    h6.priority = candidate_priority(CandidateType::kHost, 65000);
    h6.foundation = "2";
    agent.add_local_candidate(h6);
  }
  if (cfg & 4) {
    Candidate s;
    s.type = CandidateType::kServerReflexive;
    s.address = h.addrs[11];
    s.related = h.addrs[10];
    s.priority = candidate_priority(CandidateType::kServerReflexive, 65535);
    s.foundation = "3";
    agent.add_local_candidate(s);
  }
  if (!(cfg & 8)) {
    CHECK(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd) == kOk);
    h.creds_set = true;
  }

  uint64_t salt = 0;
  size_t pos = 1;
  while (pos < size) {
    const uint8_t op = data[pos++] % 10;
    const uint8_t *p = data + pos;
    const size_t left = size - pos;
    switch (op) {
      case 0:
        if (left < 2) return 0;
        h.now += be(p, 2) * kMs;
        pos += 2;
        break;
      case 1:
        drain(h);
        break;
      case 2: {
        const Timestamp d = agent.next_deadline();
        if (d > h.now) h.now = d;
        agent.handle_timeout(h.now);
        drain(h);
        // Everything due at `now` was done: the timer must not fire again at once.
        const Timestamp again = agent.next_deadline();
        CHECK(again == 0 || again > h.now);
        break;
      }
      case 3: {
        if (left < 7) return 0;
        Candidate c;
        c.address = addr(h, p[0]);
        c.type = CandidateType(p[1] % 4);
        c.priority = uint32_t(be(p + 2, 4));
        c.component = p[6] % 3;
        c.foundation = std::to_string(p[1]);
        pos += 7;
        const int r = agent.add_remote_candidate(c, h.now);
        CHECK(r == kOk || r == kErrInvalidArgument || r == kErrLimitReached);
        break;
      }
      case 4:
        agent.end_of_remote_candidates(h.now);
        break;
      case 5: {
        if (left < 15) return 0;
        const SocketAddress from = addr(h, p[0]);
        const uint8_t flags = p[1];
        const uint32_t prio = uint32_t(be(p + 2, 4));
        const uint64_t tie = be(p + 6, 8);
        const stun::TransactionId id = txid_from(p[14], ++salt);
        pos += 15;
        uint8_t buf[512];
        stun::MessageBuilder b(buf, sizeof buf);
        b.start(stun::kBinding, stun::kRequest, id);
        b.add_string(stun::kAttrUsername, std::string(flags & 0x40 ? "Othr" : kLocalUfrag) + ":" +
                                              kRemoteUfrag);
        if (!(flags & 8)) b.add_u32(stun::kAttrPriority, prio);
        if (flags & 1) b.add_u64(stun::kAttrIceControlling, tie);
        if (flags & 2) b.add_u64(stun::kAttrIceControlled, tie);
        if (flags & 4) b.add_flag(stun::kAttrUseCandidate);
        if (flags & 16) b.add_u32(0x0031, prio);  // comprehension-required, unknown
        const char *key = flags & 32 ? kRemotePwd : kLocalPwd;
        b.add_message_integrity(reinterpret_cast<const uint8_t *>(key), 22);
        if (!(flags & 0x80)) b.add_fingerprint();
        size_t n = 0;
        if (b.finish(&n) != kOk) std::abort();
        if (!(flags & 32) && !(flags & 0x40)) {
          h.delivered.push_back({id, from});
          if (h.delivered.size() > 64) h.delivered.pop_front();
        }
        offer(h, buf, n, from);
        break;
      }
      case 6: {
        if (left < 4) return 0;
        const uint8_t which = p[0], kind = p[1];
        const SocketAddress other = addr(h, p[2]), mapped = addr(h, p[3]);
        pos += 4;
        if (h.sent.empty()) break;
        const Harness::Sent &s = h.sent[h.sent.size() - 1 - which % h.sent.size()];
        uint8_t buf[512];
        stun::MessageBuilder b(buf, sizeof buf);
        const uint8_t k = kind % 8;
        b.start(stun::kBinding, k == 5 || k == 6 ? stun::kErrorResponse : stun::kSuccessResponse,
                s.txid);
        if (k <= 3 || k == 7) b.add_xor_address(stun::kAttrXorMappedAddress, mapped);
        if (k == 5) b.add_error_code(487, "Role Conflict");
        if (k == 6) b.add_error_code(400, "Bad Request");
        const char *key = k == 7 ? kLocalPwd : kRemotePwd;
        b.add_message_integrity(reinterpret_cast<const uint8_t *>(key), 22);
        b.add_fingerprint();
        size_t n = 0;
        if (b.finish(&n) != kOk) std::abort();
        const SocketAddress from = kind & 8 ? other : s.to;
        offer(h, buf, n, from);
        if (kind & 16) offer(h, buf, n, from);
        break;
      }
      case 7: {
        if (left < 2) return 0;
        const SocketAddress from = addr(h, p[0]);
        size_t n = p[1];
        pos += 2;
        if (n > size - pos) n = size - pos;
        std::vector<uint8_t> raw(data + pos, data + pos + n);
        pos += n;
        offer(h, raw.data(), raw.size(), from);
        break;
      }
      case 8: {
        if (left < 1) return 0;
        // Wrong ones only once the right ones are in: they must be refused.
        const bool wrong = (p[0] & 1) && h.creds_set;
        pos += 1;
        const int r = agent.set_remote_credentials(wrong ? "Diff" : kRemoteUfrag,
                                                   wrong ? "differentpassworddiffer" : kRemotePwd);
        CHECK(r == (wrong ? kErrInvalidArgument : kOk));
        h.creds_set = true;
        break;
      }
      case 9: {
        if (left < 2) return 0;
        Candidate c;
        c.address = addr(h, p[0]);
        c.type = p[1] & 1 ? CandidateType::kServerReflexive : CandidateType::kHost;
        c.related = h.addrs[10];
        c.priority = candidate_priority(c.type, uint16_t(p[1] << 8));
        c.foundation = "9";
        pos += 2;
        agent.add_local_candidate(c);
        break;
      }
    }
  }
  drain(h);
  return 0;
}

#include "ice/agent.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "base/error.h"
#include "ice/gatherer.h"
#include "sim_pair_network.h"
#include "stun/message.h"

namespace parley::ice {
namespace {

using parley::testing::NatModel;
using parley::testing::sim_addr;
using parley::testing::SimPairNetwork;

constexpr Timestamp kMs = kNanosPerMilli;
constexpr Timestamp kSec = kNanosPerSecond;
constexpr Timestamp kStart = 1 * kSec;  // monotonic clocks never read 0

NatModel port_restricted() {
  return {NatModel::Mapping::kEndpointIndependent, NatModel::Filtering::kAddressPortDependent,
          true, false};
}
NatModel full_cone() {
  return {NatModel::Mapping::kEndpointIndependent, NatModel::Filtering::kOpen, true, false};
}
NatModel symmetric() {
  return {NatModel::Mapping::kAddressPortDependent, NatModel::Filtering::kAddressPortDependent,
          false, false};
}
NatModel udp_blocked() {
  return {NatModel::Mapping::kEndpointIndependent, NatModel::Filtering::kBlockAllUdp, true,
          false};
}

struct Sent {
  Timestamp at;
  SocketAddress to;
  bool request;
  bool use_candidate;
};

struct Seen {
  Timestamp at;
  AgentEvent event;
};

struct Peer {
  int ep = -1;
  std::vector<SocketAddress> hosts;
  AgentConfig config;
  std::vector<Candidate> candidates;  // what it signals to the other side
  std::unique_ptr<Agent> agent;
  std::vector<Sent> sent;
  std::vector<Seen> events;
  std::vector<Timestamp> success_in;  // success responses delivered to it

  int count(AgentEventType t) const {
    int n = 0;
    for (const auto &s : events) n += s.event.type == t;
    return n;
  }
  const Seen *first(AgentEventType t) const {
    for (const auto &s : events) {
      if (s.event.type == t) return &s;
    }
    return nullptr;
  }
  std::vector<Timestamp> requests_after(Timestamp t) const {
    std::vector<Timestamp> v;
    for (const auto &s : sent) {
      if (s.request && s.at >= t) v.push_back(s.at);
    }
    return v;
  }
};

// Two peers on a SimPairNetwork, each with an Agent on its one socket, and a simulated clock.
class World {
 public:
  SimPairNetwork net;
  Peer a, b;
  Timestamp now = kStart;
  std::multimap<Timestamp, std::function<void()>> actions;  // scheduled signaling, trickle

  void setup(Peer &p, std::vector<const char *> hosts, int nat, bool controlling,
             uint64_t tie_breaker, const char *ufrag, bool blocked = false) {
    for (const char *h : hosts) p.hosts.push_back(sim_addr(h));
    p.ep = net.add_endpoint(p.hosts, nat, blocked);
    p.config.controlling = controlling;
    p.config.tie_breaker = tie_breaker;
    p.config.local_ufrag = ufrag;
    p.config.local_pwd = std::string(ufrag) + "-password-0123456789";
    p.config.software = "parley-test";
  }

  // Real gathering (host, srflx from the STUN server, a relay candidate) on the peers'
  // sockets, so NAT mappings toward the STUN server exist as they would.
  void gather() {
    Peer *peers[2] = {&a, &b};
    std::unique_ptr<Gatherer> g[2];
    for (int i = 0; i < 2; ++i) {
      GatherConfig c;
      c.host_addresses = peers[i]->hosts;
      for (const auto &h : peers[i]->hosts) {
        if (h.is_v4()) c.stun_servers.push_back({SimPairNetwork::stun_server(), h});
      }
      c.relay = sim_addr("203.0.113.50:443");
      g[i] = std::make_unique<Gatherer>(c, now);
    }
    for (int guard = 0; !(g[0]->done() && g[1]->done()); ++guard) {
      ASSERT_LT(guard, 100000);
      for (int i = 0; i < 2; ++i) {
        Datagram d;
        while (g[i]->poll_transmit(now, &d)) net.send(peers[i]->ep, d.data, d.len, d.to, now);
      }
      Timestamp next = 0;
      for (Timestamp t : {g[0]->next_deadline(), g[1]->next_deadline(), net.next_arrival()}) {
        if (t != 0 && (next == 0 || t < next)) next = t;
      }
      if (next == 0) break;
      now = std::max(now, next);
      SimPairNetwork::Arrival ar;
      while (net.pop(now, &ar)) {
        g[ar.endpoint == a.ep ? 0 : 1]->handle_datagram(ar.data.data(), ar.data.size(),
                                                         ar.from, now);
      }
      for (int i = 0; i < 2; ++i) {
        if (g[i]->next_deadline() != 0 && g[i]->next_deadline() <= now) g[i]->handle_timeout(now);
      }
    }
    for (int i = 0; i < 2; ++i) peers[i]->candidates = g[i]->candidates();
  }

  void create_agents() {
    for (Peer *p : {&a, &b}) {
      p->agent = std::make_unique<Agent>(p->config, now);
      for (const auto &c : p->candidates) p->agent->add_local_candidate(c);
    }
  }

  // `to` learns `from`'s credentials and candidates, then end-of-candidates.
  void signal(const Peer &from, Peer &to) {
    ASSERT_EQ(to.agent->set_remote_credentials(from.config.local_ufrag, from.config.local_pwd),
              kOk);
    for (const auto &c : from.candidates) to.agent->add_remote_candidate(c, now);
    to.agent->end_of_remote_candidates(now);
  }

  void start() {
    create_agents();
    signal(a, b);
    signal(b, a);
  }

  void drain(Peer &p) {
    AgentEvent e;
    while (p.agent->poll_event(&e)) p.events.push_back({now, e});
  }

  void flush(Peer &p) {
    Datagram d;
    while (p.agent->poll_transmit(now, &d)) {
      stun::Message m;
      bool request = false, use_candidate = false;
      if (stun::Message::parse(d.data, d.len, &m) == kOk) {
        request = m.message_class() == stun::kRequest;
        use_candidate = m.has(stun::kAttrUseCandidate);
      }
      p.sent.push_back({now, d.to, request, use_candidate});
      net.send(p.ep, d.data, d.len, d.to, now);
    }
    drain(p);
  }

  // Runs until `done` holds (true) or `duration` of simulated time passed (done()'s value).
  bool run_until(const std::function<bool()> &done, Timestamp duration) {
    const Timestamp end = now + duration;
    for (int guard = 0; guard < 1000000; ++guard) {
      flush(a);
      flush(b);
      if (done()) return true;
      Timestamp next = 0;
      auto consider = [&next](Timestamp t) {
        if (t != 0 && (next == 0 || t < next)) next = t;
      };
      consider(a.agent->next_deadline());
      consider(b.agent->next_deadline());
      consider(net.next_arrival());
      if (!actions.empty()) consider(actions.begin()->first);
      if (next == 0 || next > end) {
        now = end;
        return done();
      }
      now = std::max(now, next);
      while (!actions.empty() && actions.begin()->first <= now) {
        auto f = std::move(actions.begin()->second);
        actions.erase(actions.begin());
        f();
      }
      SimPairNetwork::Arrival ar;
      while (net.pop(now, &ar)) {
        Peer &p = ar.endpoint == a.ep ? a : b;
        stun::Message m;
        if (stun::Message::parse(ar.data.data(), ar.data.size(), &m) == kOk &&
            m.message_class() == stun::kSuccessResponse) {
          p.success_in.push_back(now);
        }
        p.agent->handle_datagram(ar.data.data(), ar.data.size(), ar.from, now);
      }
      for (Peer *p : {&a, &b}) {
        const Timestamp d = p->agent->next_deadline();
        if (d != 0 && d <= now) p->agent->handle_timeout(now);
        drain(*p);
      }
    }
    ADD_FAILURE() << "simulation made no progress";
    return false;
  }

  bool both_selected() const { return a.agent->selected() && b.agent->selected(); }
  bool both_failed() const { return a.agent->failed() && b.agent->failed(); }
};

// Both sides selected the same path, exactly once each, and agree on who is controlling.
void expect_connected(const World &w) {
  ASSERT_TRUE(w.a.agent->selected());
  ASSERT_TRUE(w.b.agent->selected());
  PairInfo pa, pb;
  ASSERT_TRUE(w.a.agent->selected_pair(&pa));
  ASSERT_TRUE(w.b.agent->selected_pair(&pb));
  EXPECT_EQ(pa.remote, pb.local) << pa.remote.to_string() << " vs " << pb.local.to_string();
  EXPECT_EQ(pb.remote, pa.local) << pb.remote.to_string() << " vs " << pa.local.to_string();
  EXPECT_EQ(w.a.count(AgentEventType::kSelected), 1);
  EXPECT_EQ(w.b.count(AgentEventType::kSelected), 1);
  EXPECT_NE(w.a.agent->controlling(), w.b.agent->controlling());
  EXPECT_FALSE(w.a.agent->failed());
  EXPECT_FALSE(w.b.agent->failed());
  // The selected pair was reported valid first.
  const Seen *valid = w.a.first(AgentEventType::kPairValid);
  ASSERT_NE(valid, nullptr);
  EXPECT_LE(valid->at, w.a.first(AgentEventType::kSelected)->at);
}

void public_pair(World &w) {
  w.setup(w.a, {"192.0.2.10:5000"}, -1, true, 1111, "ufA1");
  w.setup(w.b, {"203.0.113.20:6000"}, -1, false, 2222, "ufB1");
}

TEST(Agent, BothPublicSelectHostPair) {
  World w;
  public_pair(w);
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 5 * kSec));
  expect_connected(w);
  PairInfo pa;
  w.a.agent->selected_pair(&pa);
  EXPECT_EQ(pa.remote, sim_addr("203.0.113.20:6000"));
  EXPECT_EQ(pa.remote_type, CandidateType::kHost);
  EXPECT_EQ(pa.local_type, CandidateType::kHost);
  EXPECT_EQ(pa.local_base, sim_addr("192.0.2.10:5000"));
  EXPECT_GT(pa.rtt, 0u);
  EXPECT_TRUE(w.a.agent->controlling());
  EXPECT_EQ(w.a.first(AgentEventType::kSelected)->event.controlling, true);
  EXPECT_EQ(w.b.first(AgentEventType::kSelected)->event.controlling, false);
  // Relay candidates are never paired: one pair on each side.
  EXPECT_EQ(w.a.agent->pair_count(), 1u);
  EXPECT_GE(w.a.agent->stats().remote_ignored, 1u);
  // The controlling side's nominating check carried USE-CANDIDATE; nothing else did.
  int nominations = 0;
  for (const auto &s : w.a.sent) nominations += s.use_candidate;
  EXPECT_EQ(nominations, 1);
  for (const auto &s : w.b.sent) EXPECT_FALSE(s.use_candidate);
  EXPECT_LT(w.a.first(AgentEventType::kSelected)->at - kStart, 200 * kMs);
}

TEST(Agent, PortRestrictedConesBothSidesConnectViaSrflx) {
  World w;
  const int na = w.net.add_nat(port_restricted(), sim_addr("198.51.100.1:0"));
  const int nb = w.net.add_nat(port_restricted(), sim_addr("198.51.100.2:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, na, true, 1111, "ufA1");
  w.setup(w.b, {"10.1.0.2:6000"}, nb, false, 2222, "ufB1");
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 10 * kSec));
  expect_connected(w);
  PairInfo pa, pb;
  w.a.agent->selected_pair(&pa);
  w.b.agent->selected_pair(&pb);
  EXPECT_EQ(pa.remote, sim_addr("198.51.100.2:6000"));
  EXPECT_EQ(pa.remote_type, CandidateType::kServerReflexive);
  EXPECT_EQ(pa.local, sim_addr("198.51.100.1:5000"));
  EXPECT_EQ(pa.local_type, CandidateType::kServerReflexive);
  EXPECT_EQ(pa.local_base, sim_addr("10.0.0.2:5000"));
  EXPECT_EQ(pb.remote_type, CandidateType::kServerReflexive);
  EXPECT_EQ(pb.local_type, CandidateType::kServerReflexive);
}

void cone_vs_symmetric(bool symmetric_controls) {
  World w;
  const int na = w.net.add_nat(full_cone(), sim_addr("198.51.100.1:0"));
  const int nb = w.net.add_nat(symmetric(), sim_addr("198.51.100.2:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, na, !symmetric_controls, 1111, "ufA1");
  w.setup(w.b, {"10.1.0.2:6000"}, nb, symmetric_controls, 2222, "ufB1");
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 10 * kSec));
  expect_connected(w);
  PairInfo pa, pb;
  w.a.agent->selected_pair(&pa);
  w.b.agent->selected_pair(&pb);
  // The symmetric NAT's new mapping toward the cone is only known peer-reflexively.
  EXPECT_EQ(pb.local_type, CandidateType::kPeerReflexive);
  EXPECT_TRUE(pb.local.same_ip(sim_addr("198.51.100.2:0")));
  EXPECT_NE(pb.local.port(), 6000);
  EXPECT_EQ(pa.remote_type, CandidateType::kPeerReflexive);
  EXPECT_GE(w.a.agent->stats().remote_prflx_learned, 1u);
  EXPECT_EQ(pb.remote, sim_addr("198.51.100.1:5000"));
}

TEST(Agent, FullConeVsSymmetricConnectViaPeerReflexive) { cone_vs_symmetric(false); }
TEST(Agent, SymmetricControllingVsFullCone) { cone_vs_symmetric(true); }

TEST(Agent, SymmetricVsSymmetricFails) {
  World w;
  const int na = w.net.add_nat(symmetric(), sim_addr("198.51.100.1:0"));
  const int nb = w.net.add_nat(symmetric(), sim_addr("198.51.100.2:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, na, true, 1111, "ufA1");
  w.setup(w.b, {"10.1.0.2:6000"}, nb, false, 2222, "ufB1");
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_failed(); }, 20 * kSec));
  for (const Peer *p : {&w.a, &w.b}) {
    EXPECT_EQ(p->count(AgentEventType::kFailed), 1);
    EXPECT_EQ(p->count(AgentEventType::kSelected), 0);
    EXPECT_EQ(p->count(AgentEventType::kPairValid), 0);
  }
  // Within a few check lifetimes (3.9 s each), not at some distant timeout.
  EXPECT_LT(w.a.first(AgentEventType::kFailed)->at - kStart, 10 * kSec);
  // Inert once failed: nothing more is sent.
  const size_t sent = w.a.sent.size();
  w.run_until([] { return false; }, 5 * kSec);
  EXPECT_EQ(w.a.sent.size(), sent);
}

TEST(Agent, SameLanSelectsHostPair) {
  World w;
  const int nat = w.net.add_nat(port_restricted(), sim_addr("198.51.100.1:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, nat, true, 1111, "ufA1");
  w.setup(w.b, {"10.0.0.3:5000"}, nat, false, 2222, "ufB1");
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 10 * kSec));
  expect_connected(w);
  PairInfo pa;
  w.a.agent->selected_pair(&pa);
  EXPECT_EQ(pa.remote, sim_addr("10.0.0.3:5000"));
  EXPECT_EQ(pa.remote_type, CandidateType::kHost);
  EXPECT_EQ(pa.local_type, CandidateType::kHost);
  // It is the highest-priority pair there is.
  EXPECT_EQ(w.a.agent->pair_count(), 2u);
  for (const auto &v : w.a.agent->valid_pairs()) EXPECT_LE(v.priority, pa.priority);
}

TEST(Agent, UdpBlockedFails) {
  World w;
  const int na = w.net.add_nat(udp_blocked(), sim_addr("198.51.100.1:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, na, true, 1111, "ufA1");
  w.setup(w.b, {"203.0.113.20:6000"}, -1, false, 2222, "ufB1");
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_failed(); }, 20 * kSec));
  EXPECT_EQ(w.a.count(AgentEventType::kFailed), 1);
  EXPECT_EQ(w.b.count(AgentEventType::kFailed), 1);
  EXPECT_EQ(w.a.count(AgentEventType::kPairValid), 0);
  EXPECT_EQ(w.b.count(AgentEventType::kPairValid), 0);
}

TEST(Agent, TrickledCandidatesStillConnect) {
  World w;
  const int na = w.net.add_nat(port_restricted(), sim_addr("198.51.100.1:0"));
  const int nb = w.net.add_nat(port_restricted(), sim_addr("198.51.100.2:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, na, true, 1111, "ufA1");
  w.setup(w.b, {"10.1.0.2:6000"}, nb, false, 2222, "ufB1");
  w.gather();
  w.create_agents();
  // B knows everything at once; A gets B's credentials, then each candidate 700 ms apart,
  // and end-of-candidates last.
  w.signal(w.a, w.b);
  ASSERT_EQ(w.a.agent->set_remote_credentials(w.b.config.local_ufrag, w.b.config.local_pwd), kOk);
  Timestamp t = w.now;
  for (const Candidate &c : w.b.candidates) {
    t += 700 * kMs;
    w.actions.emplace(t, [&w, c] { w.a.agent->add_remote_candidate(c, w.now); });
  }
  const Timestamp last = t;
  w.actions.emplace(t + 100 * kMs, [&w] { w.a.agent->end_of_remote_candidates(w.now); });
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 10 * kSec));
  expect_connected(w);
  EXPECT_LE(w.a.first(AgentEventType::kSelected)->at, last + 1 * kSec);
  // B's checks that arrived before A knew B's candidates were dropped by A's NAT, and B's
  // pairs survived that long: no failure on the way.
  EXPECT_EQ(w.b.count(AgentEventType::kFailed), 0);
}

TEST(Agent, ChecksBeforeRemoteCredentialsAreAnsweredAndTriggeredLater) {
  World w;
  w.setup(w.a, {"192.0.2.10:5000"}, -1, false, 1111, "ufA1");
  w.setup(w.b, {"203.0.113.20:6000"}, -1, true, 2222, "ufB1");
  w.gather();
  w.create_agents();
  w.signal(w.a, w.b);  // B can check at once; A learns B's credentials 500 ms later
  const Timestamp creds_at = w.now + 500 * kMs;
  w.actions.emplace(creds_at, [&w] { w.signal(w.b, w.a); });
  AgentStats before;
  size_t remotes_before = 0;
  w.actions.emplace(creds_at - 1, [&] {
    before = w.a.agent->stats();
    remotes_before = w.a.agent->remote_candidate_count();
  });
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 5 * kSec));
  EXPECT_EQ(before.checks_sent, 0u);
  EXPECT_GE(before.success_responses_sent, 1u);
  EXPECT_EQ(remotes_before, 1u);  // B, learned peer-reflexively
  expect_connected(w);
  // A's first request is the remembered triggered check, sent the moment credentials came.
  const auto reqs = w.a.requests_after(0);
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs[0], creds_at);
  EXPECT_GE(w.a.agent->stats().triggered_checks, 1u);
  // The signaled host candidate replaced what A had learned as peer-reflexive.
  PairInfo pa;
  w.a.agent->selected_pair(&pa);
  EXPECT_EQ(pa.remote_type, CandidateType::kHost);
  EXPECT_EQ(w.a.agent->remote_candidate_count(), 1u);
}

void role_conflict(bool both_controlling, uint64_t tb_a, uint64_t tb_b) {
  World w;
  const int na = w.net.add_nat(port_restricted(), sim_addr("198.51.100.1:0"));
  w.setup(w.a, {"10.0.0.2:5000"}, na, both_controlling, tb_a, "ufA1");
  w.setup(w.b, {"203.0.113.20:6000"}, -1, both_controlling, tb_b, "ufB1");
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 10 * kSec));
  expect_connected(w);
  EXPECT_EQ(w.a.count(AgentEventType::kRoleChanged) + w.b.count(AgentEventType::kRoleChanged),
            1);
  const Peer &changed = w.a.count(AgentEventType::kRoleChanged) ? w.a : w.b;
  EXPECT_EQ(changed.first(AgentEventType::kRoleChanged)->event.controlling,
            changed.agent->controlling());
  // RFC 8445 7.3.1.1: the larger tie-breaker ends up controlling.
  if (tb_a != tb_b) {
    EXPECT_EQ(w.a.agent->controlling(), tb_a > tb_b);
  }
}

TEST(Agent, RoleConflictBothControlling) {
  role_conflict(true, 1000, 2000);
  role_conflict(true, 2000, 1000);
}
TEST(Agent, RoleConflictBothControlled) {
  role_conflict(false, 1000, 2000);
  role_conflict(false, 2000, 1000);
}
TEST(Agent, RoleConflictRandomTieBreakers) {
  for (int i = 0; i < 5; ++i) role_conflict(true, 0, 0);
}

// Dual-stack public peers: the IPv6 pair has the higher priority (its interface comes first).
void dual_stack(World &w, Timestamp v6_latency) {
  w.setup(w.a, {"[2001:db8::a]:5000", "192.0.2.10:5000"}, -1, true, 1111, "ufA1");
  w.setup(w.b, {"[2001:db8::b]:6000", "203.0.113.20:6000"}, -1, false, 2222, "ufB1");
  w.net.set_latency([v6_latency](const SocketAddress &to) {
    return to.is_v6() ? v6_latency : SimPairNetwork::kLatency;
  });
  w.gather();
  w.start();
}

TEST(Agent, NominationWaitsForHigherPriorityPairInProgress) {
  World w;
  dual_stack(w, 60 * kMs);  // v4 is valid first; v6 within the nomination wait
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 5 * kSec));
  expect_connected(w);
  PairInfo pa;
  w.a.agent->selected_pair(&pa);
  EXPECT_TRUE(pa.remote.is_v6());
  const auto valid = w.a.agent->valid_pairs();
  ASSERT_EQ(valid.size(), 2u);
  EXPECT_EQ(valid[0].remote, pa.remote) << "the best valid pair is the one nominated";
  EXPECT_TRUE(w.a.first(AgentEventType::kPairValid)->event.pair.remote.is_v4());
}

TEST(Agent, NominationWaitIsBounded) {
  World w;
  dual_stack(w, 400 * kMs);  // v6 answers far beyond the 100 ms wait
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 5 * kSec));
  expect_connected(w);
  PairInfo pa;
  w.a.agent->selected_pair(&pa);
  EXPECT_TRUE(pa.remote.is_v4());
  const Timestamp first_valid = w.a.first(AgentEventType::kPairValid)->at;
  const Timestamp selected = w.a.first(AgentEventType::kSelected)->at;
  // Nominated when the wait ran out (one Ta slot of slack), selected one round trip later.
  EXPECT_GE(selected, first_valid + 100 * kMs);
  EXPECT_LE(selected, first_valid + 100 * kMs + 20 * kMs + 2 * SimPairNetwork::kLatency);
}

TEST(Agent, PacingKeepsRequestsTaApartAfterTheFirstBurst) {
  World w;
  public_pair(w);
  w.gather();
  // Dead higher-priority candidates make a busy checklist with retransmissions; the real peer
  // is far away.
  for (int i = 0; i < 12; ++i) {
    Candidate c;
    c.type = CandidateType::kHost;
    c.address = sim_addr(("198.18.0." + std::to_string(i + 1) + ":7000").c_str());
    c.priority = candidate_priority(CandidateType::kHost, uint16_t(65535 - i));
    c.foundation = candidate_foundation(c.type, c.address, SocketAddress());
    w.b.candidates.insert(w.b.candidates.begin(), c);
  }
  w.net.set_latency([](const SocketAddress &to) {
    return to.is_v4() && to.ip_string() == "203.0.113.20" ? 700 * kMs : SimPairNetwork::kLatency;
  });
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 10 * kSec));
  expect_connected(w);
  for (const Peer *p : {&w.a, &w.b}) {
    const auto reqs = p->requests_after(0);
    // The first `burst` requests may leave together; from then on one per Ta.
    const size_t burst = p->config.burst;
    ASSERT_GT(reqs.size(), burst);
    for (size_t i = burst; i < reqs.size(); ++i) {
      EXPECT_GE(reqs[i] - reqs[i - 1], p->config.ta_ms * kMs) << "request " << i;
    }
  }
  EXPECT_GT(w.a.requests_after(0).size(), 30u);
  EXPECT_GT(w.a.agent->stats().retransmissions, 10u);
}

TEST(Agent, ConsentChecksEveryFourToSixSecondsThenLostAfterTimeout) {
  World w;
  public_pair(w);
  w.gather();
  w.start();
  ASSERT_TRUE(w.run_until([&] { return w.both_selected(); }, 5 * kSec));
  w.run_until([] { return false; }, 60 * kSec);
  EXPECT_EQ(w.a.count(AgentEventType::kConsentLost), 0);
  EXPECT_EQ(w.b.count(AgentEventType::kConsentLost), 0);
  for (const Peer *p : {&w.a, &w.b}) {
    const Timestamp own = p->first(AgentEventType::kSelected)->at;  // B selects first
    const auto reqs = p->requests_after(own + 1);
    ASSERT_GE(reqs.size(), 9u);
    EXPECT_GE(reqs[0] - own, 4 * kSec);
    EXPECT_LE(reqs[0] - own, 6 * kSec);
    for (size_t i = 1; i < reqs.size(); ++i) {
      EXPECT_GE(reqs[i] - reqs[i - 1], 4 * kSec);
      EXPECT_LE(reqs[i] - reqs[i - 1], 6 * kSec);
    }
  }
  // The path dies.
  const Timestamp dead = w.now;
  w.net.set_drop([](int, const SocketAddress &) { return true; });
  ASSERT_TRUE(w.run_until([&] { return w.a.count(AgentEventType::kConsentLost) == 1; },
                          40 * kSec));
  const Timestamp lost = w.a.first(AgentEventType::kConsentLost)->at;
  ASSERT_FALSE(w.a.success_in.empty());
  EXPECT_EQ(lost, w.a.success_in.back() + 30 * kSec) << "30 s after the last consent";
  EXPECT_GE(lost - dead, 24 * kSec);
  EXPECT_LE(lost - dead, 30 * kSec + 2 * SimPairNetwork::kLatency);  // answers in flight
  EXPECT_TRUE(w.a.agent->consent_lost());
  PairInfo pa;
  w.a.agent->selected_pair(&pa);
  EXPECT_EQ(w.a.first(AgentEventType::kConsentLost)->event.pair.remote, pa.remote);
  // Consent checks stop once consent is lost.
  const size_t sent = w.a.sent.size();
  w.run_until([] { return false; }, 20 * kSec);
  EXPECT_EQ(w.a.sent.size(), sent);
}

// --- a single agent fed hand-made datagrams ---

constexpr const char *kLocalUfrag = "ufA1";
constexpr const char *kLocalPwd = "ufA1-password-0123456789";
constexpr const char *kRemoteUfrag = "ufB1";
constexpr const char *kRemotePwd = "ufB1-password-0123456789";

std::vector<uint8_t> key(const char *pwd) {
  return std::vector<uint8_t>(pwd, pwd + std::strlen(pwd));
}

struct Request {
  std::string username = std::string(kLocalUfrag) + ":" + kRemoteUfrag;
  std::string pwd = kLocalPwd;
  bool priority = true;
  bool controlling = true;
  uint64_t tie_breaker = 42;
  bool use_candidate = false;
  stun::TransactionId id = stun::TransactionId::random();

  std::vector<uint8_t> encode() const {
    uint8_t buf[512];
    stun::MessageBuilder b(buf, sizeof buf);
    b.start(stun::kBinding, stun::kRequest, id);
    b.add_string(stun::kAttrUsername, username);
    if (priority) {
      b.add_u32(stun::kAttrPriority, candidate_priority(CandidateType::kPeerReflexive, 65535));
    }
    b.add_u64(controlling ? stun::kAttrIceControlling : stun::kAttrIceControlled, tie_breaker);
    if (use_candidate) b.add_flag(stun::kAttrUseCandidate);
    const auto k = key(pwd.c_str());
    b.add_message_integrity(k.data(), k.size());
    b.add_fingerprint();
    size_t n = 0;
    EXPECT_EQ(b.finish(&n), kOk);
    return std::vector<uint8_t>(buf, buf + n);
  }
};

std::vector<uint8_t> success_response(const stun::TransactionId &id, const SocketAddress &mapped,
                                      const char *pwd) {
  uint8_t buf[256];
  stun::MessageBuilder b(buf, sizeof buf);
  b.start(stun::kBinding, stun::kSuccessResponse, id);
  b.add_xor_address(stun::kAttrXorMappedAddress, mapped);
  const auto k = key(pwd);
  b.add_message_integrity(k.data(), k.size());
  b.add_fingerprint();
  size_t n = 0;
  EXPECT_EQ(b.finish(&n), kOk);
  return std::vector<uint8_t>(buf, buf + n);
}

Candidate host(const char *a, uint16_t local_pref = 65535) {
  Candidate c;
  c.type = CandidateType::kHost;
  c.address = sim_addr(a);
  c.priority = candidate_priority(c.type, local_pref);
  c.foundation = candidate_foundation(c.type, c.address, SocketAddress());
  return c;
}

AgentConfig config(bool controlling, uint64_t tie_breaker = 5000) {
  AgentConfig c;
  c.controlling = controlling;
  c.tie_breaker = tie_breaker;
  c.local_ufrag = kLocalUfrag;
  c.local_pwd = kLocalPwd;
  return c;
}

const SocketAddress kLocal = sim_addr("192.0.2.10:5000");
const SocketAddress kPeer = sim_addr("203.0.113.20:6000");

// A call's first checks (here a host and a server-reflexive pair) leave together; the third
// waits its Ta.
TEST(AgentUnit, TheFirstChecksLeaveTogetherThenOnePerTa) {
  Agent a(config(true), kStart);
  a.add_local_candidate(host("192.0.2.10:5000"));
  ASSERT_EQ(kOk, a.set_remote_credentials(kRemoteUfrag, kRemotePwd));
  for (const char *r : {"10.0.0.9:6000", "203.0.113.20:6000", "198.51.100.7:6000"}) {
    Candidate c = host(r, uint16_t(60000 + a.remote_candidate_count()));
    ASSERT_EQ(kOk, a.add_remote_candidate(c, kStart));
  }
  Datagram d;
  ASSERT_EQ(2u, AgentConfig().burst);
  ASSERT_TRUE(a.poll_transmit(kStart, &d));
  ASSERT_TRUE(a.poll_transmit(kStart, &d));
  EXPECT_FALSE(a.poll_transmit(kStart + 19 * kMs, &d));
  EXPECT_TRUE(a.poll_transmit(kStart + 20 * kMs, &d));
  EXPECT_EQ(3u, a.stats().checks_sent);
}

// A birthday probe (ice/birthday.h) is a check like any other to the peer's agent, which
// answers it and checks the probe's source in turn; to the prober it is no transaction.
TEST(AgentUnit, AProbeIsACheckThePeerAnswersButNoTransactionOfOurs) {
  Agent a(config(true), kStart);
  AgentConfig bc = config(false, 7);
  bc.local_ufrag = kRemoteUfrag;
  bc.local_pwd = kRemotePwd;
  Agent b(bc, kStart);
  a.add_local_candidate(host("192.0.2.10:5000"));
  b.add_local_candidate(host("203.0.113.20:6000"));
  uint8_t buf[stun::kMaxMessageLen];
  size_t n = 0;
  EXPECT_FALSE(a.write_probe(AF_INET, buf, sizeof buf, &n)) << "no credentials yet";
  ASSERT_EQ(kOk, a.set_remote_credentials(kRemoteUfrag, kRemotePwd));
  ASSERT_EQ(kOk, b.set_remote_credentials(kLocalUfrag, kLocalPwd));
  ASSERT_TRUE(a.write_probe(AF_INET, buf, sizeof buf, &n));
  const SocketAddress source = sim_addr("198.51.100.7:31337");  // a port nobody signaled
  EXPECT_TRUE(b.handle_datagram(buf, n, source, kStart));
  Datagram d;
  ASSERT_TRUE(b.poll_transmit(kStart, &d));
  EXPECT_EQ(source, d.to);
  const std::vector<uint8_t> answer(d.data, d.data + d.len);
  EXPECT_FALSE(a.handle_datagram(answer.data(), answer.size(), kPeer, kStart));
  ASSERT_TRUE(b.poll_transmit(kStart + 20 * kMs, &d));  // b's triggered check
  EXPECT_EQ(source, d.to);
  EXPECT_EQ(1u, b.stats().remote_prflx_learned);
  EXPECT_EQ(1u, a.stats().probes_written);
  EXPECT_EQ(0u, a.stats().checks_sent);
  EXPECT_FALSE(a.write_probe(AF_INET, buf, 16, &n)) << "a buffer too small";
}

TEST(AgentUnit, AnswersAuthenticatedRequestsOnlyToTheirSource) {
  Agent agent(config(false), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  Datagram d;

  // Wrong password: consumed, unanswered, nothing learned.
  Request bad;
  bad.pwd = "not-the-password-at-all-!";
  auto m = bad.encode();
  EXPECT_TRUE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  EXPECT_FALSE(agent.poll_transmit(kStart, &d));
  EXPECT_EQ(agent.remote_candidate_count(), 0u);
  EXPECT_EQ(agent.stats().requests_bad_integrity, 1u);

  // Another agent's ufrag: not ours at all.
  Request other;
  other.username = std::string("zzzz:") + kRemoteUfrag;
  m = other.encode();
  EXPECT_FALSE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  EXPECT_FALSE(agent.poll_transmit(kStart, &d));
  EXPECT_EQ(agent.remote_candidate_count(), 0u);

  // A proper check: a small success response, to the source, authenticated with our password.
  Request good;
  m = good.encode();
  EXPECT_TRUE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  ASSERT_TRUE(agent.poll_transmit(kStart, &d));
  EXPECT_EQ(d.to, kPeer);
  EXPECT_LE(d.len, m.size());
  stun::Message r;
  ASSERT_EQ(stun::Message::parse(d.data, d.len, &r), kOk);
  EXPECT_EQ(r.message_class(), stun::kSuccessResponse);
  EXPECT_EQ(r.transaction_id(), good.id);
  SocketAddress mapped;
  ASSERT_EQ(r.xor_address(stun::kAttrXorMappedAddress, &mapped), kOk);
  EXPECT_EQ(mapped, kPeer);
  const auto k = key(kLocalPwd);
  EXPECT_EQ(r.check_integrity(k.data(), k.size()), kOk);
  EXPECT_TRUE(r.has(stun::kAttrFingerprint));
  EXPECT_EQ(agent.remote_candidate_count(), 1u);  // learned peer-reflexive
  EXPECT_EQ(agent.stats().remote_prflx_learned, 1u);

  // Without the peer's credentials the triggered check waits; with them it goes first.
  EXPECT_FALSE(agent.poll_transmit(kStart, &d));
  ASSERT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  ASSERT_TRUE(agent.poll_transmit(kStart + kMs, &d));
  EXPECT_EQ(d.to, kPeer);
  ASSERT_EQ(stun::Message::parse(d.data, d.len, &r), kOk);
  EXPECT_EQ(r.message_class(), stun::kRequest);
  const auto rk = key(kRemotePwd);
  EXPECT_EQ(r.check_integrity(rk.data(), rk.size()), kOk);
  const auto *u = r.find(stun::kAttrUsername);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(r.value(*u), std::string(kRemoteUfrag) + ":" + kLocalUfrag);
  EXPECT_TRUE(r.has(stun::kAttrPriority));
  EXPECT_TRUE(r.has(stun::kAttrIceControlled));
  EXPECT_FALSE(r.has(stun::kAttrUseCandidate));
  EXPECT_EQ(agent.stats().triggered_checks, 1u);
}

TEST(AgentUnit, RequestWithoutPriorityGets400) {
  Agent agent(config(false), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  Request req;
  req.priority = false;
  const auto m = req.encode();
  EXPECT_TRUE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  Datagram d;
  ASSERT_TRUE(agent.poll_transmit(kStart, &d));
  stun::Message r;
  ASSERT_EQ(stun::Message::parse(d.data, d.len, &r), kOk);
  int code = 0;
  ASSERT_EQ(r.error_code(&code, nullptr), kOk);
  EXPECT_EQ(code, 400);
  EXPECT_EQ(agent.remote_candidate_count(), 0u);
}

TEST(AgentUnit, RoleConflictOnRequests) {
  Agent agent(config(true, 5000), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  Datagram d;
  stun::Message r;
  int code = 0;
  // Controlling vs controlling, our tie-breaker larger: 487, we stay controlling.
  Request low;
  low.tie_breaker = 10;
  auto m = low.encode();
  EXPECT_TRUE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  ASSERT_TRUE(agent.poll_transmit(kStart, &d));
  ASSERT_EQ(stun::Message::parse(d.data, d.len, &r), kOk);
  ASSERT_EQ(r.error_code(&code, nullptr), kOk);
  EXPECT_EQ(code, 487);
  const auto k = key(kLocalPwd);
  EXPECT_EQ(r.check_integrity(k.data(), k.size()), kOk);
  EXPECT_TRUE(agent.controlling());
  AgentEvent e;
  EXPECT_FALSE(agent.poll_event(&e));
  // Theirs larger: we switch to controlled and answer with success.
  Request high;
  high.tie_breaker = 9999999;
  m = high.encode();
  EXPECT_TRUE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  ASSERT_TRUE(agent.poll_transmit(kStart, &d));
  ASSERT_EQ(stun::Message::parse(d.data, d.len, &r), kOk);
  EXPECT_EQ(r.message_class(), stun::kSuccessResponse);
  EXPECT_FALSE(agent.controlling());
  ASSERT_TRUE(agent.poll_event(&e));
  EXPECT_EQ(e.type, AgentEventType::kRoleChanged);
  EXPECT_FALSE(e.controlling);
}

TEST(AgentUnit, ResponsesMustComeFromTheCheckedAddressWithIntegrity) {
  Agent agent(config(true), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  ASSERT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  ASSERT_EQ(agent.add_remote_candidate(host("203.0.113.20:6000"), kStart), kOk);
  Datagram d;
  ASSERT_TRUE(agent.poll_transmit(kStart, &d));
  EXPECT_EQ(d.to, kPeer);
  stun::Message req;
  ASSERT_EQ(stun::Message::parse(d.data, d.len, &req), kOk);
  const stun::TransactionId id = req.transaction_id();
  AgentEvent e;

  // Right transaction and integrity, wrong source: consumed and ignored.
  auto resp = success_response(id, kLocal, kRemotePwd);
  EXPECT_TRUE(agent.handle_datagram(resp.data(), resp.size(), sim_addr("203.0.113.99:6000"),
                                    kStart + 10 * kMs));
  EXPECT_FALSE(agent.poll_event(&e));
  EXPECT_EQ(agent.stats().responses_wrong_source, 1u);
  // Right source, wrong key: ignored too.
  auto forged = success_response(id, kLocal, "some-other-password-xxxxx");
  EXPECT_TRUE(agent.handle_datagram(forged.data(), forged.size(), kPeer, kStart + 11 * kMs));
  EXPECT_FALSE(agent.poll_event(&e));
  EXPECT_EQ(agent.stats().responses_bad_integrity, 1u);
  EXPECT_TRUE(agent.valid_pairs().empty());
  // The genuine answer makes the pair valid.
  EXPECT_TRUE(agent.handle_datagram(resp.data(), resp.size(), kPeer, kStart + 12 * kMs));
  ASSERT_TRUE(agent.poll_event(&e));
  EXPECT_EQ(e.type, AgentEventType::kPairValid);
  EXPECT_EQ(e.pair.remote, kPeer);
  EXPECT_EQ(e.pair.local, kLocal);
  EXPECT_EQ(e.pair.local_type, CandidateType::kHost);
  // A repeat of it is no longer anyone's transaction here.
  EXPECT_FALSE(agent.handle_datagram(resp.data(), resp.size(), kPeer, kStart + 13 * kMs));
}

TEST(AgentUnit, MappedAddressNamesTheLocalSide) {
  Agent agent(config(true), kStart);
  agent.add_local_candidate(host("10.0.0.2:5000"));
  Candidate srflx;
  srflx.type = CandidateType::kServerReflexive;
  srflx.address = sim_addr("198.51.100.1:5000");
  srflx.related = sim_addr("10.0.0.2:5000");
  srflx.priority = candidate_priority(srflx.type, 65535);
  srflx.foundation = "srflx1";
  agent.add_local_candidate(srflx);
  ASSERT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  ASSERT_EQ(agent.add_remote_candidate(host("203.0.113.20:6000"), kStart), kOk);
  ASSERT_EQ(agent.add_remote_candidate(host("203.0.113.21:6000", 1000), kStart), kOk);
  // Local srflx candidates are never paired: one pair per remote candidate.
  EXPECT_EQ(agent.pair_count(), 2u);
  Datagram d;
  std::vector<std::pair<SocketAddress, stun::TransactionId>> checks;
  for (Timestamp t = kStart; checks.size() < 2; t += 20 * kMs) {
    ASSERT_TRUE(agent.poll_transmit(t, &d));
    stun::Message m;
    ASSERT_EQ(stun::Message::parse(d.data, d.len, &m), kOk);
    checks.push_back({d.to, m.transaction_id()});
  }
  EXPECT_EQ(checks[0].first, kPeer) << "higher priority first";
  auto r1 = success_response(checks[0].second, srflx.address, kRemotePwd);
  auto r2 = success_response(checks[1].second, sim_addr("198.51.100.1:41000"), kRemotePwd);
  EXPECT_TRUE(agent.handle_datagram(r1.data(), r1.size(), checks[0].first, kStart + 50 * kMs));
  EXPECT_TRUE(agent.handle_datagram(r2.data(), r2.size(), checks[1].first, kStart + 51 * kMs));
  const auto valid = agent.valid_pairs();
  ASSERT_EQ(valid.size(), 2u);
  EXPECT_EQ(valid[0].local_type, CandidateType::kServerReflexive);
  EXPECT_EQ(valid[0].local_base, sim_addr("10.0.0.2:5000"));
  EXPECT_EQ(valid[1].local_type, CandidateType::kPeerReflexive);
  EXPECT_EQ(valid[1].local, sim_addr("198.51.100.1:41000"));
}

TEST(AgentUnit, SrflxWithoutHostIsCheckedFromItsBase) {
  Agent agent(config(true), kStart);
  Candidate srflx;
  srflx.type = CandidateType::kServerReflexive;
  srflx.address = sim_addr("198.51.100.1:5000");
  srflx.related = sim_addr("10.0.0.2:5000");
  srflx.priority = candidate_priority(srflx.type, 65535);
  srflx.foundation = "srflx1";
  agent.add_local_candidate(srflx);
  ASSERT_EQ(agent.add_remote_candidate(host("203.0.113.20:6000"), kStart), kOk);
  EXPECT_EQ(agent.pair_count(), 1u);
}

TEST(AgentUnit, CandidateLimits) {
  Agent agent(config(true), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  Candidate relay = host("203.0.113.50:443");
  relay.type = CandidateType::kRelay;
  EXPECT_EQ(agent.add_remote_candidate(relay, kStart), kOk);
  Candidate rtcp = host("203.0.113.51:443");
  rtcp.component = 2;
  EXPECT_EQ(agent.add_remote_candidate(rtcp, kStart), kOk);
  EXPECT_EQ(agent.remote_candidate_count(), 0u);
  int ok = 0, limited = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string a = "198.18.1." + std::to_string(i + 1) + ":7000";
    const int r = agent.add_remote_candidate(host(a.c_str()), kStart);
    ok += r == kOk;
    limited += r == kErrLimitReached;
  }
  EXPECT_EQ(ok, int(kMaxRemoteCandidates));
  EXPECT_EQ(limited, 40 - int(kMaxRemoteCandidates));
  EXPECT_EQ(agent.remote_candidate_count(), kMaxRemoteCandidates);
  EXPECT_EQ(agent.pair_count(), kMaxRemoteCandidates);
  const AgentStats s = agent.stats();
  EXPECT_EQ(s.remote_dropped, 40 - kMaxRemoteCandidates);
  EXPECT_EQ(s.remote_ignored, 2u);
  // Duplicates are merged, not added.
  EXPECT_EQ(agent.add_remote_candidate(host("198.18.1.1:7000"), kStart), kOk);
  EXPECT_EQ(agent.stats().remote_ignored, 3u);
  EXPECT_EQ(agent.add_remote_candidate(Candidate(), kStart), kErrInvalidArgument);
}

TEST(AgentUnit, HandleDatagramClaimsOnlyItsOwnStun) {
  Agent agent(config(true), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  const uint8_t quic[] = {0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  EXPECT_FALSE(agent.handle_datagram(quic, sizeof quic, kPeer, kStart));
  EXPECT_FALSE(agent.handle_datagram(quic, 0, kPeer, kStart));
  // A stranger's response (e.g. the relay answering the gatherer).
  auto resp = success_response(stun::TransactionId::random(), kLocal, kRemotePwd);
  EXPECT_FALSE(agent.handle_datagram(resp.data(), resp.size(), kPeer, kStart));
  Request other;
  other.username = std::string("ufX9:") + kRemoteUfrag;
  const auto m = other.encode();
  EXPECT_FALSE(agent.handle_datagram(m.data(), m.size(), kPeer, kStart));
  Datagram d;
  EXPECT_FALSE(agent.poll_transmit(kStart, &d));

  std::string_view ufrag;
  ASSERT_TRUE(Agent::peek_local_ufrag(m.data(), m.size(), &ufrag));
  EXPECT_EQ(ufrag, "ufX9");
  EXPECT_FALSE(Agent::peek_local_ufrag(resp.data(), resp.size(), &ufrag));
  EXPECT_FALSE(Agent::peek_local_ufrag(quic, sizeof quic, &ufrag));
}

TEST(AgentUnit, CredentialsCannotChange) {
  Agent agent(config(true), kStart);
  EXPECT_EQ(agent.set_remote_credentials("", kRemotePwd), kErrInvalidArgument);
  EXPECT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  EXPECT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  EXPECT_EQ(agent.set_remote_credentials("ufC1", kRemotePwd), kErrInvalidArgument);
}

TEST(AgentUnit, NoCandidatesAfterEndFailsAtOnce) {
  Agent agent(config(true), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  ASSERT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  Candidate relay = host("203.0.113.50:443");
  relay.type = CandidateType::kRelay;
  agent.add_remote_candidate(relay, kStart);
  agent.end_of_remote_candidates(kStart);
  AgentEvent e;
  ASSERT_TRUE(agent.poll_event(&e));
  EXPECT_EQ(e.type, AgentEventType::kFailed);
  EXPECT_TRUE(agent.failed());
  EXPECT_EQ(agent.next_deadline(), 0u);
}

// What one direct attempt (one ICE generation) may cost toward addresses nobody answers
// from: every pair's check is sent at most check_rtx.rc times, and the attempt then fails --
// a retry (a new generation) starts the same bounded count again, never an open-ended one.
TEST(AgentUnit, AnAttemptAgainstSilenceIsBoundedInPackets) {
  Agent agent(config(true), kStart);
  agent.add_local_candidate(host("192.0.2.10:5000"));
  ASSERT_EQ(agent.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  const char *remotes[] = {"203.0.113.50:4000", "203.0.113.51:4000", "198.51.100.7:4000"};
  for (const char *r : remotes) agent.add_remote_candidate(host(r, 100), kStart);
  agent.end_of_remote_candidates(kStart);
  size_t sent = 0;
  std::map<std::string, size_t> per_address;
  Timestamp now = kStart;
  while (!agent.failed() && now < kStart + 60 * kSec) {
    agent.handle_timeout(now);
    Datagram d;
    while (agent.poll_transmit(now, &d)) {
      ++sent;
      ++per_address[d.to.to_string()];
    }
    const Timestamp next = agent.next_deadline();
    if (next == 0) break;
    now = std::max(now + 1, next);
  }
  EXPECT_TRUE(agent.failed());
  EXPECT_LT(now, kStart + 5 * kSec) << "the attempt fails within seconds";
  const uint32_t rc = config(true).check_rtx.rc;
  EXPECT_LE(sent, rc * 3) << "more than " << rc << " checks per pair";
  for (const auto &kv : per_address) EXPECT_LE(kv.second, rc) << kv.first;
}

// A check made with the credentials of an older generation finds nothing to authenticate
// against: the new generation's agent does not answer it.
TEST(AgentUnit, ChecksOfAnOlderGenerationAreIgnored) {
  AgentConfig old_cfg = config(false);
  AgentConfig new_cfg = config(false);
  new_cfg.local_ufrag = "gen2";
  new_cfg.local_pwd = std::string(24, 'n');
  Agent current(new_cfg, kStart);
  current.add_local_candidate(host("192.0.2.10:5000"));
  ASSERT_EQ(current.set_remote_credentials(kRemoteUfrag, kRemotePwd), kOk);
  // The peer, still on the old generation, checks us with the old username and password.
  Agent stale_peer([&] {
    AgentConfig c = config(true);
    c.local_ufrag = kRemoteUfrag;
    c.local_pwd = kRemotePwd;
    return c;
  }(), kStart);
  stale_peer.add_local_candidate(host("203.0.113.50:4000"));
  ASSERT_EQ(stale_peer.set_remote_credentials(old_cfg.local_ufrag, old_cfg.local_pwd), kOk);
  stale_peer.add_remote_candidate(host("192.0.2.10:5000"), kStart);
  stale_peer.end_of_remote_candidates(kStart);
  Datagram d;
  ASSERT_TRUE(stale_peer.poll_transmit(kStart, &d));
  SocketAddress from;
  ASSERT_EQ(kOk, SocketAddress::parse("203.0.113.50:4000", &from));
  current.handle_datagram(d.data, d.len, from, kStart);
  Datagram reply;
  EXPECT_FALSE(current.poll_transmit(kStart, &reply)) << "answered a stale generation's check";
  EXPECT_TRUE(current.valid_pairs().empty());
}

}  // namespace
}  // namespace parley::ice

#include "ice/gatherer.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "sim_network.h"

namespace parley::ice {
namespace {

using parley::testing::NatModel;
using parley::testing::sim_addr;
using parley::testing::SimNetwork;

GatherConfig config_behind_nat(const SimNetwork &net) {
  GatherConfig c;
  c.host_addresses = {sim_addr("[2001:db8::2]:5000"), net.client()};
  c.stun_servers = {{sim_addr("203.0.113.10:3478"), net.client()}};
  return c;
}

TEST(Gatherer, HostSrflxAndRelayCandidates) {
  SimNetwork net(NatModel{});
  GatherConfig c = config_behind_nat(net);
  c.relay = sim_addr("203.0.113.50:443");
  Gatherer g(c, 0);
  // Host and relay candidates are available before any network activity (trickle).
  Candidate first;
  ASSERT_TRUE(g.poll_candidate(&first));
  EXPECT_EQ(first.type, CandidateType::kHost);
  net.run(g);
  ASSERT_TRUE(g.done());
  const auto &all = g.candidates();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].address, sim_addr("[2001:db8::2]:5000"));
  EXPECT_EQ(all[1].address, net.client());
  EXPECT_EQ(all[2].type, CandidateType::kRelay);
  EXPECT_EQ(all[3].type, CandidateType::kServerReflexive);
  EXPECT_EQ(all[3].address, sim_addr("198.51.100.1:5000"));
  EXPECT_EQ(all[3].related, net.client());
  // RFC 8445 ordering: host > srflx > relay; earlier interfaces preferred.
  EXPECT_GT(all[0].priority, all[1].priority);
  EXPECT_GT(all[1].priority, all[3].priority);
  EXPECT_GT(all[3].priority, all[2].priority);
  EXPECT_EQ(g.servers()[0].status, ServerResult::Status::kOk);
}

TEST(Gatherer, SrflxEqualToHostIsDropped) {
  NatModel open{NatModel::Mapping::kNone, NatModel::Filtering::kOpen, true, false};
  SimNetwork net(open, sim_addr("198.51.100.1:5000"));
  GatherConfig c;
  c.host_addresses = {net.client()};
  c.stun_servers = {{sim_addr("203.0.113.10:3478"), net.client()}};
  Gatherer g(c, 0);
  net.run(g);
  ASSERT_TRUE(g.done());
  ASSERT_EQ(g.candidates().size(), 1u);
  EXPECT_EQ(g.candidates()[0].type, CandidateType::kHost);
  EXPECT_EQ(g.servers()[0].status, ServerResult::Status::kOk);
}

TEST(Gatherer, DeadServerDoesNotDelayPastTheDeadline) {
  SimNetwork net(NatModel{});
  const SocketAddress dead = sim_addr("203.0.113.99:3478");
  net.add_dead(dead);
  GatherConfig c = config_behind_nat(net);
  c.stun_servers.push_back({dead, net.client()});
  c.deadline_ms = 1500;
  Gatherer g(c, 0);
  const Timestamp end = net.run(g);
  ASSERT_TRUE(g.done());
  EXPECT_EQ(end, 1500 * kNanosPerMilli) << "ends exactly at the deadline, not at the STUN timeout";
  EXPECT_EQ(g.servers()[0].status, ServerResult::Status::kOk);
  EXPECT_EQ(g.servers()[1].status, ServerResult::Status::kDeadline);
  bool srflx = false;
  for (const auto &cand : g.candidates()) srflx |= cand.type == CandidateType::kServerReflexive;
  EXPECT_TRUE(srflx) << "the live server's candidate is still reported";
}

TEST(Gatherer, AllServersAnsweringEndsEarly) {
  SimNetwork net(NatModel{});
  GatherConfig c = config_behind_nat(net);
  c.stun_servers.push_back({sim_addr("203.0.113.11:3479"), net.client()});
  Gatherer g(c, 0);
  const Timestamp end = net.run(g);
  EXPECT_TRUE(g.done());
  EXPECT_EQ(end, 2 * SimNetwork::kLatency);
  // Endpoint-independent mapping: both servers see the same address: one srflx.
  int srflx = 0;
  for (const auto &cand : g.candidates()) srflx += cand.type == CandidateType::kServerReflexive;
  EXPECT_EQ(srflx, 1);
}

TEST(Gatherer, SymmetricNatGivesOneSrflxPerServer) {
  SimNetwork net({NatModel::Mapping::kAddressPortDependent,
                  NatModel::Filtering::kAddressPortDependent, false, false});
  GatherConfig c = config_behind_nat(net);
  c.stun_servers.push_back({sim_addr("203.0.113.11:3479"), net.client()});
  Gatherer g(c, 0);
  net.run(g);
  int srflx = 0;
  for (const auto &cand : g.candidates()) srflx += cand.type == CandidateType::kServerReflexive;
  EXPECT_EQ(srflx, 2);
}

TEST(Gatherer, NoServersIsDoneImmediately) {
  GatherConfig c;
  c.host_addresses = {sim_addr("10.0.0.2:5000")};
  Gatherer g(c, 0);
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.candidates().size(), 1u);
}

}  // namespace
}  // namespace parley::ice

namespace parley::ice {
namespace {

TEST(Gatherer, HeldServersWaitUntilReleased) {
  parley::testing::SimNetwork net(parley::testing::NatModel{});
  GatherConfig c;
  c.host_addresses = {net.client()};
  const SocketAddress first = parley::testing::sim_addr("203.0.113.10:3478");
  const SocketAddress held = parley::testing::sim_addr("203.0.113.11:3478");
  c.stun_servers = {{first, net.client()}, {held, net.client()}};
  Gatherer g(c, 0);
  bool release = false;
  g.set_hold([&](const SocketAddress &to) { return to == held && !release; });
  Datagram d;
  std::vector<SocketAddress> sent;
  while (g.poll_transmit(0, &d)) sent.push_back(d.to);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], first);
  release = true;
  ASSERT_TRUE(g.poll_transmit(1, &d));
  EXPECT_EQ(d.to, held);
}

}  // namespace
}  // namespace parley::ice

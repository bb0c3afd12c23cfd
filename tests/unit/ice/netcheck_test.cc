#include "ice/netcheck.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "sim_network.h"

namespace parley::ice {
namespace {

using parley::testing::NatModel;
using parley::testing::sim_addr;
using parley::testing::SimNetwork;
using M = NatModel::Mapping;
using F = NatModel::Filtering;

NetcheckReport run(NatModel nat) {
  SimNetwork net(nat);
  NetcheckConfig c;
  c.server = sim_addr("203.0.113.10:3478");
  c.local_base = nat.mapping == M::kNone ? sim_addr("198.51.100.1:5000") : net.client();
  SimNetwork public_net(nat, sim_addr("198.51.100.1:5000"));
  SimNetwork &n = nat.mapping == M::kNone ? public_net : net;
  Netcheck check(c, 0);
  const Timestamp end = n.run(check);
  EXPECT_TRUE(check.done());
  EXPECT_LT(end, 5 * kNanosPerSecond) << "netcheck should finish in a few seconds";
  return check.report();
}

TEST(Netcheck, OpenInternet) {
  NatModel nat{M::kNone, F::kOpen, true, false};
  const NetcheckReport r = run(nat);
  EXPECT_TRUE(r.udp);
  ASSERT_TRUE(r.nat.has_value());
  EXPECT_FALSE(*r.nat);
  EXPECT_EQ(r.filtering, Behaviour::kEndpointIndependent);
  EXPECT_EQ(r.classification, NatClass::kOpenInternet);
  EXPECT_EQ(r.other_address, sim_addr("203.0.113.11:3479"));
}

TEST(Netcheck, FirewalledWithoutNat) {
  NatModel nat{M::kNone, F::kAddressPortDependent, true, false};
  EXPECT_EQ(run(nat).classification, NatClass::kFirewalled);
}

TEST(Netcheck, FullCone) {
  const NetcheckReport r = run({M::kEndpointIndependent, F::kOpen, true, false});
  EXPECT_TRUE(*r.nat);
  EXPECT_EQ(r.mapping, Behaviour::kEndpointIndependent);
  EXPECT_EQ(r.filtering, Behaviour::kEndpointIndependent);
  EXPECT_EQ(r.classification, NatClass::kFullCone);
  EXPECT_EQ(r.mapped, sim_addr("198.51.100.1:5000"));
  EXPECT_TRUE(*r.port_preserved);
}

TEST(Netcheck, RestrictedCone) {
  const NetcheckReport r = run({M::kEndpointIndependent, F::kAddressDependent, true, false});
  EXPECT_EQ(r.filtering, Behaviour::kAddressDependent);
  EXPECT_EQ(r.classification, NatClass::kRestrictedCone);
}

TEST(Netcheck, PortRestrictedCone) {
  const NetcheckReport r =
      run({M::kEndpointIndependent, F::kAddressPortDependent, false, false});
  EXPECT_EQ(r.filtering, Behaviour::kAddressPortDependent);
  EXPECT_EQ(r.classification, NatClass::kPortRestrictedCone);
  EXPECT_FALSE(*r.port_preserved);
  EXPECT_FALSE(*r.hairpinning);
}

TEST(Netcheck, SymmetricAddressAndPortDependent) {
  const NetcheckReport r =
      run({M::kAddressPortDependent, F::kAddressPortDependent, false, false});
  EXPECT_EQ(r.mapping, Behaviour::kAddressPortDependent);
  EXPECT_EQ(r.classification, NatClass::kSymmetric);
}

TEST(Netcheck, SymmetricAddressDependent) {
  const NetcheckReport r = run({M::kAddressDependent, F::kAddressPortDependent, false, false});
  EXPECT_EQ(r.mapping, Behaviour::kAddressDependent);
  EXPECT_EQ(r.classification, NatClass::kSymmetric);
}

TEST(Netcheck, HairpinningDetected) {
  const NetcheckReport r = run({M::kEndpointIndependent, F::kOpen, true, true});
  ASSERT_TRUE(r.hairpinning.has_value());
  EXPECT_TRUE(*r.hairpinning);
}

TEST(Netcheck, UdpBlocked) {
  const NetcheckReport r = run({M::kEndpointIndependent, F::kBlockAllUdp, true, false});
  EXPECT_FALSE(r.udp);
  EXPECT_EQ(r.classification, NatClass::kUdpBlocked);
}

TEST(Netcheck, ServerWithoutAlternateLeavesBehaviourUnknown) {
  SimNetwork net({M::kEndpointIndependent, F::kOpen, true, false}, sim_addr("10.0.0.2:5000"),
                 sim_addr("198.51.100.1:0"), /*server_rfc5780=*/false);
  NetcheckConfig c;
  c.server = sim_addr("203.0.113.10:3478");
  c.local_base = net.client();
  Netcheck check(c, 0);
  net.run(check);
  ASSERT_TRUE(check.done());
  EXPECT_TRUE(check.report().udp);
  EXPECT_FALSE(check.report().other_address.is_set());
  EXPECT_EQ(check.report().mapping, Behaviour::kUnknown);
  EXPECT_EQ(check.report().classification, NatClass::kUnknown);
  EXPECT_TRUE(*check.report().nat);
}

TEST(Netcheck, MinimalRequestsStillWorkButEarnNoOtherAddress) {
  SimNetwork net({M::kEndpointIndependent, F::kOpen, true, false});
  NetcheckConfig c;
  c.server = sim_addr("203.0.113.10:3478");
  c.local_base = net.client();
  c.software.clear();  // 28-byte requests: the no-amplification budget has no room left
  Netcheck check(c, 0);
  net.run(check);
  ASSERT_TRUE(check.done());
  EXPECT_TRUE(check.report().udp);
  EXPECT_FALSE(check.report().other_address.is_set());
  EXPECT_EQ(check.report().mapping, Behaviour::kUnknown);
}

}  // namespace
}  // namespace parley::ice

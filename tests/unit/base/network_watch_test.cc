#include "base/network_watch.h"

#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

namespace parley {
namespace {

template <typename Body>
std::vector<uint8_t> message(uint16_t type, const Body &body,
                             const std::vector<uint8_t> &attrs = {}) {
  std::vector<uint8_t> m(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof body), 0);
  std::memcpy(m.data() + NLMSG_HDRLEN, &body, sizeof body);
  m.insert(m.end(), attrs.begin(), attrs.end());
  struct nlmsghdr h = {};
  h.nlmsg_len = uint32_t(m.size());
  h.nlmsg_type = type;
  std::memcpy(m.data(), &h, sizeof h);
  return m;
}

std::vector<uint8_t> flags_attr(uint32_t flags) {
  std::vector<uint8_t> a(RTA_LENGTH(sizeof flags), 0);
  struct rtattr rta = {};
  rta.rta_len = uint16_t(RTA_LENGTH(sizeof flags));
  rta.rta_type = IFA_FLAGS;
  std::memcpy(a.data(), &rta, sizeof rta);
  std::memcpy(a.data() + RTA_LENGTH(0), &flags, sizeof flags);
  return a;
}

bool matters(const std::vector<uint8_t> &m) { return netlink_message_matters(m.data(), m.size()); }

TEST(NetworkWatch, AddressesThatMatterAndThoseThatDoNot) {
  struct ifaddrmsg ifa = {};
  ifa.ifa_family = AF_INET;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  EXPECT_TRUE(matters(message(RTM_NEWADDR, ifa)));
  EXPECT_TRUE(matters(message(RTM_DELADDR, ifa)));
  ifa.ifa_scope = RT_SCOPE_HOST;  // loopback
  EXPECT_FALSE(matters(message(RTM_NEWADDR, ifa)));
  ifa.ifa_family = AF_INET6;
  ifa.ifa_scope = RT_SCOPE_LINK;  // fe80::
  EXPECT_FALSE(matters(message(RTM_NEWADDR, ifa)));
  EXPECT_FALSE(matters(message(RTM_DELADDR, ifa)));
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  EXPECT_FALSE(matters(message(RTM_NEWADDR, ifa, flags_attr(IFA_F_TENTATIVE))));
  EXPECT_TRUE(matters(message(RTM_NEWADDR, ifa, flags_attr(IFA_F_TEMPORARY))));
  ifa.ifa_flags = IFA_F_TENTATIVE;  // the 8-bit field, when no IFA_FLAGS attribute says more
  EXPECT_FALSE(matters(message(RTM_NEWADDR, ifa)));
}

TEST(NetworkWatch, LinksAndDefaultRoutes) {
  struct ifinfomsg ifi = {};
  ifi.ifi_flags = IFF_UP | IFF_RUNNING;
  ifi.ifi_change = IFF_UP;
  EXPECT_TRUE(matters(message(RTM_NEWLINK, ifi)));
  ifi.ifi_change = 0;  // re-announced, unchanged
  EXPECT_FALSE(matters(message(RTM_NEWLINK, ifi)));
  EXPECT_TRUE(matters(message(RTM_DELLINK, ifi)));
  ifi.ifi_flags = IFF_LOOPBACK | IFF_UP;
  ifi.ifi_change = IFF_UP;
  EXPECT_FALSE(matters(message(RTM_NEWLINK, ifi)));

  struct rtmsg rt = {};
  rt.rtm_family = AF_INET;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_type = RTN_UNICAST;
  rt.rtm_dst_len = 0;
  EXPECT_TRUE(matters(message(RTM_NEWROUTE, rt)));
  EXPECT_TRUE(matters(message(RTM_DELROUTE, rt)));
  rt.rtm_dst_len = 24;  // a subnet route, not the way out
  EXPECT_FALSE(matters(message(RTM_NEWROUTE, rt)));
  rt.rtm_dst_len = 0;
  rt.rtm_table = RT_TABLE_LOCAL;
  EXPECT_FALSE(matters(message(RTM_NEWROUTE, rt)));
}

TEST(NetworkWatch, MalformedMessagesDoNotMatter) {
  struct ifaddrmsg ifa = {};
  std::vector<uint8_t> m = message(RTM_NEWADDR, ifa);
  EXPECT_FALSE(netlink_message_matters(m.data(), 4));            // shorter than a header
  EXPECT_FALSE(netlink_message_matters(m.data(), NLMSG_HDRLEN));  // length says more
  struct nlmsghdr h;
  std::memcpy(&h, m.data(), sizeof h);
  h.nlmsg_len = NLMSG_HDRLEN + 2;  // a body too short for ifaddrmsg
  std::memcpy(m.data(), &h, sizeof h);
  EXPECT_FALSE(netlink_message_matters(m.data(), m.size()));
  h.nlmsg_type = NLMSG_DONE;
  h.nlmsg_len = uint32_t(m.size());
  std::memcpy(m.data(), &h, sizeof h);
  EXPECT_FALSE(netlink_message_matters(m.data(), m.size()));
}

}  // namespace
}  // namespace parley

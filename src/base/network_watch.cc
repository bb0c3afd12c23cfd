#include "base/network_watch.h"

#include <uv.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/log.h"

#ifdef __linux__
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace parley {

#ifdef __linux__

namespace {

bool address_matters(const struct ifaddrmsg *ifa, const uint8_t *attrs, size_t len) {
  if (ifa->ifa_scope == RT_SCOPE_HOST || ifa->ifa_scope == RT_SCOPE_LINK) return false;
  uint32_t flags = ifa->ifa_flags;
  for (auto *rta = reinterpret_cast<const struct rtattr *>(attrs); RTA_OK(rta, len);
       rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == IFA_FLAGS && RTA_PAYLOAD(rta) >= sizeof(uint32_t)) {
      std::memcpy(&flags, RTA_DATA(rta), sizeof flags);
    }
  }
  // An IPv6 address is usable only after duplicate address detection; its arrival as
  // "tentative" is followed by the event that matters.
  return (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) == 0 || ifa->ifa_family != AF_INET6;
}

}  // namespace

bool netlink_message_matters(const uint8_t *msg, size_t len) {
  if (len < sizeof(struct nlmsghdr)) return false;
  struct nlmsghdr h;
  std::memcpy(&h, msg, sizeof h);
  if (h.nlmsg_len < sizeof h || h.nlmsg_len > len) return false;
  const uint8_t *body = msg + NLMSG_HDRLEN;
  const size_t body_len = h.nlmsg_len - NLMSG_HDRLEN;
  switch (h.nlmsg_type) {
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      if (body_len < sizeof(struct ifaddrmsg)) return false;
      struct ifaddrmsg ifa;
      std::memcpy(&ifa, body, sizeof ifa);
      const size_t off = NLMSG_ALIGN(sizeof ifa);
      if (h.nlmsg_type == RTM_DELADDR) {
        return ifa.ifa_scope != RT_SCOPE_HOST && ifa.ifa_scope != RT_SCOPE_LINK;
      }
      return address_matters(&ifa, body + off, body_len > off ? body_len - off : 0);
    }
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      if (body_len < sizeof(struct ifinfomsg)) return false;
      struct ifinfomsg ifi;
      std::memcpy(&ifi, body, sizeof ifi);
      if (ifi.ifi_flags & IFF_LOOPBACK) return false;
      // A link's state change; the repeated announcements of an unchanged link carry
      // ifi_change 0.
      return h.nlmsg_type == RTM_DELLINK || (ifi.ifi_change & (IFF_UP | IFF_RUNNING)) != 0;
    }
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      if (body_len < sizeof(struct rtmsg)) return false;
      struct rtmsg rt;
      std::memcpy(&rt, body, sizeof rt);
      return rt.rtm_dst_len == 0 && rt.rtm_table == RT_TABLE_MAIN && rt.rtm_type == RTN_UNICAST;
    }
    default:
      return false;
  }
}

struct NetworkWatch::Handle {
  uv_poll_t poll;
  NetworkWatch *owner;
};

NetworkWatch::NetworkWatch(Loop &loop, uint32_t debounce_ms, std::function<void()> on_change)
    : loop_(loop), debounce_ms_(debounce_ms), on_change_(std::move(on_change)), debounce_(loop) {}

NetworkWatch::~NetworkWatch() {
  if (!handle_) return;
  handle_->owner = nullptr;
  uv_handle_t *h = reinterpret_cast<uv_handle_t *>(&handle_->poll);
  const int fd = fd_;
  if (uv_is_closing(h)) {
    delete handle_;  // Loop::stop closed it already (see Timer)
  } else {
    uv_close(h, [](uv_handle_t *hh) { delete static_cast<Handle *>(hh->data); });
  }
  ::close(fd);
}

int NetworkWatch::start() {
  if (handle_) return kOk;
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return fail(kErrSocket, "netlink socket: %s", std::strerror(errno));
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                 RTMGRP_IPV6_ROUTE;
  if (::bind(fd, reinterpret_cast<struct sockaddr *>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(kErrSocket, "netlink bind: %s", std::strerror(e));
  }
  auto *h = new Handle;
  h->owner = this;
  h->poll.data = h;
  if (uv_poll_init(loop_.uv(), &h->poll, fd) != 0) {
    delete h;
    ::close(fd);
    return fail(kErrSocket, "cannot poll the netlink socket");
  }
  handle_ = h;
  fd_ = fd;
  uv_poll_start(&h->poll, UV_READABLE, [](uv_poll_t *p, int status, int) {
    auto *hh = static_cast<Handle *>(p->data);
    if (status == 0 && hh->owner) hh->owner->on_readable();
  });
  return kOk;
}

void NetworkWatch::on_readable() {
  alignas(struct nlmsghdr) uint8_t buf[16384];
  bool matters = false;
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      // ENOBUFS: events were lost to an overflow; something changed, so count it as one.
      if (errno == ENOBUFS) matters = true;
      break;
    }
    size_t left = size_t(n);
    for (auto *h = reinterpret_cast<struct nlmsghdr *>(buf); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (netlink_message_matters(reinterpret_cast<const uint8_t *>(h), h->nlmsg_len)) {
        matters = true;
      }
    }
  }
  if (!matters) return;
  ++events_;
  debounce_.start(debounce_ms_, 0, [this] {
    if (on_change_) on_change_();
  });
}

#else  // not Linux: the host calls network_changed

bool netlink_message_matters(const uint8_t *, size_t) { return false; }
struct NetworkWatch::Handle {};
NetworkWatch::NetworkWatch(Loop &loop, uint32_t debounce_ms, std::function<void()> on_change)
    : loop_(loop), debounce_ms_(debounce_ms), on_change_(std::move(on_change)), debounce_(loop) {}
NetworkWatch::~NetworkWatch() = default;
int NetworkWatch::start() { return fail(kErrSocket, "no network watch on this platform"); }
void NetworkWatch::on_readable() {}

#endif

}  // namespace parley

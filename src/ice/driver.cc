#include "ice/driver.h"

#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "ice/candidate.h"

namespace parley::ice {

namespace {
constexpr uint16_t kPortMappingProbePort = 5351;  // any port: only the route is looked up
}  // namespace

int host_interface_addresses(const InterfaceOptions &options, std::vector<SocketAddress> *out) {
  uv_interface_address_t *ifs = nullptr;
  int count = 0;
  const int r = uv_interface_addresses(&ifs, &count);
  if (r != 0) return fail(kErrSocket, "cannot list interfaces: %s", uv_strerror(r));
  std::vector<SocketAddress> v4, v6;
  for (int i = 0; i < count; ++i) {
    SocketAddress a = SocketAddress::from_sockaddr(
        reinterpret_cast<const struct sockaddr *>(&ifs[i].address));
    if (!a.is_set() || a.is_unspecified_ip()) continue;
    if ((ifs[i].is_internal || a.is_loopback()) && !options.include_loopback) continue;
    if (a.is_link_local() && !options.include_link_local) continue;
    a.set_port(0);
    bool dup = false;
    for (const auto &o : a.is_v6() ? v6 : v4) dup |= o == a;
    if (!dup) (a.is_v6() ? v6 : v4).push_back(a);
  }
  uv_free_interface_addresses(ifs, count);
  out->assign(v6.begin(), v6.end());
  out->insert(out->end(), v4.begin(), v4.end());
  order_host_addresses(out);
  return kOk;
}

int default_gateway_v4(SocketAddress *gateway, SocketAddress *local) {
  FILE *f = std::fopen("/proc/net/route", "r");
  if (!f) return fail(kErrNoUsableAddress, "no routing table to read (/proc/net/route)");
  char line[256];
  bool found = false;
  uint32_t gw = 0;
  while (std::fgets(line, sizeof line, f)) {
    char ifname[64];
    unsigned dest, via, flags;
    if (std::sscanf(line, "%63s %x %x %x", ifname, &dest, &via, &flags) != 4) continue;
    constexpr unsigned kRtfUp = 0x1, kRtfGateway = 0x2;
    if (dest == 0 && (flags & kRtfUp) && (flags & kRtfGateway) && via != 0) {
      gw = via;  // in the kernel's (host, little-endian here) order of the address bytes
      found = true;
      break;
    }
  }
  std::fclose(f);
  if (!found) return fail(kErrNoUsableAddress, "no IPv4 default gateway");
  uint8_t b[4];
  std::memcpy(b, &gw, 4);
  SocketAddress g;
  SocketAddress::from_ip_bytes(b, 4, 0, &g);
  // Our source address toward it: what a connected UDP socket is given (nothing is sent).
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return fail(kErrSocket, "socket: %s", std::strerror(errno));
  SocketAddress probe = g;
  probe.set_port(kPortMappingProbePort);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const bool ok = ::connect(fd, probe.sockaddr_ptr(), probe.sockaddr_len()) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) == 0;
  ::close(fd);
  if (!ok) return fail(kErrSocket, "no route to the gateway %s", g.ip_string().c_str());
  *local = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr *>(&ss));
  local->set_port(0);
  *gateway = g;
  return kOk;
}

MachineRunner::MachineRunner(Loop &loop, UdpSocket *v4, UdpSocket *v6, StunMachine &machine,
                             std::function<void()> on_done)
    : v4_(v4), v6_(v6), machine_(machine), on_done_(std::move(on_done)), timer_(loop) {}

void MachineRunner::start() { pump(); }

void MachineRunner::on_datagram(const uint8_t *data, size_t len, const SocketAddress &from) {
  if (finished_) return;
  machine_.handle_datagram(data, len, from, monotonic_now());
  pump();
}

void MachineRunner::pump() {
  if (finished_) return;
  Timestamp now = monotonic_now();
  const Timestamp due = machine_.next_deadline();
  if (due != 0 && due <= now) machine_.handle_timeout(now);
  Datagram d;
  while (machine_.poll_transmit(now, &d)) {
    UdpSocket *s = d.to.is_v6() ? v6_ : v4_;
    if (s == nullptr) {
      PARLEY_LOG(kLogDebug, "ice", "no socket for %s; dropped", d.to.to_string().c_str());
      continue;
    }
    s->send(d.to, d.data, d.len);  // a refused send is like a lost packet: retransmission copes
  }
  if (after_pump_) after_pump_();
  if (machine_.done()) {
    finished_ = true;
    timer_.stop();
    if (on_done_) on_done_();
    return;
  }
  const Timestamp next = machine_.next_deadline();
  if (next != 0) {
    now = monotonic_now();
    const uint64_t ms = next > now ? (next - now + kNanosPerMilli - 1) / kNanosPerMilli : 0;
    timer_.start(ms, 0, [this] { pump(); });
  }
}

}  // namespace parley::ice

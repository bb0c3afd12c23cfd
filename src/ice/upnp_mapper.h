// UPnP IGD port mapping through libminiupnpc (SSDP discovery, then SOAP to the router's
// WANIPConnection service): the third protocol home routers answer, next to PCP and NAT-PMP
// (ice/port_mapper.h). libminiupnpc's calls block (multicast discovery, HTTP), so each
// operation runs on a thread of its own and its answer comes back on the loop; the library is
// used rather than written because UPnP is SSDP + HTTP + XML + SOAP, all of which it handles.
#ifndef PARLEY_ICE_UPNP_MAPPER_H
#define PARLEY_ICE_UPNP_MAPPER_H

#include <functional>
#include <memory>
#include <string>

#include "base/address.h"
#include "base/loop.h"
#include "ice/port_mapper.h"

namespace parley::ice {

struct UpnpConfig {
  uint16_t internal_port = 0;  // our socket's port
  uint32_t lifetime_s = 7200;  // 0 on routers that only take permanent leases
  uint32_t discover_ms = 250;  // how long SSDP waits for a router to answer
};

// One mapping at a time. Loop thread only, except release_blocking().
class UpnpMapper {
 public:
  // error: kOk (mapping set), kErrTimeout (no IGD answered), kErrTransport (the IGD refused).
  using Done = std::function<void(int error, const PortMapping &mapping)>;
  explicit UpnpMapper(Loop &loop) : loop_(loop) {}
  // Abandons an operation in flight (its callback never fires). Does not delete a mapping:
  // release_blocking() does.
  ~UpnpMapper();
  UpnpMapper(const UpnpMapper &) = delete;
  UpnpMapper &operator=(const UpnpMapper &) = delete;

  // Discovers the IGD and maps UDP `internal_port` (asking for the same external port, then a
  // few random ones if it is taken); again after a mapping (a renewal). kOk (then `done`
  // fires once unless abandoned) or kErrInternal (no thread).
  int map(const UpnpConfig &config, Done done);
  bool busy() const { return pending_ != nullptr; }
  // Abandons an operation in flight (its callback never fires); loop thread. After it, only
  // release_blocking() and the destructor may be called, from any thread.
  void abandon();
  const PortMapping &mapping() const { return mapping_; }
  // Deletes the mapping at the router, on the calling thread (after abandon(), any thread),
  // bounded by libminiupnpc's HTTP timeouts. No-op without a mapping.
  void release_blocking();

 private:
  struct Request;
  static void run(std::shared_ptr<Request> r);

  Loop &loop_;
  std::shared_ptr<Request> pending_;
  PortMapping mapping_;
  std::string control_url_, service_type_;  // of the IGD that holds mapping_
};

}  // namespace parley::ice

#endif

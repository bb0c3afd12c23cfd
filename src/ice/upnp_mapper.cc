#include "ice/upnp_mapper.h"

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <sodium.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/log.h"

namespace parley::ice {

namespace {
constexpr int kUpnpConflict = 718;        // ConflictInMappingEntry
constexpr int kUpnpPermanentOnly = 725;   // OnlyPermanentLeasesSupported
constexpr int kPortAttempts = 4;
}  // namespace

struct UpnpMapper::Request {
  UpnpConfig config;
  std::mutex mu;
  Loop *loop = nullptr;        // nullptr once abandoned; guarded by mu
  UpnpMapper *owner = nullptr;  // loop thread only
  std::atomic<bool> abandoned{false};  // lets the thread stop between its calls
  // Results, written by the thread before it posts.
  int error = kErrTimeout;
  std::string why;
  PortMapping mapping;
  std::string control_url, service_type;
};

UpnpMapper::~UpnpMapper() { abandon(); }

void UpnpMapper::abandon() {
  if (!pending_) return;
  {
    std::lock_guard<std::mutex> lock(pending_->mu);
    pending_->loop = nullptr;
  }
  pending_->abandoned = true;
  pending_->owner = nullptr;
  pending_.reset();
}

int UpnpMapper::map(const UpnpConfig &config, Done done) {
  abandon();
  auto r = std::make_shared<Request>();
  r->config = config;
  r->loop = &loop_;
  r->owner = this;
  pending_ = r;
  try {
    std::thread([r, done = std::move(done)] {
      run(r);
      std::lock_guard<std::mutex> lock(r->mu);
      if (!r->loop) return;  // abandoned: the mapper (and maybe the loop) is gone
      r->loop->post([r, done] {
        UpnpMapper *self = r->owner;
        if (!self) return;  // abandoned after the answer was posted
        self->pending_ = nullptr;
        if (r->error == kOk) {
          self->mapping_ = r->mapping;
          self->control_url_ = r->control_url;
          self->service_type_ = r->service_type;
        } else {
          PARLEY_LOG(kLogInfo, "ice", "UPnP: %s", r->why.c_str());
        }
        done(r->error, r->mapping);
      });
    }).detach();
  } catch (const std::system_error &) {
    pending_ = nullptr;
    return fail(kErrInternal, "cannot start the UPnP thread");
  }
  return kOk;
}

void UpnpMapper::run(std::shared_ptr<Request> r) {
  int err = 0;
  // Internet gateway devices only, the newer version first: upnpDiscover() would also wait
  // for answers to searches for any root device.
  static const char *const kTypes[] = {"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
                                       "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                                       nullptr};
  UPNPDev *devs = upnpDiscoverDevices(kTypes, int(r->config.discover_ms), nullptr, nullptr,
                                      UPNP_LOCAL_PORT_ANY, 0, 2, &err, 0);
  if (!devs) {
    r->why = "no Internet gateway device answered";
    return;
  }
  UPNPUrls urls{};
  IGDdatas data{};
  char lan[64] = {0};
  const int igd = UPNP_GetValidIGD(devs, &urls, &data, lan, sizeof lan);
  freeUPNPDevlist(devs);
  if (igd != 1) {
    if (igd != 0) FreeUPNPUrls(&urls);
    r->why = "no connected Internet gateway device";
    return;
  }
  char ext_ip[40] = {0};
  SocketAddress external;
  if (UPNP_GetExternalIPAddress(urls.controlURL, data.first.servicetype, ext_ip) != 0 ||
      SocketAddress::parse_ip(ext_ip, 0, &external) != kOk || !external.is_v4()) {
    FreeUPNPUrls(&urls);
    r->error = kErrTransport;
    r->why = "the gateway has no usable external address";
    return;
  }
  char in_port[8], ext_port[8], lease[16];
  std::snprintf(in_port, sizeof in_port, "%u", unsigned(r->config.internal_port));
  std::snprintf(lease, sizeof lease, "%u", unsigned(r->config.lifetime_s));
  uint16_t want = r->config.internal_port;
  int rc = -1;
  for (int attempt = 0; attempt < kPortAttempts && !r->abandoned; ++attempt) {
    std::snprintf(ext_port, sizeof ext_port, "%u", unsigned(want));
    rc = UPNP_AddPortMapping(urls.controlURL, data.first.servicetype, ext_port, in_port, lan,
                             "parley", "UDP", nullptr, lease);
    if (rc == kUpnpPermanentOnly) {
      std::snprintf(lease, sizeof lease, "0");
      rc = UPNP_AddPortMapping(urls.controlURL, data.first.servicetype, ext_port, in_port, lan,
                               "parley", "UDP", nullptr, lease);
    }
    if (rc != kUpnpConflict) break;
    want = uint16_t(1024 + randombytes_uniform(65535 - 1024));
  }
  if (rc != 0) {
    FreeUPNPUrls(&urls);
    r->error = kErrTransport;
    r->why = std::string("AddPortMapping: ") + strupnperror(rc);
    return;
  }
  external.set_port(want);
  r->mapping.protocol = MappingProtocol::kUpnp;
  r->mapping.external = external;
  r->mapping.lifetime_s = uint32_t(std::strtoul(lease, nullptr, 10));
  r->control_url = urls.controlURL;
  r->service_type = data.first.servicetype;
  r->error = kOk;
  FreeUPNPUrls(&urls);
}

void UpnpMapper::release_blocking() {
  if (mapping_.protocol != MappingProtocol::kUpnp) return;
  char ext_port[8];
  std::snprintf(ext_port, sizeof ext_port, "%u", unsigned(mapping_.external.port()));
  const int rc = UPNP_DeletePortMapping(control_url_.c_str(), service_type_.c_str(), ext_port,
                                        "UDP", nullptr);
  if (rc != 0) PARLEY_LOG(kLogInfo, "ice", "UPnP DeletePortMapping: %s", strupnperror(rc));
  mapping_ = PortMapping();
}

}  // namespace parley::ice

#include "base/resolver.h"

#include <netdb.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace parley {

namespace {

bool dns_name(const std::string &h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int split_host_port(const std::string &text, std::string *host, uint16_t *port) {
  std::string h, p;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(kErrAddressInvalid, "'%s' is not [ipv6]:port", text.c_str());
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    SocketAddress probe;
    if (SocketAddress::parse_ip(h, 1, &probe) != kOk || !probe.is_v6()) {
      return fail(kErrAddressInvalid, "'%s': '%s' is not an IPv6 address", text.c_str(),
                  h.c_str());
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      return fail(kErrAddressInvalid,
                  "'%s' is not host:port (an IPv6 address goes in brackets: [v6]:port)",
                  text.c_str());
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (!dns_name(h)) {
      return fail(kErrAddressInvalid, "'%s': '%s' is neither an IPv4 address nor a DNS name",
                  text.c_str(), h.c_str());
    }
  }
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return fail(kErrAddressInvalid, "'%s': the port is not a number", text.c_str());
  }
  const unsigned long n = std::stoul(p);
  if (n == 0 || n > 65535) {
    return fail(kErrAddressInvalid, "'%s': port %lu is not 1..65535", text.c_str(), n);
  }
  *host = h;
  *port = uint16_t(n);
  return kOk;
}

struct Resolver::Request {
  uv_getaddrinfo_t req;
  Resolver *owner = nullptr;  // nullptr once cancelled: the answer is dropped
  std::string host;
  uint16_t port = 0;
  Done done;
};

Resolver::~Resolver() { cancel(); }

void Resolver::cancel() {
  if (!pending_) return;
  // uv_cancel succeeds only while the lookup waits for a pool thread; either way the
  // callback still comes (UV_EAI_CANCELED or the answer) and frees the request.
  pending_->owner = nullptr;
  uv_cancel(reinterpret_cast<uv_req_t *>(&pending_->req));
  pending_ = nullptr;
}

int Resolver::resolve(const std::string &host, uint16_t port, Done done) {
  cancel();
  auto *r = new Request;
  r->owner = this;
  r->host = host;
  r->port = port;
  r->done = std::move(done);
  r->req.data = r;
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  // Only families the host has an address of (loopback aside): an address nothing can route
  // to would cost a Happy Eyeballs race an attempt delay, and is "no usable address".
  hints.ai_flags = AI_ADDRCONFIG;
  // Literals go through the same path (AI_NUMERICHOST is not set): one code path, one turn.
  const int rc = uv_getaddrinfo(loop_.uv(), &r->req, &Resolver::on_resolved, host.c_str(),
                                nullptr, &hints);
  if (rc != 0) {
    delete r;
    return fail(kErrInternal, "cannot start resolving '%s': %s", host.c_str(), uv_strerror(rc));
  }
  pending_ = r;
  return kOk;
}

void Resolver::on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  std::unique_ptr<Request> r(static_cast<Request *>(req->data));
  std::vector<SocketAddress> v6, v4;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    SocketAddress a = SocketAddress::from_sockaddr(ai->ai_addr);
    if (!a.is_set()) continue;
    a.set_port(r->port);
    auto &list = a.is_v6() ? v6 : v4;
    if (std::find(list.begin(), list.end(), a) == list.end()) list.push_back(a);
  }
  uv_freeaddrinfo(res);
  Resolver *owner = r->owner;
  if (!owner) return;  // cancelled
  owner->pending_ = nullptr;
  v6.insert(v6.end(), v4.begin(), v4.end());
  int error = kOk;
  if (status == UV_EAI_NONAME || status == UV_EAI_AGAIN || status == UV_EAI_FAIL ||
      (status != 0 && status != UV_EAI_NODATA && status != UV_EAI_ADDRFAMILY)) {
    error = fail(kErrNameNotFound, "cannot resolve '%s': %s", r->host.c_str(),
                 uv_strerror(status));
  } else if (v6.empty()) {
    error = fail(kErrNoUsableAddress, "'%s' has no IPv4 or IPv6 address", r->host.c_str());
  }
  Done done = std::move(r->done);
  done(error, v6);
}

}  // namespace parley

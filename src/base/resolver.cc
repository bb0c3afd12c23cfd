#include "base/resolver.h"

#include <netdb.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

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

// What a lookup thread shares with its Resolver. The thread runs getaddrinfo (which may take
// the system resolver's whole timeout) and never holds anything of the Resolver's but this:
// a Resolver that goes away, or starts another lookup, clears `loop` and leaves the thread
// to finish alone, so destroying a context never waits for DNS.
struct Resolver::Request {
  std::mutex mu;
  Loop *loop = nullptr;       // nullptr once cancelled; guarded by mu
  Resolver *owner = nullptr;  // loop thread only
  std::string host;
  uint16_t port = 0;
  Done done;
};

Resolver::~Resolver() { cancel(); }

void Resolver::cancel() {
  if (!pending_) return;
  {
    std::lock_guard<std::mutex> lock(pending_->mu);
    pending_->loop = nullptr;
  }
  pending_->owner = nullptr;
  pending_.reset();
}

int Resolver::resolve(const std::string &host, uint16_t port, Done done) {
  cancel();
  auto r = std::make_shared<Request>();
  r->loop = &loop_;
  r->owner = this;
  r->host = host;
  r->port = port;
  r->done = std::move(done);
  try {
    std::thread([r] { lookup(r); }).detach();
  } catch (const std::system_error &e) {
    return fail(kErrInternal, "cannot start resolving '%s': %s", host.c_str(), e.what());
  }
  pending_ = std::move(r);
  return kOk;
}

void Resolver::lookup(std::shared_ptr<Request> r) {
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  // Only families the host has an address of (loopback aside): an address nothing can route
  // to would cost a Happy Eyeballs race an attempt delay, and is "no usable address".
  hints.ai_flags = AI_ADDRCONFIG;
  // Literals go through the same path (AI_NUMERICHOST is not set): one code path, one turn.
  struct addrinfo *res = nullptr;
  const int status = getaddrinfo(r->host.c_str(), nullptr, &hints, &res);
  std::vector<SocketAddress> v6, v4;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    SocketAddress a = SocketAddress::from_sockaddr(ai->ai_addr);
    if (!a.is_set()) continue;
    a.set_port(r->port);
    auto &list = a.is_v6() ? v6 : v4;
    if (std::find(list.begin(), list.end(), a) == list.end()) list.push_back(a);
  }
  if (res) freeaddrinfo(res);
  v6.insert(v6.end(), v4.begin(), v4.end());
  std::lock_guard<std::mutex> lock(r->mu);
  if (!r->loop) return;  // cancelled
  r->loop->post([r, status, all = std::move(v6)] {
    Resolver *owner = r->owner;
    if (!owner) return;  // cancelled after the answer was posted
    owner->pending_.reset();
    int error = kOk;
    if (status == EAI_NONAME || status == EAI_AGAIN || status == EAI_FAIL ||
        (status != 0 && status != EAI_NODATA && status != EAI_ADDRFAMILY)) {
      error = fail(kErrNameNotFound, "cannot resolve '%s': %s", r->host.c_str(),
                   status == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(status));
    } else if (all.empty()) {
      error = fail(kErrNoUsableAddress, "'%s' has no IPv4 or IPv6 address", r->host.c_str());
    }
    Done done = std::move(r->done);
    done(error, all);
  });
}

}  // namespace parley

#include "base/udp_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/log.h"

namespace parley {

namespace {
constexpr size_t kSlot = 64 * 1024;  // the largest datagram fits
#if PARLEY_HAVE_RECVMMSG
// libuv's recvmmsg path splits the buffer into slots, one datagram each.
constexpr unsigned kRecvFlags = UV_UDP_RECVMMSG;
constexpr size_t kBatch = 8;
#else
// libuv's plain path: one recvmsg per datagram, into the start of the buffer.
constexpr unsigned kRecvFlags = 0;
constexpr size_t kBatch = 1;
#endif
}  // namespace

struct UdpSocket::Impl {
  uv_udp_t handle;
  // Shared so a receiver may replace itself (set_receiver) while it runs.
  std::shared_ptr<ReceiveFn> on_receive;
  std::vector<uint8_t> buffer;
  UdpSocketStats stats;
  bool closed = false;  // the owner is gone; ignore late callbacks
};

UdpSocket::UdpSocket(Loop &loop) : impl_(new Impl) {
  uv_udp_init_ex(loop.uv(), &impl_->handle, AF_UNSPEC | kRecvFlags);
  impl_->handle.data = impl_;
}

UdpSocket::~UdpSocket() {
  uv_handle_t *h = reinterpret_cast<uv_handle_t *>(&impl_->handle);
  impl_->closed = true;
  if (uv_is_closing(h)) {
    delete impl_;  // Loop::stop already closed it (see Timer)
    return;
  }
  uv_close(h, [](uv_handle_t *hh) { delete static_cast<Impl *>(hh->data); });
}

int UdpSocket::bind(const SocketAddress &address, ReceiveFn on_receive) {
  if (!address.is_set()) return fail(kErrInvalidArgument, "bind: no address");
  impl_->on_receive = std::make_shared<ReceiveFn>(std::move(on_receive));
  const unsigned flags = address.is_v6() ? UV_UDP_IPV6ONLY : 0;
  int r = uv_udp_bind(&impl_->handle, address.sockaddr_ptr(), flags);
  if (r != 0) {
    return fail(kErrSocket, "cannot bind UDP %s: %s", address.to_string().c_str(),
                uv_strerror(r));
  }
  impl_->buffer.resize(kSlot * kBatch);
  r = uv_udp_recv_start(
      &impl_->handle,
      [](uv_handle_t *h, size_t, uv_buf_t *buf) {
        auto *impl = static_cast<Impl *>(h->data);
        *buf = uv_buf_init(reinterpret_cast<char *>(impl->buffer.data()),
                           unsigned(impl->buffer.size()));
      },
      [](uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
         unsigned) {
        auto *impl = static_cast<Impl *>(h->data);
        if (impl->closed) return;
        if (nread < 0) {
          ++impl->stats.receive_errors;
          return;
        }
        if (addr == nullptr) return;
        ++impl->stats.datagrams_received;
        std::shared_ptr<ReceiveFn> fn = impl->on_receive;
        if (fn && *fn) {
          (*fn)(reinterpret_cast<const uint8_t *>(buf->base), size_t(nread),
                SocketAddress::from_sockaddr(addr));
        }
      });
  if (r != 0) return fail(kErrSocket, "uv_udp_recv_start: %s", uv_strerror(r));
  return kOk;
}

int UdpSocket::set_buffer_sizes(int receive, int send) {
  uv_handle_t *h = reinterpret_cast<uv_handle_t *>(&impl_->handle);
  int r = receive > 0 ? uv_recv_buffer_size(h, &receive) : 0;
  if (r == 0 && send > 0) r = uv_send_buffer_size(h, &send);
  if (r != 0) return fail(kErrSocket, "socket buffer size: %s", uv_strerror(r));
  return kOk;
}

void UdpSocket::set_receiver(ReceiveFn on_receive) {
  impl_->on_receive = std::make_shared<ReceiveFn>(std::move(on_receive));
}

SocketAddress UdpSocket::local_address() const {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_udp_getsockname(&impl_->handle, reinterpret_cast<struct sockaddr *>(&ss), &len) != 0) {
    return SocketAddress();
  }
  return SocketAddress::from_sockaddr(reinterpret_cast<struct sockaddr *>(&ss));
}

int UdpSocket::send(const SocketAddress &to, const uint8_t *data, size_t len) {
  uv_buf_t buf = uv_buf_init(const_cast<char *>(reinterpret_cast<const char *>(data)),
                             unsigned(len));
  const int r = uv_udp_try_send(&impl_->handle, &buf, 1, to.sockaddr_ptr());
  if (r < 0) {
    ++impl_->stats.send_errors;
    PARLEY_LOG(kLogDebug, "udp", "send to %s: %s", to.to_string().c_str(), uv_strerror(r));
    return fail(kErrSocket, "send to %s: %s", to.to_string().c_str(), uv_strerror(r));
  }
  ++impl_->stats.datagrams_sent;
  return kOk;
}

size_t UdpSocket::send_batch(const OutDatagram *batch, size_t n) {
#if PARLEY_HAVE_SENDMMSG
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t *>(&impl_->handle), &fd) != 0) {
    impl_->stats.send_errors += n;
    return 0;
  }
  constexpr size_t kChunk = 64;
  struct mmsghdr msgs[kChunk];
  struct iovec iov[kChunk];
  size_t done = 0, sent = 0;
  while (done < n) {
    const size_t m = std::min(kChunk, n - done);
    for (size_t i = 0; i < m; ++i) {
      const OutDatagram &d = batch[done + i];
      iov[i].iov_base = const_cast<uint8_t *>(d.data);
      iov[i].iov_len = d.len;
      std::memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = const_cast<struct sockaddr *>(d.to->sockaddr_ptr());
      msgs[i].msg_hdr.msg_namelen = d.to->sockaddr_len();
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r;
    do {
      r = ::sendmmsg(fd, msgs, unsigned(m), 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
      // The first datagram was refused (buffer full, unreachable...): drop it, go on.
      ++impl_->stats.send_errors;
      ++done;
      continue;
    }
    impl_->stats.datagrams_sent += uint64_t(r);
    done += size_t(r);
    sent += size_t(r);
  }
  return sent;
#else
  // One system call per datagram (sendmsg on Unix, through libuv so it ports), dropping
  // each refused one like the sendmmsg path does.
  size_t sent = 0;
  for (size_t i = 0; i < n; ++i) {
    const OutDatagram &d = batch[i];
    uv_buf_t buf = uv_buf_init(const_cast<char *>(reinterpret_cast<const char *>(d.data)),
                               unsigned(d.len));
    if (uv_udp_try_send(&impl_->handle, &buf, 1, d.to->sockaddr_ptr()) < 0) {
      ++impl_->stats.send_errors;
      continue;
    }
    ++sent;
  }
  impl_->stats.datagrams_sent += sent;
  return sent;
#endif
}

const UdpSocketStats &UdpSocket::stats() const { return impl_->stats; }

int route_source(const SocketAddress &destination, SocketAddress *out) {
#if PARLEY_HAVE_SOCK_CLOEXEC
  const int fd = ::socket(destination.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
#else
  // A fork+exec on another thread between the two calls could still inherit the socket; it
  // is a throwaway lookup socket, so that window leaks nothing of value.
  const int fd = ::socket(destination.family(), SOCK_DGRAM, 0);
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd < 0) return fail(kErrSocket, "socket: %s", std::strerror(errno));
  int r = ::connect(fd, destination.sockaddr_ptr(), destination.sockaddr_len());
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (r == 0) r = ::getsockname(fd, reinterpret_cast<struct sockaddr *>(&ss), &len);
  const int e = errno;
  ::close(fd);
  if (r != 0) {
    return fail(kErrSocket, "no route to %s: %s", destination.to_string().c_str(),
                std::strerror(e));
  }
  *out = SocketAddress::from_sockaddr(reinterpret_cast<struct sockaddr *>(&ss));
  return kOk;
}

}  // namespace parley

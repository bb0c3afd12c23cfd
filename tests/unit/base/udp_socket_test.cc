#include "base/udp_socket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include "base/error.h"

namespace parley {
namespace {

using namespace std::chrono_literals;

// Two sockets on loopback exchange a burst; every datagram arrives intact with the right
// source (the burst exercises libuv's recvmmsg batching).
TEST(UdpSocket, LoopbackBurstArrivesIntact) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::unique_ptr<UdpSocket> a, b;
  std::promise<void> all;
  std::vector<std::vector<uint8_t>> got;
  SocketAddress a_addr;
  constexpr int kCount = 64;
  std::promise<int> ready;
  ASSERT_EQ(loop.post([&] {
    a = std::make_unique<UdpSocket>(loop);
    b = std::make_unique<UdpSocket>(loop);
    SocketAddress any;
    SocketAddress::parse("127.0.0.1:0", &any);
    int r = a->bind(any, nullptr);
    if (r == kOk) {
      r = b->bind(any, [&](const uint8_t *d, size_t n, const SocketAddress &from) {
        EXPECT_EQ(from, a->local_address());
        got.emplace_back(d, d + n);
        if (got.size() == kCount) all.set_value();
      });
    }
    ready.set_value(r);
  }), kOk);
  ASSERT_EQ(ready.get_future().get(), kOk);
  ASSERT_EQ(loop.post([&] {
    for (int i = 0; i < kCount; ++i) {
      std::vector<uint8_t> msg(1 + i % 1200, uint8_t(i));
      ASSERT_EQ(a->send(b->local_address(), msg.data(), msg.size()), kOk);
    }
  }), kOk);
  const bool arrived = all.get_future().wait_for(10s) == std::future_status::ready;
  if (!arrived) {
    loop.post([&] {
      a.reset();
      b.reset();
    });
    loop.stop();  // nothing on the loop may touch this frame's locals after we return
    FAIL() << "only " << got.size() << " of " << kCount << " datagrams arrived";
  }
  std::promise<UdpSocketStats> stats;
  loop.post([&] {
    stats.set_value(b->stats());
    a.reset();
    b.reset();
  });
  EXPECT_EQ(stats.get_future().get().datagrams_received, uint64_t(kCount));
  loop.stop();
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(got[i].size(), size_t(1 + i % 1200)) << i;
    EXPECT_EQ(got[i][0], uint8_t(i));
  }
}

TEST(UdpSocket, SendBatchDeliversEveryDatagramInOrder) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::unique_ptr<UdpSocket> a, b;
  std::vector<uint8_t> firsts;
  std::promise<void> all;
  std::promise<size_t> sent;
  loop.post([&] {
    a = std::make_unique<UdpSocket>(loop);
    b = std::make_unique<UdpSocket>(loop);
    SocketAddress any;
    SocketAddress::parse("127.0.0.1:0", &any);
    a->bind(any, nullptr);
    b->bind(any, [&](const uint8_t *d, size_t n, const SocketAddress &) {
      EXPECT_EQ(n, 100u);
      firsts.push_back(d[0]);
      if (firsts.size() == 70) all.set_value();
    });
    const SocketAddress to = b->local_address();
    std::vector<std::vector<uint8_t>> payloads;
    std::vector<OutDatagram> batch;
    for (int i = 0; i < 70; ++i) payloads.emplace_back(100, uint8_t(i));  // > one sendmmsg chunk
    for (auto &p : payloads) batch.push_back({p.data(), p.size(), &to});
    sent.set_value(a->send_batch(batch.data(), batch.size()));
  });
  EXPECT_EQ(sent.get_future().get(), 70u);
  const bool arrived = all.get_future().wait_for(10s) == std::future_status::ready;
  loop.post([&] {
    a.reset();
    b.reset();
  });
  loop.stop();
  ASSERT_TRUE(arrived);
  for (int i = 0; i < 70; ++i) EXPECT_EQ(firsts[i], uint8_t(i));
}

TEST(UdpSocket, BindFailureIsASocketError) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::promise<int> result;
  loop.post([&] {
    UdpSocket s(loop);
    SocketAddress foreign;
    SocketAddress::parse("192.0.2.1:0", &foreign);  // not an address of this machine
    result.set_value(s.bind(foreign, nullptr));
  });
  EXPECT_EQ(result.get_future().get(), kErrSocket);
  loop.stop();
}

TEST(UdpSocket, RouteSourceToLoopback) {
  SocketAddress dst, src;
  SocketAddress::parse("127.0.0.1:9", &dst);
  ASSERT_EQ(route_source(dst, &src), kOk);
  EXPECT_TRUE(src.is_loopback());
}

}  // namespace
}  // namespace parley

// Test fixture for the quic layer: real endpoints on real loopback UDP sockets, all driven by
// one Loop thread, with a thread-safe event recorder the test thread waits on (with deadlines,
// never sleeps).
#ifndef PARLEY_TESTS_SUPPORT_QUIC_PEER_H
#define PARLEY_TESTS_SUPPORT_QUIC_PEER_H

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "base/demux.h"
#include "base/error.h"
#include "base/loop.h"
#include "base/udp_socket.h"
#include "identity/identity.h"
#include "quic/endpoint.h"
#include "quic/endpoint_driver.h"

namespace parley::testing {

template <typename F>
auto on_loop(Loop &loop, F &&f) -> decltype(f()) {
  std::promise<decltype(f())> p;
  loop.post([&] {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      p.set_value();
    } else {
      p.set_value(f());
    }
  });
  return p.get_future().get();
}

// Everything a test wants to know about the events of its connections.
struct Recorder {
  std::mutex m;
  std::condition_variable cv;
  int connected = 0;
  std::vector<quic::CloseInfo> closes;
  std::vector<std::vector<uint8_t>> messages;
  uint64_t datagrams = 0;
  std::vector<std::vector<uint8_t>> datagram_payloads;
  bool keep_datagrams = false;
  std::function<void(quic::Connection &, const quic::Event &)> also;  // runs on the loop

  quic::EventHandler handler() {
    return [this](quic::Connection &c, const quic::Event &e) {
      if (also) also(c, e);
      std::lock_guard<std::mutex> lock(m);
      switch (e.type) {
        case quic::EventType::kConnected: ++connected; break;
        case quic::EventType::kMessage: messages.emplace_back(e.data, e.data + e.len); break;
        case quic::EventType::kDatagram:
          ++datagrams;
          if (keep_datagrams) datagram_payloads.emplace_back(e.data, e.data + e.len);
          break;
        case quic::EventType::kClosed: closes.push_back(*e.close); break;
      }
      cv.notify_all();
    };
  }
  bool wait(const std::function<bool()> &pred,
            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, timeout, pred);
  }
};

inline quic::PeerVerifier pin(const identity::Fingerprint &expected) {
  return [expected](const identity::Fingerprint &fp) { return fp == expected; };
}

// One side: a UDP socket, the endpoint on it, its driver. Create and destroy on the loop.
struct Peer {
  Peer(Loop &loop, const identity::Identity &id, quic::EndpointConfig config = {},
       const char *bind = "127.0.0.1:0")
      : socket(loop) {
    SocketAddress a;
    SocketAddress::parse(bind, &a);
    ok = socket.bind(a, [this](const uint8_t *d, size_t n, const SocketAddress &from) {
      if (classify_datagram(d, n) == DatagramKind::kQuic) driver->on_datagram(d, n, from);
    }) == kOk;
    ok = ok && socket.set_buffer_sizes(4 << 20, 4 << 20) == kOk;
    ok = ok && quic::Endpoint::create(id, config,
                                      [this](const SocketAddress &to, const uint8_t *d, size_t n) {
                                        socket.send(to, d, n);
                                      },
                                      &endpoint) == kOk;
    if (ok) {
      endpoint->set_batch_sender([this](const quic::TxPacket *p, size_t n) {
        OutDatagram batch[quic::kTxBatch];
        for (size_t i = 0; i < n; ++i) batch[i] = {p[i].data, p[i].len, &p[i].to};
        socket.send_batch(batch, n);
      });
      endpoint->set_local_address(socket.local_address());
      driver = std::make_unique<quic::EndpointDriver>(loop, *endpoint);
    }
  }
  SocketAddress address() const { return socket.local_address(); }
  quic::Connection *connect(const SocketAddress &to, quic::PeerVerifier verify,
                            quic::EventHandler handler) {
    quic::Connection *c = nullptr;
    if (endpoint->connect(to, std::move(verify), std::move(handler), monotonic_now(), &c) != kOk) {
      return nullptr;
    }
    driver->kick();
    return c;
  }

  UdpSocket socket;
  std::unique_ptr<quic::Endpoint> endpoint;
  std::unique_ptr<quic::EndpointDriver> driver;
  bool ok = false;
};

}  // namespace parley::testing

#endif

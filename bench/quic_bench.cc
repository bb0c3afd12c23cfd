// QUIC transport benchmarks on loopback, each against a reference measured in the same run:
//   handshake latency       vs. a UDP echo round trip (the floor for any exchange)
//   datagrams per second    vs. raw UDP send+receive between two sockets, same thread/core
//   memory per idle conn.   (heap, from mallinfo2) vs. the same endpoint's first connection
// Everything runs on one loop thread, i.e. one core.
#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "base/log.h"
#include "crypto/backend.h"
#include "quic_peer.h"

using namespace parley;
using namespace parley::testing;
using Clock = std::chrono::steady_clock;

namespace {

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[size_t(p * double(v.size() - 1))];
}

// Median of UDP ping-pong round trips between two loopback sockets.
double udp_rtt_us(int rounds) {
  int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(a, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  bind(b, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  sockaddr_in aa{}, ba{};
  socklen_t l = sizeof aa;
  getsockname(a, reinterpret_cast<sockaddr *>(&aa), &l);
  l = sizeof ba;
  getsockname(b, reinterpret_cast<sockaddr *>(&ba), &l);
  std::vector<double> rtts;
  char buf[1200] = {};
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    sendto(a, buf, 100, 0, reinterpret_cast<sockaddr *>(&ba), sizeof ba);
    recv(b, buf, sizeof buf, 0);
    sendto(b, buf, 100, 0, reinterpret_cast<sockaddr *>(&aa), sizeof aa);
    recv(a, buf, sizeof buf, 0);
    rtts.push_back(us_since(t0));
  }
  close(a);
  close(b);
  return percentile(rtts, 0.5);
}

// Raw UDP: one thread sends `n` 1200-byte datagrams and reads them back, in bursts of 32.
double udp_pps(int n) {
  int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 4 << 20;
  setsockopt(b, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(b, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  socklen_t l = sizeof addr;
  getsockname(b, reinterpret_cast<sockaddr *>(&addr), &l);
  char buf[1200] = {};
  const auto t0 = Clock::now();
  for (int i = 0; i < n; i += 32) {
    for (int j = 0; j < 32; ++j) sendto(a, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    for (int j = 0; j < 32; ++j) recv(b, buf, sizeof buf, 0);
  }
  const double s = us_since(t0) / 1e6;
  close(a);
  close(b);
  return n / s;
}

}  // namespace

int main() {
  log_set_level(kLogOff);
  Loop loop;
  loop.start();
  std::unique_ptr<identity::Identity> server_id, client_id;
  identity::Identity::generate(&server_id);
  identity::Identity::generate(&client_id);
  std::unique_ptr<Peer> server, client;
  Recorder srv, cli;
  on_loop(loop, [&] {
    quic::EndpointConfig deep;  // the bench refills the queue once per millisecond
    deep.connection.datagram_queue = 1024;
    server = std::make_unique<Peer>(loop, *server_id);
    client = std::make_unique<Peer>(loop, *client_id, deep);
    server->endpoint->set_accept([&](const SocketAddress &) {
      return quic::Endpoint::Incoming{pin(client_id->fingerprint()), srv.handler()};
    });
  });

  // --- handshake latency: sequential connects, each closed afterwards ---
  const int kHandshakes = 300;
  std::vector<double> hs;
  for (int i = 0; i < kHandshakes; ++i) {
    const int before = cli.connected;
    quic::Connection *c = nullptr;
    const auto t0 = Clock::now();
    on_loop(loop, [&] { c = client->connect(server->address(), pin(server_id->fingerprint()), cli.handler()); });
    cli.wait([&] { return cli.connected == before + 1; });
    hs.push_back(us_since(t0));
    on_loop(loop, [&] {
      c->close(0, "");
      client->driver->kick();
    });
  }
  double hs_total_us = 0;
  for (double h : hs) hs_total_us += h;
  const double rtt = udp_rtt_us(2000);

  // --- datagram throughput on one connection ---
  quic::Connection *conn = nullptr;
  const int before = cli.connected;
  on_loop(loop, [&] { conn = client->connect(server->address(), pin(server_id->fingerprint()), cli.handler()); });
  cli.wait([&] { return cli.connected == before + 1; });
  const uint64_t kDatagrams = 200000;
  uint64_t queued = 0;
  const uint64_t start_rx = srv.datagrams;
  std::unique_ptr<Timer> pump;
  const auto t0 = Clock::now();
  on_loop(loop, [&] {
    pump = std::make_unique<Timer>(loop);
    pump->start(0, 1, [&] {
      uint8_t d[1100] = {};
      while (queued < kDatagrams && conn->send_datagram(d, sizeof d) == kOk) ++queued;
      client->driver->kick();
      if (queued == kDatagrams) pump->stop();
    });
  });
  // Until QUIC settled every datagram (acknowledged or declared lost).
  for (;;) {
    const quic::PathStats s = on_loop(loop, [&] { return conn->stats(); });
    if (queued == kDatagrams && s.datagrams_acked + s.datagrams_lost >= kDatagrams) break;
    srv.wait([] { return false; }, std::chrono::milliseconds(5));
  }
  const double dg_s = us_since(t0) / 1e6;
  const uint64_t got = srv.datagrams - start_rx;
  const quic::PathStats dst = on_loop(loop, [&] { return conn->stats(); });
  on_loop(loop, [&] { pump.reset(); });
  const double raw_pps = udp_pps(200000);

  // --- memory per idle connection ---
  const int kIdle = 1000;
  on_loop(loop, [&] { malloc_trim(0); });
  const size_t heap0 = mallinfo2().uordblks;
  const int base = cli.connected;
  int dialled = 0;
  std::function<void()> dial = [&] {
    client->connect(server->address(), pin(server_id->fingerprint()), cli.handler());
    ++dialled;
  };
  cli.also = [&](quic::Connection &, const quic::Event &e) {
    if (e.type == quic::EventType::kConnected && dialled < kIdle) {
      dial();
      client->driver->kick();
    }
  };
  on_loop(loop, [&] { for (int i = 0; i < 50; ++i) dial(); });
  cli.wait([&] { return cli.connected == base + kIdle; }, std::chrono::seconds(120));
  const size_t heap1 = mallinfo2().uordblks;
  const double per_pair = double(heap1 - heap0) / kIdle;

  std::printf("TLS backend: %s\n", crypto::backend_name());
  std::printf("%-40s %14s %14s %8s\n", "benchmark (loopback, one core)", "reference", "parley", "ratio");
  std::printf("%-40s %11.1f us %11.1f us %8.1f\n", "handshake latency p50 (vs UDP RTT p50)", rtt,
              percentile(hs, 0.5), percentile(hs, 0.5) / rtt);
  std::printf("%-40s %11.1f us %11.1f us %8.1f\n", "handshake latency p99 (vs UDP RTT p50)", rtt,
              percentile(hs, 0.99), percentile(hs, 0.99) / rtt);
  std::printf("%-40s %10.0f /s  %10.0f /s  %8.3f\n", "sequential handshakes (vs UDP RTTs)",
              1e6 / rtt, kHandshakes / (hs_total_us / 1e6), (kHandshakes / (hs_total_us / 1e6)) / (1e6 / rtt));
  std::printf("%-40s %10.0f pps %10.0f pps %8.2f\n", "1100-byte datagrams (vs raw UDP 1200 B)",
              raw_pps, got / dg_s, (got / dg_s) / raw_pps);
  std::printf("%-40s %14s %11.1f KiB %8s\n", "heap per idle connection (both ends)", "-",
              per_pair / 1024.0, "-");
  std::printf("(%d handshakes; %lu of %lu datagrams delivered in %.2f s: sent %lu, acked %lu, "
              "declared lost %lu, dropped %lu; %d idle connections)\n",
              kHandshakes, (unsigned long)got, (unsigned long)kDatagrams, dg_s,
              (unsigned long)dst.datagrams_sent, (unsigned long)dst.datagrams_acked,
              (unsigned long)dst.datagrams_lost, (unsigned long)dst.datagrams_dropped, kIdle);
  on_loop(loop, [&] {
    server.reset();
    client.reset();
  });
  loop.stop();
  return 0;
}

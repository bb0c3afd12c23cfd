// Audio ring throughput: parley's lock-free SPSC ring against the obvious reference, a
// mutex-guarded std::deque, moving 20 ms chunks of 48 kHz mono PCM between two threads.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/spsc_ring.h"

namespace {

constexpr size_t kChunk = 960;        // 20 ms at 48 kHz
constexpr size_t kTotal = 96000000;   // ~33 minutes of audio

struct MutexDeque {
  std::mutex m;
  std::deque<int16_t> q;
  size_t cap;
  explicit MutexDeque(size_t c) : cap(c) {}
  size_t write(const int16_t *s, size_t n) {
    std::lock_guard<std::mutex> l(m);
    size_t k = std::min(n, cap - q.size());
    q.insert(q.end(), s, s + k);
    return k;
  }
  size_t read(int16_t *d, size_t n) {
    std::lock_guard<std::mutex> l(m);
    size_t k = std::min(n, q.size());
    std::copy(q.begin(), q.begin() + long(k), d);
    q.erase(q.begin(), q.begin() + long(k));
    return k;
  }
};

template <typename Q>
double run(Q &q) {
  const auto t0 = std::chrono::steady_clock::now();
  std::thread producer([&] {
    std::vector<int16_t> chunk(kChunk, 1);
    size_t sent = 0;
    while (sent < kTotal) {
      size_t w = q.write(chunk.data(), std::min(kChunk, kTotal - sent));
      sent += w;
      if (w == 0) std::this_thread::yield();
    }
  });
  std::vector<int16_t> out(kChunk);
  size_t got = 0;
  while (got < kTotal) {
    size_t r = q.read(out.data(), kChunk);
    got += r;
    if (r == 0) std::this_thread::yield();
  }
  producer.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  const size_t cap = 8 * kChunk;
  double best_ring = 1e9, best_ref = 1e9;
  for (int i = 0; i < 3; ++i) {
    parley::SpscRing<int16_t> ring(cap);
    MutexDeque ref(ring.capacity());
    best_ring = std::min(best_ring, run(ring));
    best_ref = std::min(best_ref, run(ref));
  }
  const double msamples = double(kTotal) / 1e6;
  std::printf("%-28s %12s %14s %8s\n", "queue (2 threads, 960/chunk)", "seconds", "Msamples/s",
              "ratio");
  std::printf("%-28s %12.3f %14.1f %8.2f\n", "mutex+deque (reference)", best_ref,
              msamples / best_ref, 1.0);
  std::printf("%-28s %12.3f %14.1f %8.2f\n", "parley SpscRing", best_ring,
              msamples / best_ring, best_ref / best_ring);
  return 0;
}

// A bounded, lock-free, single-producer/single-consumer ring of trivially copyable items
// (audio samples). write() and read() are wait-free, never allocate and never block, so they
// may be called from a real-time audio thread: exactly one thread writes, one thread reads.
//
// Positions are free-running size_t counters; occupancy is their difference, which stays
// correct across wrap-around because the capacity is a power of two (tested from an initial
// position just below SIZE_MAX).
#ifndef PARLEY_BASE_SPSC_RING_H
#define PARLEY_BASE_SPSC_RING_H

#include <atomic>
#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>

namespace parley {

template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable<T>::value, "SpscRing holds raw samples");

 public:
  // Capacity is `min_capacity` rounded up to a power of two (at least 1). Allocates here
  // and only here. `initial_position` exists so tests can start near counter wrap.
  explicit SpscRing(size_t min_capacity, size_t initial_position = 0)
      : capacity_(round_up_pow2(min_capacity)),
        mask_(capacity_ - 1),
        buf_(new T[capacity_]),
        write_pos_(initial_position),
        read_pos_(initial_position),
        producer_read_cache_(initial_position),
        consumer_write_cache_(initial_position) {}

  SpscRing(const SpscRing &) = delete;
  SpscRing &operator=(const SpscRing &) = delete;

  size_t capacity() const { return capacity_; }

  // Producer: copies up to `n` items from `src`; returns how many fit.
  size_t write(const T *src, size_t n) {
    const size_t w = write_pos_.load(std::memory_order_relaxed);
    size_t free_slots = capacity_ - (w - producer_read_cache_);
    if (free_slots < n) {
      producer_read_cache_ = read_pos_.load(std::memory_order_acquire);
      free_slots = capacity_ - (w - producer_read_cache_);
    }
    if (n > free_slots) n = free_slots;
    if (n == 0) return 0;
    copy_in(w, src, n);
    write_pos_.store(w + n, std::memory_order_release);
    return n;
  }

  // Consumer: copies up to `n` items to `dst`; returns how many were available.
  size_t read(T *dst, size_t n) {
    const size_t r = read_pos_.load(std::memory_order_relaxed);
    size_t avail = consumer_write_cache_ - r;
    if (avail < n) {
      consumer_write_cache_ = write_pos_.load(std::memory_order_acquire);
      avail = consumer_write_cache_ - r;
    }
    if (n > avail) n = avail;
    if (n == 0) return 0;
    copy_out(r, dst, n);
    read_pos_.store(r + n, std::memory_order_release);
    return n;
  }

  // Consumer: items ready to read now.
  size_t read_available() const {
    return write_pos_.load(std::memory_order_acquire) -
           read_pos_.load(std::memory_order_relaxed);
  }

  // Producer: slots free to write now.
  size_t write_available() const {
    return capacity_ - (write_pos_.load(std::memory_order_relaxed) -
                        read_pos_.load(std::memory_order_acquire));
  }

 private:
  static size_t round_up_pow2(size_t n) {
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
  }

  void copy_in(size_t pos, const T *src, size_t n) {
    const size_t i = pos & mask_;
    const size_t first = n < capacity_ - i ? n : capacity_ - i;
    std::memcpy(&buf_[i], src, first * sizeof(T));
    std::memcpy(&buf_[0], src + first, (n - first) * sizeof(T));
  }

  void copy_out(size_t pos, T *dst, size_t n) const {
    const size_t i = pos & mask_;
    const size_t first = n < capacity_ - i ? n : capacity_ - i;
    std::memcpy(dst, &buf_[i], first * sizeof(T));
    std::memcpy(dst + first, &buf_[0], (n - first) * sizeof(T));
  }

  const size_t capacity_;
  const size_t mask_;
  const std::unique_ptr<T[]> buf_;
  // Each side's own position and its cached copy of the other side's sit on separate cache
  // lines so the two threads do not false-share.
  alignas(64) std::atomic<size_t> write_pos_;
  alignas(64) std::atomic<size_t> read_pos_;
  alignas(64) size_t producer_read_cache_;
  alignas(64) size_t consumer_write_cache_;
};

}  // namespace parley

#endif

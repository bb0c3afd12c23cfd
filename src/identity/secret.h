// Memory for secrets: sodium_malloc'd (guard pages, mlock'd where the OS allows), wiped by
// sodium_free when released. Also the one place libsodium gets initialised.
#ifndef PARLEY_IDENTITY_SECRET_H
#define PARLEY_IDENTITY_SECRET_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace parley::identity {

// Initialises libsodium once per process. Returns kOk or kErrCrypto.
int sodium_ready();

class SecretBuffer {
 public:
  SecretBuffer() = default;
  ~SecretBuffer();
  SecretBuffer(SecretBuffer &&other) noexcept;
  SecretBuffer &operator=(SecretBuffer &&other) noexcept;
  SecretBuffer(const SecretBuffer &) = delete;
  SecretBuffer &operator=(const SecretBuffer &) = delete;

  // Allocates `size` zeroed bytes, releasing any previous contents. kOk or kErrNoMemory.
  int allocate(size_t size);
  // Allocates `len` bytes holding a copy of `data` (NULL only with `len` 0: releases).
  // kOk or kErrNoMemory (then empty).
  int assign(const void *data, size_t len);
  // The contents as text (an ICE password); empty when nothing is allocated.
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char *>(data_), size_);
  }
  bool empty() const { return size_ == 0; }
  uint8_t *data() { return data_; }
  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release();
  uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

// Overwrites `n` bytes at `p` in a way the compiler cannot drop (sodium_memzero).
void wipe_memory(void *p, size_t n);
// Overwrites a string's characters, then clears it: for a secret that must pass through a
// std::string (a codec field, an API argument) on its way into a SecretBuffer.
void wipe(std::string *s);

// An allocator that wipes what it frees: for short-lived copies of secrets in containers
// (plain heap memory, unlike SecretBuffer's guarded pages).
template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U> &) {}
  T *allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T *p, size_t n) {
    wipe_memory(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U> &) const { return true; }
  template <typename U>
  bool operator!=(const WipingAllocator<U> &) const { return false; }
};
using WipedBytes = std::vector<uint8_t, WipingAllocator<uint8_t>>;

}  // namespace parley::identity

#endif

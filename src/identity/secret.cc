#include "identity/secret.h"

#include <sodium.h>

#include <cstring>
#include <mutex>

#include "base/error.h"

namespace parley::identity {

int sodium_ready() {
  static std::once_flag once;
  static int result = kOk;
  std::call_once(once, [] {
    if (sodium_init() < 0) result = fail(kErrCrypto, "sodium_init failed");
  });
  return result;
}

SecretBuffer::~SecretBuffer() { release(); }

SecretBuffer::SecretBuffer(SecretBuffer &&other) noexcept
    : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBuffer &SecretBuffer::operator=(SecretBuffer &&other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

int SecretBuffer::allocate(size_t size) {
  release();
  int r = sodium_ready();
  if (r != kOk) return r;
  void *p = sodium_malloc(size);
  if (p == nullptr) {
    return fail(kErrNoMemory, "sodium_malloc(%zu) failed", size);
  }
  std::memset(p, 0, size);
  data_ = static_cast<uint8_t *>(p);
  size_ = size;
  return kOk;
}

int SecretBuffer::assign(const void *data, size_t len) {
  if (len == 0) {
    release();
    return kOk;
  }
  const int r = allocate(len);
  if (r != kOk) return r;
  std::memcpy(data_, data, len);
  return kOk;
}

void wipe_memory(void *p, size_t n) {
  if (p != nullptr && n > 0) sodium_memzero(p, n);
}

void wipe(std::string *s) {
  wipe_memory(s->data(), s->size());
  s->clear();
}

void SecretBuffer::release() {
  if (data_ != nullptr) sodium_free(data_);  // wipes before unmapping
  data_ = nullptr;
  size_ = 0;
}

}  // namespace parley::identity

// Memory for secrets: sodium_malloc'd (guard pages, mlock'd where the OS allows), wiped by
// sodium_free when released. Also the one place libsodium gets initialised.
#ifndef PARLEY_IDENTITY_SECRET_H
#define PARLEY_IDENTITY_SECRET_H

#include <cstddef>
#include <cstdint>

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
  uint8_t *data() { return data_; }
  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release();
  uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace parley::identity

#endif

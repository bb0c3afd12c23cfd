// What the stateful fuzz targets share: an invariant check that aborts (libFuzzer then
// reports the input, and the corpus replayer fails), and big-endian reads of input fields.
#ifndef PARLEY_FUZZ_FUZZ_SUPPORT_H
#define PARLEY_FUZZ_FUZZ_SUPPORT_H

#include <cstdint>
#include <cstdlib>

#define CHECK(x)             \
  do {                       \
    if (!(x)) std::abort();  \
  } while (0)

namespace parley::fuzz {

// The `n` (at most 8) bytes at `p` as a big-endian unsigned integer.
inline uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

}  // namespace parley::fuzz

#endif

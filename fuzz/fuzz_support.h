// What the stateful fuzz targets share: an invariant check that aborts (libFuzzer then
// reports the input, and the corpus replayer fails), and big-endian reads of input fields.
#ifndef PARLEY_FUZZ_FUZZ_SUPPORT_H
#define PARLEY_FUZZ_FUZZ_SUPPORT_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>

// The failed condition and its line go to stderr first: a CI log then says which invariant
// broke even when the crashing input is lost with the CI machine.
#define CHECK(x)                                                                   \
  do {                                                                             \
    if (!(x)) {                                                                    \
      std::fprintf(stderr, "CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #x); \
      std::abort();                                                                \
    }                                                                              \
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

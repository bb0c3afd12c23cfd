// Time for the I/O adapters. Sans-I/O cores never read a clock: they take `now` (nanoseconds
// on this monotonic timeline) as an argument, so tests drive them with any clock they like.
#ifndef PARLEY_BASE_CLOCK_H
#define PARLEY_BASE_CLOCK_H

#include <cstdint>

namespace parley {

using Timestamp = uint64_t;  // nanoseconds, monotonic, arbitrary origin

constexpr Timestamp kNanosPerMilli = 1000000ull;
constexpr Timestamp kNanosPerSecond = 1000000000ull;

// Monotonic time in nanoseconds (CLOCK_MONOTONIC via libuv); never goes backwards.
Timestamp monotonic_now();

// The wall clock in milliseconds since the Unix epoch: only for what another device must
// compare with its own (the issue time of a signed media key); it may jump.
uint64_t wall_clock_ms();

}  // namespace parley

#endif

#include "call/recent_calls.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace parley::call {
namespace {

signal::CallId id(uint8_t n) {
  signal::CallId c;
  c.bytes[0] = n;
  return c;
}

constexpr uint64_t kWindow = 600000;
constexpr uint64_t kNow = 1700000000000;

TEST(RecentCalls, ACallIdIsAdmittedOnce) {
  RecentCalls r(kWindow, 16);
  EXPECT_EQ(kOk, r.admit(id(1), kNow, kNow));
  EXPECT_EQ(kErrMediaKey, r.admit(id(1), kNow, kNow + 1000));
  EXPECT_EQ(kOk, r.admit(id(2), kNow, kNow + 1000));
}

TEST(RecentCalls, IdsAreForgottenOnlyOnceTheirKeysAreTooOldAnyway) {
  RecentCalls r(kWindow, 16);
  EXPECT_EQ(kOk, r.admit(id(1), kNow, kNow));
  EXPECT_EQ(kErrMediaKey, r.admit(id(1), kNow, kNow + kWindow));
  EXPECT_EQ(1u, r.size());
  EXPECT_EQ(kOk, r.admit(id(2), kNow + kWindow + 1, kNow + kWindow + 1));
  EXPECT_EQ(1u, r.size()) << "the first id expired";
}

TEST(RecentCalls, AFullMemoryNeverReadmitsAForgottenInvite) {
  RecentCalls r(kWindow, 4);
  for (uint8_t n = 1; n <= 4; ++n) EXPECT_EQ(kOk, r.admit(id(n), kNow + n, kNow + 10));
  // Full: a newer invite pushes out the oldest (issued at kNow + 1) ...
  EXPECT_EQ(kOk, r.admit(id(5), kNow + 5, kNow + 10));
  EXPECT_EQ(4u, r.size());
  // ... which, replayed, is refused by the floor although it is no longer remembered.
  EXPECT_EQ(kErrMediaKey, r.admit(id(1), kNow + 1, kNow + 11));
  // An invite older than everything remembered is refused rather than evicting a newer one.
  EXPECT_EQ(kErrMediaKey, r.admit(id(9), kNow + 2, kNow + 11));
  EXPECT_EQ(kOk, r.admit(id(6), kNow + 6, kNow + 11));
}

}  // namespace
}  // namespace parley::call

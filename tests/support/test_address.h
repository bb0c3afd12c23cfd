// The one way tests write an address literal: parse it, and fail the test if it does not.
#ifndef PARLEY_TESTS_SUPPORT_TEST_ADDRESS_H
#define PARLEY_TESTS_SUPPORT_TEST_ADDRESS_H

#include <gtest/gtest.h>

#include "base/address.h"
#include "base/error.h"

namespace parley::testing {

inline SocketAddress addr(const char *text) {
  SocketAddress a;
  EXPECT_EQ(SocketAddress::parse(text, &a), kOk) << text;
  return a;
}

}  // namespace parley::testing

#endif

#include "identity/secret.h"

#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace parley::identity {
namespace {

TEST(Secret, AssignCopiesIntoGuardedMemory) {
  SecretBuffer b;
  EXPECT_TRUE(b.empty());
  const std::string pwd = "an-ice-password-of-24ch";
  ASSERT_EQ(kOk, b.assign(pwd.data(), pwd.size()));
  EXPECT_EQ(b.view(), pwd);
  EXPECT_NE(static_cast<const void *>(b.data()), static_cast<const void *>(pwd.data()));
  ASSERT_EQ(kOk, b.assign(nullptr, 0));
  EXPECT_TRUE(b.empty());
}

// The secret's bytes are overwritten in place, not just forgotten: clear() keeps the
// string's heap buffer, so the old characters can be inspected through it.
TEST(Secret, WipeOverwritesAStringsCharacters) {
  std::string s(40, 'k');  // longer than any small-string buffer: on the heap
  const size_t cap = s.capacity();
  const char *p = s.data();
  wipe(&s);
  EXPECT_TRUE(s.empty());
  ASSERT_EQ(s.capacity(), cap);
  ASSERT_EQ(s.data(), p);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(p[i], '\0') << i;
}

TEST(Secret, WipedBytesHoldTheirContents) {
  WipedBytes k;
  k.assign({1, 2, 3});
  k.push_back(4);  // reallocation frees (and wipes) the old buffer
  EXPECT_EQ(k, (WipedBytes{1, 2, 3, 4}));
}

}  // namespace
}  // namespace parley::identity

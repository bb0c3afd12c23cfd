#include "base/log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "base/error.h"

namespace parley {
namespace {

struct Captured {
  std::vector<std::pair<int, std::string>> lines;
};

void capture(void *user, int level, const char *message) {
  static_cast<Captured *>(user)->lines.emplace_back(level, message);
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { log_set_sink(capture, &captured_); }
  void TearDown() override {
    log_set_sink(nullptr, nullptr);
    log_set_level(kLogWarn);
  }
  Captured captured_;
};

TEST_F(LogTest, LevelFiltersAndSinkReceivesModuleTaggedLines) {
  ASSERT_TRUE(log_set_level(kLogInfo));
  PARLEY_LOG(kLogInfo, "test", "hello %d", 42);
  PARLEY_LOG(kLogDebug, "test", "hidden");
  ASSERT_EQ(captured_.lines.size(), 1u);
  EXPECT_EQ(captured_.lines[0].first, kLogInfo);
  EXPECT_EQ(captured_.lines[0].second, "[test] hello 42");
  ASSERT_TRUE(log_set_level(kLogOff));
  PARLEY_LOG(kLogError, "test", "silenced");
  EXPECT_EQ(captured_.lines.size(), 1u);
}

TEST_F(LogTest, RejectsUnknownLevel) {
  EXPECT_FALSE(log_set_level(-1));
  EXPECT_FALSE(log_set_level(6));
}

TEST_F(LogTest, LongMessagesAreTruncatedNotOverflowed) {
  std::string big(5000, 'x');
  PARLEY_LOG(kLogError, "test", "%s", big.c_str());
  ASSERT_EQ(captured_.lines.size(), 1u);
  EXPECT_EQ(captured_.lines[0].second.size(), 1023u);
}

TEST_F(LogTest, FailRecordsThreadLocalMessage) {
  EXPECT_EQ(fail(kErrIo, "disk %s", "gone"), kErrIo);
  EXPECT_STREQ(last_error_message(), "disk gone");
  std::string other;
  std::thread([&] { other = last_error_message(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_STREQ(error_description(kErrSeedFilePermissions), "seed file permissions too open");
  EXPECT_STREQ(error_description(-9999), "unknown error");
}

}  // namespace
}  // namespace parley

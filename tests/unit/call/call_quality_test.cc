// CallQuality as the proposal's recipient: an upgrade-confirm switches only to the profile it
// accepted (found by fuzz/fuzz_quality.cc: a confirm naming a better profile than the
// proposal switched past what the recipient allowed and past the host's cap, and one naming
// a profile off the ladder put that id in the stats and the host's change event).
#include "call/call_quality.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "base/error.h"
#include "call/voice_channel.h"
#include "quality/ladder.h"

namespace parley::call {
namespace {

class CallQualityTest : public ::testing::Test {
 protected:
  // A callee (it does not propose) sending with profile 3, its host capping it at 2.
  void SetUp() override {
    AudioConfig ac;
    ac.profile = 3;
    ac.best_profile = 2;
    ASSERT_EQ(VoiceChannel::create(ac, &voice_), kOk);
    CallQuality::Io io;
    io.send = [this](signal::Message &m) {
      sent_.push_back(m);
      return kOk;
    };
    io.changed = [this](uint8_t, uint8_t to, quality::Reason, uint32_t) {
      changes_.push_back(to);
    };
    q_ = std::make_unique<CallQuality>(false, voice_.get(), 2, true, io);
    // A clean direct path: our own view allows every profile, so the cap decides.
    QualityInputs in;
    in.path = path::Path::kDirect;
    in.rtt_ms = 30;
    in.jitter_window_ms = 5000;
    q_->tick(in, 1000);
  }
  signal::Message msg(signal::Type t, uint64_t seq, uint8_t profile) {
    signal::Message m;
    m.type = t;
    m.call_id = signal::CallId{};
    m.sequence = seq;
    m.profile = profile;
    m.media_timestamp = voice_->next_timestamp() + 4800;
    return m;
  }
  // The ack we sent last (its profile: the best we allow).
  uint8_t last_ack_profile() const {
    for (auto it = sent_.rbegin(); it != sent_.rend(); ++it) {
      if (it->type == signal::Type::kUpgradeAck) return *it->profile;
    }
    return 255;
  }

  std::shared_ptr<VoiceChannel> voice_;
  std::unique_ptr<CallQuality> q_;
  std::vector<signal::Message> sent_;
  std::vector<uint8_t> changes_;
};

TEST_F(CallQualityTest, ConfirmOfTheAcceptedProfileSwitches) {
  q_->on_message(msg(signal::Type::kUpgradePropose, 5, 2), 1100);
  EXPECT_EQ(last_ack_profile(), 2);  // accepts: 2 <= 2
  q_->on_message(msg(signal::Type::kUpgradeConfirm, 5, 2), 1200);
  EXPECT_EQ(voice_->profile(), 2);
  EXPECT_EQ(q_->stats().profile, 2);
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0], 2);
}

TEST_F(CallQualityTest, ConfirmNamingABetterProfileThanProposedSwitchesNothing) {
  q_->on_message(msg(signal::Type::kUpgradePropose, 5, 2), 1100);
  EXPECT_EQ(last_ack_profile(), 2);
  // Profile 0 is better than the proposal and past our cap of 2.
  q_->on_message(msg(signal::Type::kUpgradeConfirm, 5, 0), 1200);
  EXPECT_EQ(voice_->profile(), 3);
  EXPECT_EQ(q_->stats().profile, 3);
  EXPECT_EQ(q_->controller().profile(), 3);
  EXPECT_TRUE(changes_.empty());
  // The round is over: a second confirm with the right profile is stale.
  q_->on_message(msg(signal::Type::kUpgradeConfirm, 5, 2), 1300);
  EXPECT_EQ(voice_->profile(), 3);
  EXPECT_TRUE(changes_.empty());
}

TEST_F(CallQualityTest, ProfileOffTheLadderIsNeverSwitchedTo) {
  const uint8_t off = uint8_t(quality::ladder_size() + 195);
  q_->on_message(msg(signal::Type::kUpgradePropose, 6, off), 1100);
  EXPECT_EQ(q_->stats().refusals_sent, 1u);
  q_->on_message(msg(signal::Type::kUpgradeConfirm, 6, off), 1200);
  EXPECT_EQ(voice_->profile(), 3);
  EXPECT_EQ(q_->stats().profile, 3);
  EXPECT_TRUE(changes_.empty());
}

}  // namespace
}  // namespace parley::call

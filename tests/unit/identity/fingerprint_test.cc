#include "identity/fingerprint.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "test_vectors.h"

namespace parley::identity {
namespace {

using parley::testing::kVectorFingerprint;
using parley::testing::kVectorPublicKey;

TEST(Fingerprint, OfPublicKeyMatchesVector) {
  EXPECT_EQ(Fingerprint::of_public_key(kVectorPublicKey).hex(), kVectorFingerprint);
}

TEST(Fingerprint, DisplayIsEightGroupsOfFour) {
  EXPECT_EQ(Fingerprint::of_public_key(kVectorPublicKey).display(),
            "21fe 31df a154 a261 626b f854 046f d227");
}

TEST(Fingerprint, ParseAcceptsCaseAndGrouping) {
  Fingerprint a, b, c;
  ASSERT_EQ(Fingerprint::parse(kVectorFingerprint, &a), kOk);
  ASSERT_EQ(Fingerprint::parse("21FE31DFA154A261626BF854046FD2271B7BED4B6ABE45AA58877EF47F9721B9",
                               &b), kOk);
  ASSERT_EQ(Fingerprint::parse("21fe 31df:a154-a261 626b f854 046f d227 1b7b ed4b 6abe 45aa "
                               "5887 7ef4 7f97 21b9", &c), kOk);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(a.hex(), kVectorFingerprint);
}

TEST(Fingerprint, ParseRejectsMalformed) {
  Fingerprint f;
  const std::string good = kVectorFingerprint;
  const std::string cases[] = {"", "21fe", good + "0", good.substr(0, 63) + "g", " " + good,
                               good + " ", "21fe  " + good.substr(4), good.substr(0, 62)};
  for (const auto &s : cases) {
    Fingerprint before = f;
    EXPECT_EQ(Fingerprint::parse(s.c_str(), &f), kErrFingerprintInvalid) << "'" << s << "'";
    EXPECT_EQ(f, before) << "output untouched on error";
  }
}

TEST(Fingerprint, EqualityDetectsAnyBitDifference) {
  Fingerprint a = Fingerprint::of_public_key(kVectorPublicKey);
  for (size_t i = 0; i < kFingerprintLen; ++i) {
    Fingerprint b = a;
    b.bytes[i] ^= 0x01;
    EXPECT_NE(a, b) << i;
  }
}

}  // namespace
}  // namespace parley::identity

#include "queue/keys.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace salvo::queue::keys {
namespace {

int compareBytes(std::string_view a, std::string_view b) {
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

template <typename T>
int compareValues(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

std::vector<std::uint64_t> interestingU64() {
  return {0,
          1,
          0x7f,
          0x80,
          0xff,
          0x100,
          0xffff,
          0x10000,
          0xffffffff,
          0x100000000,
          UINT64_MAX / 2,
          UINT64_MAX / 2 + 1,
          UINT64_MAX - 1,
          UINT64_MAX};
}

std::vector<std::int64_t> interestingTimes() {
  return {std::numeric_limits<std::int64_t>::min(),
          std::numeric_limits<std::int64_t>::min() + 1,
          -1'000'000,
          -256,
          -1,
          0,
          1,
          255,
          256,
          1'700'000'000'000,
          std::numeric_limits<std::int64_t>::max() - 1,
          std::numeric_limits<std::int64_t>::max()};
}

TEST(KeysTest, FixedWidthRoundTrip) {
  char buf[8];
  for (std::uint32_t v : {0u, 1u, 0x80u, 0x12345678u, 0xfffffffeu, 0xffffffffu}) {
    putU32(buf, v);
    EXPECT_EQ(getU32(buf), v);
  }
  for (auto v : interestingU64()) {
    putU64(buf, v);
    EXPECT_EQ(getU64(buf), v);
  }
  for (auto t : interestingTimes()) {
    putTime(buf, t);
    EXPECT_EQ(getTime(buf), t);
  }
}

TEST(KeysTest, BigEndianLayout) {
  char buf[8];
  putU32(buf, 0x01020304);
  EXPECT_EQ(std::string(buf, 4), std::string("\x01\x02\x03\x04", 4));
  putU64(buf, 0x0102030405060708);
  EXPECT_EQ(std::string(buf, 8), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  // Times: sign bit flipped, so 0 encodes as 0x80 00 .. 00.
  putTime(buf, 0);
  EXPECT_EQ(std::string(buf, 8), std::string("\x80\0\0\0\0\0\0\0", 8));
}

TEST(KeysTest, U64OrderingMatchesNumericOrdering) {
  std::mt19937_64 rng(42);
  auto values = interestingU64();
  for (int i = 0; i < 2000; ++i) {
    values.push_back(rng() >> (rng() % 64));
  }
  for (auto a : values) {
    for (int j = 0; j < 20; ++j) {
      auto b = values[rng() % values.size()];
      char ka[8];
      char kb[8];
      putU64(ka, a);
      putU64(kb, b);
      EXPECT_EQ(compareBytes({ka, 8}, {kb, 8}), compareValues(a, b)) << a << " vs " << b;
    }
  }
}

TEST(KeysTest, TimeOrderingMatchesSignedOrdering) {
  auto times = interestingTimes();
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    times.push_back(static_cast<std::int64_t>(rng()));
  }
  for (auto a : times) {
    for (auto b : times) {
      EXPECT_EQ(compareBytes(timePrefix(a).view(), timePrefix(b).view()), compareValues(a, b))
          << a << " vs " << b;
    }
  }
}

TEST(KeysTest, JobKeyOrderingIsCampaignThenSeq) {
  std::vector<JobId> ids;
  for (std::uint32_t c : {0u, 1u, 2u, 255u, 256u, 0xfffffffeu}) {
    for (std::uint64_t s : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{255},
                            std::uint64_t{256}, std::uint64_t{1} << 40, UINT64_MAX}) {
      ids.push_back({c, s});
    }
  }
  for (const auto& a : ids) {
    EXPECT_EQ(decodeJobKey(jobKey(a).view()), a);
    for (const auto& b : ids) {
      EXPECT_EQ(compareBytes(jobKey(a).view(), jobKey(b).view()), compareValues(a, b))
          << a.str() << " vs " << b.str();
    }
  }
}

TEST(KeysTest, DueKeyOrderingIsTimeThenCampaignThenSeq) {
  std::mt19937_64 rng(3);
  std::vector<DueEntry> entries;
  auto times = interestingTimes();
  for (int i = 0; i < 400; ++i) {
    DueEntry e;
    e.dueMs = times[rng() % times.size()];
    e.id.campaign = static_cast<std::uint32_t>(rng() % 4);
    e.id.seq = rng() % 3 == 0 ? rng() : rng() % 4;
    entries.push_back(e);
  }
  for (const auto& a : entries) {
    auto decoded = decodeDueKey(dueKey(a.dueMs, a.id).view());
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, a);
    for (const auto& b : entries) {
      auto ta = std::tie(a.dueMs, a.id.campaign, a.id.seq);
      auto tb = std::tie(b.dueMs, b.id.campaign, b.id.seq);
      EXPECT_EQ(compareBytes(dueKey(a.dueMs, a.id).view(), dueKey(b.dueMs, b.id).view()),
                compareValues(ta, tb));
    }
  }
}

TEST(KeysTest, TimePrefixBoundsDueKeys) {
  // Everything due at or before t sorts below timePrefix(t + 1); everything later does not.
  std::int64_t t = 1000;
  auto bound = timePrefix(t + 1);
  EXPECT_LT(dueKey(t, {UINT32_MAX, UINT64_MAX}).view(), bound.view());
  EXPECT_LT(dueKey(-5, {0, 0}).view(), bound.view());
  EXPECT_GE(dueKey(t + 1, {0, 0}).view(), bound.view());
}

TEST(KeysTest, CampaignPrefixBoundsItsKeys) {
  for (std::uint32_t c : {0u, 1u, 255u, kMaxCampaign}) {
    auto lo = campaignKey(c);
    auto hi = campaignKey(c + 1);
    EXPECT_EQ(decodeCampaignKey(lo.view()), c);
    for (std::uint64_t s : {std::uint64_t{0}, UINT64_MAX}) {
      EXPECT_GE(jobKey({c, s}).view(), lo.view());
      EXPECT_LT(jobKey({c, s}).view(), hi.view());
    }
    for (std::size_t k = 0; k < kCounterKinds; ++k) {
      auto key = counterKey(c, static_cast<CounterKind>(k));
      EXPECT_GE(key.view(), lo.view());
      EXPECT_LT(key.view(), hi.view());
    }
  }
}

TEST(KeysTest, CounterKeyRoundTripAndKindsMatchJobStates) {
  for (std::size_t k = 0; k < kCounterKinds; ++k) {
    auto decoded = decodeCounterKey(counterKey(77, static_cast<CounterKind>(k)).view());
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->campaign, 77u);
    EXPECT_EQ(static_cast<std::size_t>(decoded->kind), k);
  }
  EXPECT_EQ(counterFor(JobState::Queued), CounterKind::Queued);
  EXPECT_EQ(counterFor(JobState::Deferred), CounterKind::Deferred);
  EXPECT_EQ(counterFor(JobState::Delivered), CounterKind::Delivered);
  EXPECT_EQ(counterFor(JobState::Bounced), CounterKind::Bounced);
  EXPECT_EQ(counterFor(JobState::Expired), CounterKind::Expired);
  EXPECT_EQ(counterFor(JobState::Cancelled), CounterKind::Cancelled);
}

TEST(KeysTest, DecodersRejectWrongSizesAndKinds) {
  for (std::size_t n = 0; n <= 21; ++n) {
    std::string key(n, '\0');
    EXPECT_EQ(decodeCampaignKey(key).has_value(), n == 4);
    EXPECT_EQ(decodeJobKey(key).has_value(), n == 12);
    EXPECT_EQ(decodeDueKey(key).has_value(), n == 20);
    EXPECT_EQ(decodeCounterKey(key).has_value(), n == 5);
  }
  std::string badKind("\0\0\0\1\x09", 5);  // one past CounterKind::Suppressed
  EXPECT_FALSE(decodeCounterKey(badKind));
}

TEST(KeysTest, DeltaIsLittleEndianSigned) {
  for (std::int64_t d : {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1},
                         std::numeric_limits<std::int64_t>::min(),
                         std::numeric_limits<std::int64_t>::max(), std::int64_t{123456789}}) {
    auto bytes = encodeDelta(d);
    EXPECT_EQ(decodeDelta({bytes.data(), bytes.size()}), d);
  }
  auto one = encodeDelta(1);
  EXPECT_EQ(std::string(one.data(), 8), std::string("\1\0\0\0\0\0\0\0", 8));
  EXPECT_FALSE(decodeDelta("1234567"));
  EXPECT_FALSE(decodeDelta("123456789"));
}

}  // namespace
}  // namespace salvo::queue::keys

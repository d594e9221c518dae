#include "engine/retry_schedule.h"

#include <gtest/gtest.h>

#include <vector>

namespace salvo::engine {
namespace {

TEST(RetryScheduleTest, DoublesFromFirstDelayUpToTheCap) {
  campaigns::RetryConfig c;
  c.firstDelaySec = 300;
  c.maxDelaySec = 4 * 3600;
  RetrySchedule s(c);
  EXPECT_EQ(s.delayMs(1), 300'000);
  EXPECT_EQ(s.delayMs(2), 600'000);
  EXPECT_EQ(s.delayMs(3), 1'200'000);
  EXPECT_EQ(s.delayMs(6), 9'600'000);        // 300 s * 32
  EXPECT_EQ(s.delayMs(7), 4 * 3600 * 1000);  // 300 s * 64 = 19200 s > 4 h: capped
  EXPECT_EQ(s.delayMs(1000), 4 * 3600 * 1000);
}

TEST(RetryScheduleTest, ExpiresAtMaxAge) {
  campaigns::RetryConfig c;
  c.maxAgeSec = 3 * 86400;
  RetrySchedule s(c);
  const std::int64_t created = 1'000'000;
  EXPECT_FALSE(s.expired(created, created + 3LL * 86400 * 1000 - 1));
  EXPECT_TRUE(s.expired(created, created + 3LL * 86400 * 1000));
}

}  // namespace
}  // namespace salvo::engine

namespace salvo::engine {
namespace {

campaigns::RetryConfig defaults() {
  return campaigns::RetryConfig{};  // 5 min, doubling to 4 h, 3 days
}

TEST(RetryScheduleTest, JitterSpreadsTenPercentAroundTheDelay) {
  RetrySchedule s(defaults());
  EXPECT_EQ(s.jitteredDelayMs(1, 0.5), 300'000);
  EXPECT_EQ(s.jitteredDelayMs(1, 0.0), 270'000);
  EXPECT_EQ(s.jitteredDelayMs(1, 1.0), 330'000);
  EXPECT_EQ(s.jitteredDelayMs(2, 0.0), 540'000);
  EXPECT_EQ(s.jitteredDelayMs(2, 0.75), 630'000);
  // Out-of-range random values are clamped, not trusted.
  EXPECT_EQ(s.jitteredDelayMs(1, -3.0), 270'000);
  EXPECT_EQ(s.jitteredDelayMs(1, 7.0), 330'000);
}

TEST(RetryScheduleTest, JitterNeverExceedsTheMaximumDelay) {
  RetrySchedule s(defaults());
  EXPECT_EQ(s.jitteredDelayMs(100, 0.999), 4 * 3600 * 1000);
  EXPECT_EQ(s.jitteredDelayMs(100, 0.0), 4 * 3600 * 900);  // 3.6 h
}

TEST(RetryScheduleTest, NoJitterWhenAskedForNone) {
  RetrySchedule s(defaults(), 0.0);
  EXPECT_EQ(s.jitteredDelayMs(3, 0.0), s.delayMs(3));
  EXPECT_EQ(s.jitteredDelayMs(3, 0.99), s.delayMs(3));
}

TEST(RetryScheduleTest, UnitFromSeedIsInRangeAndSpread) {
  double sum = 0;
  int low = 0;
  for (std::uint64_t seed = 0; seed < 10'000; ++seed) {
    const double u = RetrySchedule::unitFromSeed(seed);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    low += u < 0.1 ? 1 : 0;
  }
  EXPECT_NEAR(sum / 10'000, 0.5, 0.02);
  EXPECT_NEAR(low, 1000, 150);
  EXPECT_EQ(RetrySchedule::unitFromSeed(42), RetrySchedule::unitFromSeed(42));
}

TEST(RetryScheduleTest, FollowsTheScheduleToExpiryWithAFakeClock) {
  // A job deferred on every try: when does it come back, and when does it expire?
  RetrySchedule s(defaults());
  const std::int64_t created = 0;
  std::int64_t now = created;
  std::uint32_t attempts = 0;
  std::vector<std::int64_t> delays;
  while (true) {
    ++attempts;  // a try at `now` that defers
    if (s.expired(created, now)) {
      break;
    }
    const std::int64_t d = s.jitteredDelayMs(attempts, RetrySchedule::unitFromSeed(attempts));
    delays.push_back(d);
    now += d;
  }
  ASSERT_GE(delays.size(), 3u);
  EXPECT_GE(delays[0], 270'000);
  EXPECT_LE(delays[0], 330'000);
  for (const std::int64_t d : delays) {
    EXPECT_LE(d, 4 * 3600 * 1000);
  }
  EXPECT_GE(now, 3LL * 86400 * 1000);
  // About 3 days at up to 4 h apart after the ramp: roughly 20 tries.
  EXPECT_GT(attempts, 15u);
  EXPECT_LT(attempts, 30u);
}

}  // namespace
}  // namespace salvo::engine

namespace salvo::engine {
namespace {

TEST(RetryScheduleTest, CampaignOverrideReplacesOnlyTheKeysItSets) {
  campaigns::RetryConfig daemon{600, 7200, 86400};
  RetrySchedule s(daemon, 0.0);
  EXPECT_EQ(s.overriddenBy(campaigns::RetryOverride{}).config(), daemon);
  campaigns::RetryOverride o;
  o.maxAgeSec = 60;
  const RetrySchedule c = s.overriddenBy(o);
  EXPECT_EQ(c.config(), (campaigns::RetryConfig{600, 7200, 60}));
  EXPECT_EQ(c.delayMs(1), 600'000);  // the daemon's first delay
  EXPECT_TRUE(c.expired(0, 60'000));
  EXPECT_FALSE(s.expired(0, 60'000));
}

TEST(RetryScheduleTest, CampaignOverrideKeepsTheJitter) {
  campaigns::RetryOverride o;
  o.firstDelaySec = 10;
  o.maxDelaySec = 10;
  const RetrySchedule c = RetrySchedule(defaults()).overriddenBy(o);
  EXPECT_EQ(c.jitteredDelayMs(1, 0.0), 9'000);
  EXPECT_EQ(c.jitteredDelayMs(5, 0.5), 10'000);
  EXPECT_EQ(c.jitteredDelayMs(5, 0.999), 10'000);  // never above the campaign's maximum
}

TEST(RetryScheduleTest, ShortCampaignScheduleExpiresWhileTheDaemonsWouldNotWithAFakeClock) {
  // The daemon retries for 3 days; the campaign gives up after 10 s, retrying every 2 s at
  // most: a recipient that always defers is tried about five times, then expires.
  campaigns::RetryOverride o;
  o.firstDelaySec = 1;
  o.maxDelaySec = 2;
  o.maxAgeSec = 10;
  const RetrySchedule daemon(defaults());
  const RetrySchedule c = daemon.overriddenBy(o);
  const std::int64_t created = 5'000;
  std::int64_t now = created;
  std::uint32_t attempts = 0;
  while (true) {
    ++attempts;
    if (c.expired(created, now)) {
      break;
    }
    EXPECT_FALSE(daemon.expired(created, now));
    const std::int64_t d = c.jitteredDelayMs(attempts, RetrySchedule::unitFromSeed(attempts));
    EXPECT_GE(d, attempts == 1 ? 900 : 1'800);
    EXPECT_LE(d, 2'000);
    now += d;
  }
  EXPECT_GE(now - created, 10'000);
  EXPECT_LT(now - created, 12'000);
  EXPECT_GE(attempts, 6u);
  EXPECT_LE(attempts, 8u);
  EXPECT_FALSE(daemon.expired(created, now));
}

}  // namespace
}  // namespace salvo::engine

#include "engine/retry_schedule.h"

#include <gtest/gtest.h>

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

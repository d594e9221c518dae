#include "engine/rate_limiter.h"

#include <gtest/gtest.h>

namespace salvo::engine {
namespace {

TEST(RateLimiterTest, UnlimitedAlwaysAllows) {
  RateLimiter r;
  EXPECT_TRUE(r.unlimited());
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(r.tryAcquire(0));
  }
  EXPECT_EQ(r.nextAllowedUs(42), 42);
}

TEST(RateLimiterTest, SpacesSendsEvenlyWithBurstOne) {
  RateLimiter r(20);  // one every 50 ms
  EXPECT_TRUE(r.tryAcquire(1'000'000));
  EXPECT_FALSE(r.tryAcquire(1'000'000));
  EXPECT_EQ(r.nextAllowedUs(1'000'000), 1'050'000);
  EXPECT_FALSE(r.tryAcquire(1'049'999));
  EXPECT_TRUE(r.tryAcquire(1'050'000));
  EXPECT_EQ(r.nextAllowedUs(1'050'000), 1'100'000);
}

TEST(RateLimiterTest, IdleTimeDoesNotAccumulateABurst) {
  RateLimiter r(10);
  EXPECT_TRUE(r.tryAcquire(0));
  // A minute of silence, then a rush: still one at a time, 100 ms apart.
  const std::int64_t later = 60'000'000;
  EXPECT_TRUE(r.tryAcquire(later));
  EXPECT_FALSE(r.tryAcquire(later));
  EXPECT_EQ(r.nextAllowedUs(later), later + 100'000);
}

TEST(RateLimiterTest, NeverExceedsTheRateOverAnyWindow) {
  // Drive it as a destination would: acquire whenever allowed, at the time it says.
  RateLimiter r(20);
  std::int64_t now = 0;
  int sent = 0;
  while (now < 10'000'000) {
    if (r.tryAcquire(now)) {
      ++sent;
    }
    now = r.nextAllowedUs(now + 1);
  }
  EXPECT_EQ(sent, 200);  // 20/s for 10 s
}

TEST(RateLimiterTest, BurstAllowsThatManyAtOnceThenTheRate) {
  RateLimiter r(10, 3);
  EXPECT_TRUE(r.tryAcquire(0));
  EXPECT_TRUE(r.tryAcquire(0));
  EXPECT_TRUE(r.tryAcquire(0));
  EXPECT_FALSE(r.tryAcquire(0));
  EXPECT_EQ(r.nextAllowedUs(0), 100'000);
  EXPECT_TRUE(r.tryAcquire(100'000));
  EXPECT_FALSE(r.tryAcquire(100'000));
}

TEST(RateLimiterTest, SetRateRespacesThePendingSlot) {
  RateLimiter r(10);  // 100 ms
  EXPECT_TRUE(r.tryAcquire(0));
  EXPECT_EQ(r.nextAllowedUs(0), 100'000);
  r.setRate(5);  // shaping halves the rate: the next send is 200 ms after the last
  EXPECT_EQ(r.nextAllowedUs(0), 200'000);
  EXPECT_DOUBLE_EQ(r.rate(), 5);
  r.setRate(0);
  EXPECT_TRUE(r.unlimited());
  EXPECT_TRUE(r.tryAcquire(1));
  r.setRate(1);
  EXPECT_TRUE(r.tryAcquire(2));
  EXPECT_EQ(r.nextAllowedUs(2), 1'000'002);
}

TEST(RateLimiterTest, FractionalRates) {
  RateLimiter r(0.5);  // one every 2 s
  EXPECT_TRUE(r.tryAcquire(0));
  EXPECT_EQ(r.nextAllowedUs(0), 2'000'000);
}

}  // namespace
}  // namespace salvo::engine

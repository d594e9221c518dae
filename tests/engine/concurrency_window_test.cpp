#include "engine/concurrency_window.h"

#include <gtest/gtest.h>

namespace salvo::engine {
namespace {

using smtp::FailureScope;

ConcurrencyWindowConfig config(int initial, int max, int cohorts = 1,
                               std::int64_t probeDelayMs = 60'000) {
  ConcurrencyWindowConfig c;
  c.initial = initial;
  c.max = max;
  c.failedCohortLimit = cohorts;
  c.probeDelayMs = probeDelayMs;
  return c;
}

TEST(ConcurrencyWindowTest, SlowStartGrowsByOnePerSuccessCohort) {
  ConcurrencyWindow w(config(2, 5));
  EXPECT_EQ(w.allowed(0), 2);
  w.onSuccess();
  EXPECT_EQ(w.window(), 2);  // half a cohort
  w.onSuccess();
  EXPECT_EQ(w.window(), 3);  // a cohort of 2 successes: +1
  for (int i = 0; i < 3; ++i) {
    w.onSuccess();
  }
  EXPECT_EQ(w.window(), 4);  // a cohort of 3 more
  for (int i = 0; i < 100; ++i) {
    w.onSuccess();
  }
  EXPECT_EQ(w.window(), 5);  // never above the limit
}

TEST(ConcurrencyWindowTest, RecipientMessageAndConnectionFailuresNeverShrinkIt) {
  ConcurrencyWindow w(config(4, 8));
  for (int i = 0; i < 1000; ++i) {
    w.onFailure(FailureScope::Recipient, 0);
    w.onFailure(FailureScope::Message, 0);
    w.onFailure(FailureScope::Connection, 0);
    w.onFailure(FailureScope::None, 0);
  }
  EXPECT_EQ(w.window(), 4);
  EXPECT_FALSE(w.dead());
}

TEST(ConcurrencyWindowTest, SiteFailuresShrinkItByOnePerCohortDownToOne) {
  ConcurrencyWindow w(config(4, 8, /*cohorts=*/0));  // never dead: watch the window alone
  for (int i = 0; i < 4; ++i) {
    w.onFailure(FailureScope::Site, 0);
  }
  EXPECT_EQ(w.window(), 3);
  for (int i = 0; i < 100; ++i) {
    w.onFailure(FailureScope::Site, 0);
  }
  EXPECT_EQ(w.window(), 1);
  EXPECT_EQ(w.allowed(0), 1);
  EXPECT_FALSE(w.dead());
}

TEST(ConcurrencyWindowTest, DeadAfterFailedCohortsThenOneProbe) {
  ConcurrencyWindow w(config(2, 8, /*cohorts=*/2, /*probe=*/30'000));
  // Each failure is 1/window of a cohort, and shrinks the window by as much: 1/2 (window
  // 1.5), then 1/1.5 (window 1), then 1/1: 2.17 failed cohorts on the third failure.
  w.onFailure(FailureScope::Site, 1'000);
  w.onFailure(FailureScope::Site, 1'000);
  EXPECT_FALSE(w.dead());
  EXPECT_EQ(w.window(), 1);
  w.onFailure(FailureScope::Site, 1'000);
  EXPECT_TRUE(w.dead());
  EXPECT_EQ(w.window(), 0);
  EXPECT_EQ(w.allowed(1'000), 0);
  EXPECT_EQ(w.probeAtMs(), 31'000);
  EXPECT_EQ(w.allowed(30'999), 0);
  EXPECT_EQ(w.allowed(31'000), 1);  // one probe
  // The probe fails: rest again from then.
  w.onFailure(FailureScope::Site, 31'500);
  EXPECT_TRUE(w.dead());
  EXPECT_EQ(w.allowed(31'500), 0);
  EXPECT_EQ(w.probeAtMs(), 61'500);
  // The next probe works: slow start again from the initial window.
  w.onSuccess();
  EXPECT_FALSE(w.dead());
  EXPECT_EQ(w.allowed(61'600), 2);
}

TEST(ConcurrencyWindowTest, ASuccessResetsTheFailedCohortCount) {
  ConcurrencyWindow w(config(1, 1, /*cohorts=*/2));  // window 1: one failure, one cohort
  w.onFailure(FailureScope::Site, 0);                // one failed cohort of 1
  w.onSuccess();                                     // the site works after all
  w.onFailure(FailureScope::Site, 0);
  EXPECT_FALSE(w.dead());
  w.onFailure(FailureScope::Site, 0);
  EXPECT_TRUE(w.dead());
}

TEST(ConcurrencyWindowTest, DefaultConfigIsDeadAfterOneFailedCohort) {
  ConcurrencyWindow w(ConcurrencyWindowConfig{});
  EXPECT_EQ(w.allowed(0), 2);
  w.onFailure(FailureScope::Site, 0);
  EXPECT_FALSE(w.dead());
  w.onFailure(FailureScope::Site, 0);
  EXPECT_TRUE(w.dead());
}

TEST(ConcurrencyWindowTest, SetMaxClampsAndAllowsRegrowth) {
  ConcurrencyWindow w(config(6, 8));
  w.setMax(3);  // a shaping rule halves the connections
  EXPECT_EQ(w.window(), 3);
  for (int i = 0; i < 50; ++i) {
    w.onSuccess();
  }
  EXPECT_EQ(w.window(), 3);
  w.setMax(8);
  for (int i = 0; i < 50; ++i) {
    w.onSuccess();
  }
  EXPECT_EQ(w.window(), 8);
}

TEST(ConcurrencyWindowTest, NonsenseConfigIsMadeSane) {
  ConcurrencyWindow w(config(0, 0));
  EXPECT_EQ(w.allowed(0), 1);
  ConcurrencyWindow v(config(10, 4));
  EXPECT_EQ(v.allowed(0), 4);
}

}  // namespace
}  // namespace salvo::engine

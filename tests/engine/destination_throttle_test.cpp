#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "engine/destination.h"
#include "engine/dispatcher.h"

namespace salvo::engine {
namespace {

using smtp::FailureScope;

DestinationLimits limits(int maxConnections, double perSecond, double perMinute = 0) {
  DestinationLimits l = defaultDestinationLimits();
  l.maxConnections = maxConnections;
  l.initialConnections = std::min(2, maxConnections);
  l.messagesPerSecond = perSecond;
  l.connectionsPerMinute = perMinute;
  l.failedCohortLimit = 0;  // never dead unless a test says so
  return l;
}

TEST(DestinationThrottleTest, SpacesSendsAtTheRateAndTellsWhenToWake) {
  DestinationThrottle t(limits(2, 20), nullptr);
  std::string_view held;
  EXPECT_TRUE(t.trySend(1000, held));
  EXPECT_FALSE(t.trySend(1000, held));
  EXPECT_EQ(held, "messages_per_second");
  EXPECT_EQ(t.nextStepMs(1000), 1050);
  EXPECT_FALSE(t.trySend(1049, held));
  EXPECT_TRUE(t.trySend(1050, held));
  // Over one simulated second at 1 ms steps, exactly 20 sends get through.
  int sent = 0;
  for (std::int64_t now = 2000; now < 3000; ++now) {
    sent += t.trySend(now, held) ? 1 : 0;
  }
  EXPECT_EQ(sent, 20);
}

TEST(DestinationThrottleTest, UnlimitedRateNeverHoldsBack) {
  DestinationThrottle t(limits(4, 0), nullptr);
  std::string_view held;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(t.trySend(5, held));
  }
}

TEST(DestinationThrottleTest, ConnectionsFollowTheWindowAndThePerMinuteRate) {
  DestinationThrottle t(limits(3, 0, 60), nullptr);  // one new connection per second
  std::string_view held;
  EXPECT_EQ(t.connectionsAllowed(0), 2);  // slow start
  EXPECT_TRUE(t.tryOpen(0, 0, held));     // the burst covers the initial connections
  EXPECT_TRUE(t.tryOpen(1, 0, held));
  EXPECT_FALSE(t.tryOpen(2, 0, held));
  EXPECT_EQ(held, "max_connections");
  t.onSuccess();
  t.onSuccess();  // a cohort of successes: the window grows to 3
  EXPECT_EQ(t.connectionsAllowed(0), 3);
  EXPECT_FALSE(t.tryOpen(2, 0, held));
  EXPECT_EQ(held, "connections_per_minute");
  EXPECT_GT(t.nextStepMs(0), 0);
  EXPECT_TRUE(t.tryOpen(2, t.nextStepMs(0), held));
}

TEST(DestinationThrottleTest, OnlySiteFailuresShrinkTheWindowAndSuccessesRecover) {
  DestinationThrottle t(limits(4, 0), nullptr);
  for (int i = 0; i < 10; ++i) {
    t.onSuccess();
  }
  EXPECT_EQ(t.connectionsAllowed(0), 4);
  for (int i = 0; i < 20; ++i) {
    t.onFailure(FailureScope::Recipient, 0);
    t.onFailure(FailureScope::Message, 0);
  }
  EXPECT_EQ(t.connectionsAllowed(0), 4);  // rejections say nothing about the site
  for (int i = 0; i < 4; ++i) {
    t.onFailure(FailureScope::Site, 0);  // a burst of 421s: one cohort
  }
  EXPECT_EQ(t.connectionsAllowed(0), 3);
  for (int i = 0; i < 10; ++i) {
    t.onFailure(FailureScope::Site, 0);
  }
  EXPECT_EQ(t.connectionsAllowed(0), 1);  // never below one
  for (int i = 0; i < 20; ++i) {
    t.onSuccess();
  }
  EXPECT_EQ(t.connectionsAllowed(0), 4);  // recovered
}

TEST(DestinationThrottleTest, DeadSiteWaitsForTheProbe) {
  DestinationLimits l = limits(2, 0);
  l.failedCohortLimit = 1;
  l.probeDelayMs = 5000;
  DestinationThrottle t(l, nullptr);
  t.onFailure(FailureScope::Site, 100);
  t.onFailure(FailureScope::Site, 100);
  EXPECT_TRUE(t.dead());
  std::string_view held;
  EXPECT_EQ(t.connectionsAllowed(200), 0);
  EXPECT_FALSE(t.tryOpen(0, 200, held));
  EXPECT_EQ(t.nextStepMs(200), 5100);
  EXPECT_EQ(t.connectionsAllowed(5100), 1);  // the probe
  t.onSuccess();
  EXPECT_FALSE(t.dead());
}

// Without a configured rate, a rate cut applies to the rate observed when it came, and
// the destination is unlimited again once the factor has climbed back to 1.
TEST(DestinationThrottleTest, RateCutWithoutAConfiguredRateScalesTheObservedRate) {
  std::string error;
  ShapingRule halfRate;
  halfRate.name = "rate";
  halfRate.pattern.code = "421";
  halfRate.action = ShapingAction::ScaleRate;
  halfRate.factor = 0.5;
  halfRate.durationMs = 10'000;
  auto rules = ShapingRules::create({halfRate}, error);
  ASSERT_TRUE(rules) << error;
  DestinationThrottle t(limits(4, 0), &*rules);
  std::string_view held;
  for (int i = 0; i < 80; ++i) {
    ASSERT_TRUE(t.trySend(i * 10, held));  // 100 in the first second
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(t.trySend(800 + i * 10, held));
  }
  ASSERT_TRUE(t.trySend(1'000, held));  // a new second: the last full one had 100
  ASSERT_NE(t.onReply(421, {}, "slow down", "c", 1'001, 1'000), nullptr);
  EXPECT_DOUBLE_EQ(t.rate(), 50);
  EXPECT_TRUE(t.trySend(1'001, held));
  EXPECT_FALSE(t.trySend(1'002, held));  // 20 ms apart now
  EXPECT_EQ(held, "messages_per_second");
  EXPECT_TRUE(t.trySend(11'001, held));
  EXPECT_DOUBLE_EQ(t.rate(), 0);  // recovered: unlimited again
  EXPECT_TRUE(t.trySend(11'001, held));
}

TEST(DestinationThrottleTest, ShapingRulesScaleRateAndConnectionsForTheirDuration) {
  std::string error;
  ShapingRule halfRate;
  halfRate.name = "rate";
  halfRate.pattern.code = "421";
  halfRate.pattern.text = "rate limited";
  halfRate.action = ShapingAction::ScaleRate;
  halfRate.factor = 0.5;
  halfRate.durationMs = 10'000;
  ShapingRule fewer;
  fewer.name = "conns";
  fewer.pattern.text = "too many connections";
  fewer.action = ShapingAction::ScaleConnections;
  fewer.factor = 0.5;
  fewer.durationMs = 10'000;
  ShapingRule stop;
  stop.name = "stop";
  stop.pattern.text = "go away";
  stop.action = ShapingAction::SuspendDestination;
  stop.durationMs = 1000;
  auto rules = ShapingRules::create({halfRate, fewer, stop}, error);
  ASSERT_TRUE(rules) << error;

  DestinationThrottle t(limits(4, 20), &*rules);
  for (int i = 0; i < 10; ++i) {
    t.onSuccess();
  }
  EXPECT_EQ(t.onReply(550, {}, "rate limited", "c", 0, 0), nullptr);  // a 5xx: no rule
  EXPECT_EQ(t.onReply(250, {}, "rate limited", "c", 0, 0), nullptr);
  const ShapingRule* r = t.onReply(421, {4, 7, 0}, "you are rate limited", "c", 0, 0);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "rate");
  EXPECT_DOUBLE_EQ(t.rate(), 10);
  std::string_view held;
  EXPECT_TRUE(t.trySend(0, held));
  EXPECT_EQ(t.nextStepMs(0), 100);  // 10 per second now
  ASSERT_NE(t.onReply(451, {}, "too many connections from you", "c", 0, 0), nullptr);
  EXPECT_EQ(t.connectionsAllowed(0), 2);
  // After the duration both return to the configured limits.
  EXPECT_TRUE(t.trySend(20'000, held));
  EXPECT_DOUBLE_EQ(t.rate(), 20);
  EXPECT_EQ(t.connectionsAllowed(20'000), 2);  // the ceiling is back; the window regrows
  for (int i = 0; i < 10; ++i) {
    t.onSuccess();
  }
  EXPECT_EQ(t.connectionsAllowed(20'000), 4);

  ASSERT_NE(t.onReply(421, {}, "go away", "c", 30'000, 30'000), nullptr);
  EXPECT_TRUE(t.suspended(30'500));
  EXPECT_EQ(t.connectionsAllowed(30'500), 0);
  EXPECT_FALSE(t.trySend(30'500, held));
  EXPECT_EQ(held, "suspended");
  EXPECT_FALSE(t.tryOpen(0, 30'500, held));
  EXPECT_EQ(held, "suspended");
  EXPECT_GE(t.nextStepMs(30'500), 31'000);
  EXPECT_FALSE(t.suspended(31'000));
}

TEST(LimitOverridesTest, FirstMatchingEntryByDomainOrMxApplies) {
  campaigns::LimitOverrideConfig byDomain;
  byDomain.match = "*.slow.example";
  byDomain.values = {{"messages_per_second", "20", "", 0, 0}, {"max_connections", "2", "", 0, 0}};
  campaigns::LimitOverrideConfig byMx;
  byMx.mx = "*.mx.example";
  byMx.values = {{"max_connections", "1", "", 0, 0}};
  std::vector<campaigns::LimitOverrideConfig> overrides{byDomain, byMx};

  DestinationLimits l = defaultDestinationLimits();
  EXPECT_TRUE(applyLimitOverrides(overrides, "a.slow.example", {"x.other"}, l));
  EXPECT_DOUBLE_EQ(l.messagesPerSecond, 20);
  EXPECT_EQ(l.maxConnections, 2);
  EXPECT_EQ(l.initialConnections, 2);

  l = defaultDestinationLimits();
  EXPECT_TRUE(applyLimitOverrides(overrides, "b.example", {"other.net", "A.MX.Example."}, l));
  EXPECT_EQ(l.maxConnections, 1);
  EXPECT_EQ(l.initialConnections, 1);

  l = defaultDestinationLimits();
  EXPECT_FALSE(applyLimitOverrides(overrides, "b.example", {"mx.other"}, l));
  EXPECT_EQ(l, defaultDestinationLimits());
}

TEST(LimitOverridesTest, LoadPolicyReportsBadLimitsWithTheirPosition) {
  campaigns::SalvoConfig config;
  campaigns::LimitOverrideConfig o;
  o.match = "example.com";
  o.values = {{"messages_per_second", "fast", "salvo.yaml", 7, 26},
              {"max_conections", "2", "salvo.yaml", 8, 21}};
  config.limits.push_back(o);
  DispatcherOptions options;
  campaigns::Diagnostics diags;
  EXPECT_FALSE(loadPolicy(config, options, diags));
  ASSERT_EQ(diags.items().size(), 2U);
  EXPECT_EQ(diags.items()[0].line, 7);
  EXPECT_NE(diags.items()[0].str().find("messages_per_second"), std::string::npos)
      << diags.items()[0].str();
  EXPECT_NE(diags.items()[1].str().find("max_conections"), std::string::npos);
  EXPECT_EQ(diags.exitCode(), 78);

  config.policy.providers = "/nonexistent/providers.yaml";
  config.limits.clear();
  campaigns::Diagnostics missing;
  EXPECT_FALSE(loadPolicy(config, options, missing));
  EXPECT_FALSE(missing.items().empty());
}

}  // namespace
}  // namespace salvo::engine

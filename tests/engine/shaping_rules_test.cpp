#include "engine/shaping_rules.h"

#include <gtest/gtest.h>

#include "tests/engine/policy_files.h"

#include <string>

namespace salvo::engine {
namespace {

smtp::EnhancedCode ec(int k, int s, int d) {
  return smtp::EnhancedCode{k, s, d};
}

std::string ruleFor(int code, smtp::EnhancedCode enhanced, const char* text) {
  static const ShapingRules rules;
  const ShapingRule* r = rules.evaluate(code, enhanced, text);
  return r == nullptr ? "" : r->name;
}

TEST(ShapingRulesTest, DefaultsKnowTheProvidersSlowDownReplies) {
  EXPECT_EQ(ruleFor(421, ec(4, 7, 28),
                    "Our system has detected an unusual rate of unsolicited mail originating "
                    "from your IP address. To protect our users from spam, mail sent from your "
                    "IP address has been temporarily rate limited."),
            "gmail-rate-limited");
  EXPECT_EQ(ruleFor(421, ec(4, 7, 0),
                    "Try again later, closing connection. This is a rate "
                    "limit."),
            "gmail-unusual-rate");
  EXPECT_EQ(ruleFor(421, ec(4, 7, 0),
                    "[TSS04] Messages from 192.0.2.1 temporarily deferred "
                    "due to unexpected volume or user complaints"),
            "yahoo-unexpected-volume");
  EXPECT_EQ(ruleFor(421, {},
                    "[TS03] All messages from 192.0.2.1 will be permanently "
                    "deferred"),
            "yahoo-ip-deferred");
  EXPECT_EQ(ruleFor(451, ec(4, 7, 500),
                    "Server busy. Please try again later from "
                    "[192.0.2.1]. (S77714)"),
            "microsoft-server-busy");
  EXPECT_EQ(ruleFor(451, ec(4, 7, 650),
                    "The mail server [192.0.2.1] has been temporarily "
                    "rate limited due to IP reputation."),
            "microsoft-ip-rate-limited");
  EXPECT_EQ(ruleFor(421, ec(4, 3, 2),
                    "The maximum number of concurrent server connections "
                    "has exceeded a limit, closing transmission channel"),
            "too-many-connections");
  EXPECT_EQ(ruleFor(421, {}, "Too many connections from your IP"), "too-many-connections");
  EXPECT_EQ(ruleFor(450, {}, "Throttled: too many messages, slow down"), "rate-limited");
  EXPECT_EQ(ruleFor(550, ec(5, 7, 1),
                    "Our system has detected that this message is likely "
                    "unsolicited mail."),
            "likely-unsolicited");
}

TEST(ShapingRulesTest, OrdinaryFailuresAndSuccessesTriggerNothing) {
  EXPECT_EQ(ruleFor(550, ec(5, 1, 1), "User unknown"), "");
  EXPECT_EQ(ruleFor(451, ec(4, 3, 0), "Temporary local problem"), "");
  EXPECT_EQ(ruleFor(250, {}, "rate limit"), "");  // 2xx is never looked at
  // A 5xx that says "rate limit" is not a slow-down request (the rules are 4xx only).
  EXPECT_EQ(ruleFor(550, {}, "rate limit exceeded for this recipient"), "");
}

TEST(ShapingRulesTest, ShippedFileIsExactlyTheBuiltInRules) {
  campaigns::Diagnostics diags;
  const auto s = ShapingRules::load(testing::shippedPolicyFile("shaping-rules.yaml"), diags);
  ASSERT_TRUE(s.has_value()) << (diags.empty() ? "" : diags.items().front().str());
  ASSERT_EQ(s->rules().size(), defaultShapingRules().size());
  for (std::size_t i = 0; i < s->rules().size(); ++i) {
    EXPECT_EQ(s->rules()[i], defaultShapingRules()[i]) << "rule " << i + 1;
  }
}

std::vector<std::string> errorsOf(const std::string& yaml) {
  campaigns::Diagnostics diags;
  EXPECT_FALSE(ShapingRules::parse(yaml, "s.yaml", diags).has_value());
  std::vector<std::string> out;
  for (const auto& d : diags.items()) {
    EXPECT_EQ(d.exitCode, campaigns::kExitConfig);
    out.push_back(d.str());
  }
  return out;
}

TEST(ShapingRulesTest, ReportsEveryErrorWithItsPosition) {
  const auto errors = errorsOf(R"(rules:
  - { name: a, code: 421, action: scale_rate, duration: 30m }
  - { name: b, code: 421, action: scale_rate, factor: 1.5, duration: 30m }
  - { name: c, code: 421, action: suspend_destination, factor: 0.5, duration: 30m }
  - { name: d, code: 421, action: explode, duration: 30m }
  - { name: e, code: 421, action: suspend_campaign, duration: soon }
  - { code: 421, action: suspend_campaign }
)");
  ASSERT_EQ(errors.size(), 7u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0], "s.yaml:2:5: 'scale_rate' needs a 'factor' in (0, 1], like 0.5");
  EXPECT_EQ(errors[1], "s.yaml:3:55: 'factor' must be a number in (0, 1], like 0.5, not '1.5'");
  EXPECT_EQ(errors[2],
            "s.yaml:4:64: 'factor' applies only to scale_rate and "
            "scale_connections, not to suspend_destination");
  EXPECT_EQ(errors[3].find("s.yaml:5:35: unknown action 'explode'"), 0u) << errors[3];
  EXPECT_EQ(errors[4].find("s.yaml:6:63: 'duration' 'soon' is not a duration"), 0u) << errors[4];
  EXPECT_EQ(errors[5], "s.yaml:7:5: missing required field 'name'");
  EXPECT_EQ(errors[6], "s.yaml:7:5: missing required field 'duration' (like 30m)");
}

TEST(ShapingRulesTest, ParsesACustomRule) {
  campaigns::Diagnostics diags;
  const auto s = ShapingRules::parse(R"(rules:
  - name: slow
    code: 4xx
    text: 'please slow'
    action: scale_connections
    factor: 0.25
    duration: 90s
)",
                                     "s.yaml", diags);
  ASSERT_TRUE(s.has_value()) << diags.items().front().str();
  const ShapingRule* r = s->evaluate(421, {}, "PLEASE SLOW down");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->action, ShapingAction::ScaleConnections);
  EXPECT_DOUBLE_EQ(r->factor, 0.25);
  EXPECT_EQ(r->durationMs, 90'000);
}

ShapingRule make(ShapingAction action, double factor, std::int64_t durationMs) {
  ShapingRule r;
  r.name = "t";
  r.pattern.code = "421";
  r.action = action;
  r.factor = factor;
  r.durationMs = durationMs;
  return r;
}

TEST(ShapingStateTest, ScalingCutsOncePerCohortAndRecoversLinearly) {
  ShapingState s;
  EXPECT_DOUBLE_EQ(s.rateFactor(0), 1.0);
  EXPECT_EQ(s.nextChangeMs(0), std::nullopt);
  const ShapingRule half = make(ShapingAction::ScaleRate, 0.5, 10'000);
  s.apply(half, "c", 100, 90);
  EXPECT_DOUBLE_EQ(s.rateFactor(100), 0.5);
  // Replies to messages sent before that cut (at the old rate): no new cut.
  s.apply(half, "c", 300, 95);
  s.apply(half, "c", 1'100, 99);
  EXPECT_DOUBLE_EQ(s.rateFactor(1'100), 0.55);
  EXPECT_EQ(s.nextChangeMs(1'100), 10'100);
  // Linear recovery to 1 over the rule's duration.
  EXPECT_DOUBLE_EQ(s.rateFactor(5'100), 0.75);
  EXPECT_DOUBLE_EQ(s.rateFactor(10'099), 0.5 + 0.5 * 9'999 / 10'000);
  EXPECT_DOUBLE_EQ(s.rateFactor(10'100), 1.0);
  EXPECT_DOUBLE_EQ(s.connectionFactor(0), 1.0);
  // A message sent after the cut that is refused again cuts the partly recovered factor
  // and restarts the climb.
  ShapingState t;
  t.apply(half, "c", 0, 0);
  t.apply(half, "c", 2'000, 1);  // the factor there was 0.6
  EXPECT_DOUBLE_EQ(t.rateFactor(2'000), 0.3);
  EXPECT_EQ(t.nextChangeMs(2'000), 12'000);
  EXPECT_DOUBLE_EQ(t.rateFactor(7'000), 0.65);
  // A hit after full recovery starts again from 1.
  t.apply(half, "c", 100'000, 100'000);
  EXPECT_DOUBLE_EQ(t.rateFactor(100'000), 0.5);
  // Cuts stop at the floor.
  ShapingState u;
  const ShapingRule slow = make(ShapingAction::ScaleRate, 0.5, 100'000'000);
  for (int i = 0; i < 20; ++i) {
    const std::int64_t t = i * 1000;
    u.apply(slow, "c", t, t);
  }
  EXPECT_NEAR(u.rateFactor(19'000), ShapingState::kMinFactor, 1e-6);
}

TEST(ShapingStateTest, SuspensionsOfTheDestinationAndOfOneCampaign) {
  ShapingState s;
  s.apply(make(ShapingAction::SuspendDestination, 1, 60'000), "c1", 1'000, 1'000);
  EXPECT_TRUE(s.destinationSuspended(1'000));
  EXPECT_TRUE(s.destinationSuspended(60'999));
  EXPECT_FALSE(s.destinationSuspended(61'000));
  s.apply(make(ShapingAction::SuspendCampaign, 1, 10'000), "c1", 0, 0);
  s.apply(make(ShapingAction::ScaleConnections, 0.5, 5'000), "c1", 0, 0);
  EXPECT_TRUE(s.campaignSuspended("c1", 9'999));
  EXPECT_FALSE(s.campaignSuspended("c2", 0));
  EXPECT_FALSE(s.campaignSuspended("c1", 10'000));
  EXPECT_DOUBLE_EQ(s.connectionFactor(0), 0.5);
  EXPECT_EQ(s.nextChangeMs(0), 5'000);
  EXPECT_EQ(s.nextChangeMs(5'000), 10'000);
  EXPECT_EQ(s.nextChangeMs(10'000), 61'000);
  EXPECT_EQ(s.nextChangeMs(61'000), std::nullopt);
}

TEST(ShapingRulesTest, ActionNamesRoundTrip) {
  for (auto a : {ShapingAction::SuspendDestination, ShapingAction::ScaleRate,
                 ShapingAction::ScaleConnections, ShapingAction::SuspendCampaign}) {
    EXPECT_EQ(parseShapingAction(shapingActionName(a)), a);
  }
  EXPECT_EQ(parseShapingAction("pause"), std::nullopt);
}

}  // namespace
}  // namespace salvo::engine

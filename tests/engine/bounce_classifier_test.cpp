#include "engine/bounce_classifier.h"

#include <gtest/gtest.h>

#include "tests/engine/policy_files.h"

#include <string>

namespace salvo::engine {
namespace {

smtp::EnhancedCode ec(int k, int s, int d) {
  return smtp::EnhancedCode{k, s, d};
}

struct Case {
  int code;
  smtp::EnhancedCode enhanced;
  const char* text;
  const char* category;
  bool hard;
};

// Real replies from real servers (lightly trimmed), and what they mean.
const Case kCases[] = {
    {550, ec(5, 1, 1),
     "The email account that you tried to reach does not exist. Please try double-checking "
     "the recipient's email address for typos or unnecessary spaces.",
     "bad-mailbox", true},
    {550, ec(5, 1, 1),
     "<bob@example.com>: Recipient address rejected: User unknown in virtual "
     "mailbox table",
     "bad-mailbox", true},
    {550, ec(5, 1, 10),
     "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
     "lookup",
     "bad-mailbox", true},
    {554,
     {},
     "delivery error: dd This user doesn't have a yahoo.com account (bob@yahoo.com)",
     "bad-mailbox",
     true},
    {550, {}, "No such user here", "bad-mailbox", true},
    {550, ec(5, 4, 1), "Recipient address rejected: Access denied. AS(201806281)", "bad-mailbox",
     true},
    {550, ec(5, 1, 2), "Host or domain name not found. Name service error", "bad-domain", true},
    {550, ec(5, 1, 2), "<x@nowhere.example>: Recipient address rejected: Domain not found",
     "bad-domain", true},
    {550, {}, "domain nowhere.example does not exist (NXDOMAIN)", "bad-domain", true},
    {556, ec(5, 1, 10), "Recipient address has null MX", "bad-domain", true},
    {550, ec(5, 2, 1), "The email account that you tried to reach is disabled.", "inactive-mailbox",
     true},
    {554,
     {},
     "delivery error: dd Sorry your message to bob@yahoo.com cannot be delivered. "
     "This mailbox is disabled (554.30).",
     "inactive-mailbox",
     true},
    {552, ec(5, 2, 2), "The email account that you tried to reach is over quota.", "quota", false},
    {452, ec(4, 2, 2), "The email account that you tried to reach is over quota.", "quota", false},
    {552, {}, "Requested mail action aborted: mailbox full", "quota", false},
    {550, ec(5, 7, 1),
     "Service unavailable, Client host [192.0.2.1] blocked using "
     "Spamhaus. To request removal from this list see https://www.spamhaus.org",
     "spam-related", false},
    {550, ec(5, 7, 1), "Our system has detected that this message is likely unsolicited mail.",
     "spam-related", false},
    {553, ec(5, 7, 1),
     "[BL21] Connections will not be accepted from 192.0.2.1, because the ip "
     "is in Spamhaus's list",
     "spam-related", false},
    {550, ec(5, 7, 708), "Service unavailable. Access denied, traffic not accepted from this IP.",
     "spam-related", false},
    {550, ec(5, 7, 26),
     "Unauthenticated email from example.com is not accepted due to domain's "
     "DMARC policy.",
     "policy-related", false},
    {550, ec(5, 7, 1), "<a@b.example>: Sender address rejected: Access denied", "policy-related",
     false},
    {450, ec(4, 2, 0),
     "<x@y.example>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/",
     "policy-related", false},
    {552, ec(5, 3, 4), "Message size exceeds fixed limit", "content", false},
    {554, ec(5, 6, 0), "Message contains invalid header", "content", false},
    {552, ec(5, 7, 0),
     "This message was blocked because its content presents a potential "
     "security issue.",
     "content", false},
    {550, ec(5, 7, 1), "Relaying denied", "routing", false},
    {554, ec(5, 4, 6), "Routing loop detected", "routing", false},
    {500, ec(5, 5, 1), "Invalid command", "protocol", false},
    {501, {}, "Syntax error in parameters or arguments", "protocol", false},
    {554, ec(5, 4, 7), "Delivery time expired", "message-expired", false},
    {550, ec(5, 7, 0), "Local policy violation", "policy-related", false},
    {554, {}, "Transaction failed", "other", false},
};

TEST(BounceClassifierTest, ClassifiesRealWorldReplies) {
  const BounceClassifier c;
  for (const Case& k : kCases) {
    const BounceClass got = c.classify(k.code, k.enhanced, k.text);
    EXPECT_STREQ(bounceCategoryName(got.category), k.category) << k.code << " " << k.text;
    EXPECT_EQ(got.hard, k.hard) << k.code << " " << k.text;
  }
}

TEST(BounceClassifierTest, ATransientReplyIsNeverHard) {
  const BounceClassifier c;
  const BounceClass got = c.classify(450, ec(4, 1, 1), "user unknown (try again)");
  EXPECT_EQ(got.category, BounceCategory::BadMailbox);
  EXPECT_FALSE(got.hard);
}

TEST(BounceClassifierTest, ClassifiesAParsedMultiLineReply) {
  smtp::Reply r;
  r.code = 550;
  r.enhanced = ec(5, 7, 1);
  r.lines = {"5.7.1 Our system has detected that this message is",
             "5.7.1 likely unsolicited "
             "mail."};
  // Lines are joined with spaces, so a phrase split across lines still matches.
  EXPECT_EQ(BounceClassifier().classify(r).category, BounceCategory::SpamRelated);
}

TEST(BounceClassifierTest, CategoryNamesRoundTrip) {
  for (std::size_t i = 0; i < kBounceCategoryCount; ++i) {
    const auto cat = static_cast<BounceCategory>(i);
    EXPECT_EQ(parseBounceCategory(bounceCategoryName(cat)), cat);
  }
  EXPECT_EQ(parseBounceCategory("Bad-Mailbox"), std::nullopt);
}

TEST(BounceClassifierTest, ShippedFileIsExactlyTheBuiltInRules) {
  campaigns::Diagnostics diags;
  const auto c = BounceClassifier::load(testing::shippedPolicyFile("bounce-rules.yaml"), diags);
  ASSERT_TRUE(c.has_value()) << (diags.empty() ? "" : diags.items().front().str());
  ASSERT_EQ(c->rules().size(), defaultBounceRules().size());
  for (std::size_t i = 0; i < c->rules().size(); ++i) {
    EXPECT_EQ(c->rules()[i], defaultBounceRules()[i]) << "rule " << i + 1;
  }
}

TEST(BounceClassifierTest, ParsesRulesAndTheHardOverride) {
  campaigns::Diagnostics diags;
  const auto c = BounceClassifier::parse(R"(rules:
  - { category: quota, text: 'mailbox full', hard: true }
  - { category: bad-mailbox, enhanced: 5.1.1, hard: false }
  - { category: protocol, code: 5xx }
)",
                                         "rules.yaml", diags);
  ASSERT_TRUE(c.has_value()) << diags.items().front().str();
  EXPECT_TRUE(c->classify(552, {}, "Mailbox FULL").hard);
  const BounceClass b = c->classify(550, ec(5, 1, 1), "nope");
  EXPECT_EQ(b.category, BounceCategory::BadMailbox);
  EXPECT_FALSE(b.hard);
  EXPECT_EQ(b.rule, 1);
  EXPECT_EQ(c->classify(554, {}, "x").category, BounceCategory::Protocol);
  EXPECT_EQ(c->classify(421, {}, "x").rule, -1);
}

std::vector<std::string> errorsOf(const std::string& yaml) {
  campaigns::Diagnostics diags;
  EXPECT_FALSE(BounceClassifier::parse(yaml, "b.yaml", diags).has_value());
  std::vector<std::string> out;
  for (const auto& d : diags.items()) {
    EXPECT_EQ(d.exitCode, campaigns::kExitConfig);
    out.push_back(d.str());
  }
  return out;
}

TEST(BounceClassifierTest, ReportsEveryErrorWithItsPosition) {
  const auto errors = errorsOf(R"(rules:
  - category: nonsense
    code: 550
  - category: quota
    text: '(unclosed'
  - category: content
  - category: quota
    enhanced: 5.1
  - category: bad-mailbox
    code: 5x
    hard: maybe
  - colour: red
)");
  ASSERT_EQ(errors.size(), 9u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0].find("b.yaml:2:15: unknown category 'nonsense' (expected one of: "
                           "bad-mailbox,"),
            0u)
      << errors[0];
  EXPECT_EQ(errors[1].find("b.yaml:5:11: text '(unclosed' is not a valid regular expression"), 0u)
      << errors[1];
  EXPECT_EQ(errors[2],
            "b.yaml:6:5: a rule must match on at least one of 'code', 'enhanced' "
            "or 'text'");
  EXPECT_EQ(errors[3].find("b.yaml:8:15: enhanced code '5.1': expected"), 0u) << errors[3];
  EXPECT_EQ(errors[4].find("b.yaml:10:11: code '5x': expected three characters"), 0u) << errors[4];
  EXPECT_EQ(errors[5], "b.yaml:11:11: 'hard' must be true or false, not 'maybe'");
  EXPECT_EQ(errors[6].find("b.yaml:12:5: unknown key 'colour'"), 0u) << errors[6];
  EXPECT_EQ(errors[7],
            "b.yaml:12:5: a rule must match on at least one of 'code', 'enhanced' "
            "or 'text'");
  EXPECT_EQ(errors[8], "b.yaml:12:5: missing required field 'category'");
}

TEST(BounceClassifierTest, ReportsStructuralErrors) {
  EXPECT_EQ(errorsOf("rules: 3\n").at(0).find("b.yaml:1:8: 'rules' must be a list"), 0u);
  EXPECT_EQ(errorsOf("- a\n").at(0), "b.yaml:1:1: expected a map with a 'rules' list");
  EXPECT_EQ(errorsOf("{}\n").at(0), "b.yaml:1:1: missing required field 'rules'");
  EXPECT_EQ(errorsOf("rules: [\n").at(0).find("b.yaml:2:1: "), 0u);
  campaigns::Diagnostics diags;
  EXPECT_FALSE(BounceClassifier::load("/nonexistent/rules.yaml", diags).has_value());
  ASSERT_EQ(diags.items().size(), 1u);
  EXPECT_EQ(diags.items()[0].str(),
            "/nonexistent/rules.yaml: cannot read: No such file or "
            "directory");
  EXPECT_EQ(diags.exitCode(), campaigns::kExitConfig);
}

}  // namespace
}  // namespace salvo::engine

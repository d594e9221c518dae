#include "engine/reply_pattern.h"

#include <gtest/gtest.h>

#include <string>

namespace salvo::engine {
namespace {

ReplyMatcher compile(std::string code, std::string enhanced, std::string text) {
  std::string error;
  auto m = ReplyMatcher::compile(
      ReplyPattern{std::move(code), std::move(enhanced), std::move(text)}, error);
  EXPECT_TRUE(m.has_value()) << error;
  return std::move(*m);
}

TEST(ReplyPatternTest, CodesWithWildcardDigits) {
  const ReplyMatcher exact = compile("421", "", "");
  EXPECT_TRUE(exact.matches(421, {}, ""));
  EXPECT_FALSE(exact.matches(451, {}, ""));
  const ReplyMatcher klass = compile("4xx", "", "");
  EXPECT_TRUE(klass.matches(421, {}, ""));
  EXPECT_TRUE(klass.matches(499, {}, ""));
  EXPECT_FALSE(klass.matches(550, {}, ""));
  const ReplyMatcher fifties = compile("50X", "", "");
  EXPECT_TRUE(fifties.matches(503, {}, ""));
  EXPECT_FALSE(fifties.matches(550, {}, ""));
}

TEST(ReplyPatternTest, EnhancedCodesWithWildcardParts) {
  const ReplyMatcher exact = compile("", "5.1.10", "");
  EXPECT_TRUE(exact.matches(550, {5, 1, 10}, ""));
  EXPECT_FALSE(exact.matches(550, {5, 1, 1}, ""));
  EXPECT_FALSE(exact.matches(550, {}, ""));  // no enhanced code: no match
  const ReplyMatcher subject = compile("", "x.7.x", "");
  EXPECT_TRUE(subject.matches(421, {4, 7, 0}, ""));
  EXPECT_TRUE(subject.matches(550, {5, 7, 26}, ""));
  EXPECT_FALSE(subject.matches(550, {5, 1, 1}, ""));
}

TEST(ReplyPatternTest, TextIsACaseInsensitiveSearch) {
  const ReplyMatcher m = compile("", "", R"(\bspam\b)");
  EXPECT_TRUE(m.matches(550, {}, "Message looks like SPAM to us"));
  EXPECT_FALSE(m.matches(550, {}, "antispamming"));
  // Everything must match: code, enhanced code and text together.
  const ReplyMatcher all = compile("421", "4.7.0", "rate");
  EXPECT_TRUE(all.matches(421, {4, 7, 0}, "rate limited"));
  EXPECT_FALSE(all.matches(421, {4, 7, 1}, "rate limited"));
  EXPECT_FALSE(all.matches(421, {4, 7, 0}, "go away"));
}

TEST(ReplyPatternTest, OnlyTheStartOfAVeryLongTextIsSearched) {
  const ReplyMatcher m = compile("", "", "needle");
  std::string text(ReplyMatcher::kMaxTextBytes - 6, 'a');
  EXPECT_TRUE(m.matches(550, {}, text + "needle"));
  EXPECT_FALSE(m.matches(550, {}, text + "aneedle"));
}

TEST(ReplyPatternTest, MalformedPatternsAreExplained) {
  std::string error;
  EXPECT_FALSE(ReplyMatcher::compile({"", "", ""}, error));
  EXPECT_EQ(error, "a rule must match on at least one of 'code', 'enhanced' or 'text'");
  for (const char* code : {"42", "4210", "6xx", "1xx", "4?1"}) {
    EXPECT_FALSE(ReplyMatcher::compile({code, "", ""}, error)) << code;
    EXPECT_EQ(error.find("code '"), 0u) << error;
  }
  for (const char* enhanced : {"5.1", "5.1.1.1", "3.1.1", "5.1000.1", "5..1", "a.b.c", "5.1.1x"}) {
    EXPECT_FALSE(ReplyMatcher::compile({"", enhanced, ""}, error)) << enhanced;
    EXPECT_EQ(error.find("enhanced code '"), 0u) << error;
  }
  EXPECT_FALSE(ReplyMatcher::compile({"", "", "[a-"}, error));
  EXPECT_EQ(error.find("text '[a-' is not a valid regular expression: "), 0u) << error;
}

TEST(ReplyPatternTest, ReplyTextJoinsLines) {
  smtp::Reply r;
  r.code = 550;
  r.lines = {"first", "second"};
  EXPECT_EQ(replyText(r), "first second");
}

}  // namespace
}  // namespace salvo::engine

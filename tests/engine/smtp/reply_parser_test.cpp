#include "engine/smtp/reply.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace salvo::smtp {
namespace {

struct Parsed {
  std::vector<Reply> replies;
  bool ok = true;
  std::string error;
  bool partial = false;
};

Parsed parseWhole(std::string_view input, ReplyLimits limits) {
  ReplyParser parser(limits);
  Parsed p;
  p.ok = parser.feed(input, p.replies);
  p.error = parser.error();
  p.partial = parser.partial();
  return p;
}

Parsed parseByteAtATime(std::string_view input, ReplyLimits limits) {
  ReplyParser parser(limits);
  Parsed p;
  for (std::size_t i = 0; i < input.size() && p.ok; ++i) {
    p.ok = parser.feed(input.substr(i, 1), p.replies);
  }
  p.error = parser.error();
  p.partial = parser.partial();
  return p;
}

void expectSameReplies(const std::vector<Reply>& a, const std::vector<Reply>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].code, b[i].code) << "reply " << i;
    EXPECT_EQ(a[i].enhanced.str(), b[i].enhanced.str()) << "reply " << i;
    EXPECT_EQ(a[i].lines, b[i].lines) << "reply " << i;
  }
}

// Parses whole and one byte at a time, checks both give the same, returns the result.
Parsed parse(std::string_view input, ReplyLimits limits = {}) {
  Parsed whole = parseWhole(input, limits);
  Parsed bytes = parseByteAtATime(input, limits);
  EXPECT_EQ(whole.ok, bytes.ok) << input;
  EXPECT_EQ(whole.error, bytes.error) << input;
  EXPECT_EQ(whole.partial, bytes.partial) << input;
  expectSameReplies(whole.replies, bytes.replies);
  return whole;
}

TEST(ReplyParserTest, SingleLineReply) {
  Parsed p = parse("250 ok\r\n");
  ASSERT_TRUE(p.ok) << p.error;
  ASSERT_EQ(p.replies.size(), 1u);
  EXPECT_EQ(p.replies[0].code, 250);
  EXPECT_EQ(p.replies[0].lines, std::vector<std::string>{"ok"});
  EXPECT_FALSE(p.replies[0].enhanced.present());
  EXPECT_TRUE(p.replies[0].positive());
  EXPECT_FALSE(p.partial);
}

TEST(ReplyParserTest, CodeOnlyAndEmptyText) {
  Parsed p = parse("250\r\n354 \r\n");
  ASSERT_TRUE(p.ok) << p.error;
  ASSERT_EQ(p.replies.size(), 2u);
  EXPECT_EQ(p.replies[0].code, 250);
  EXPECT_EQ(p.replies[0].lines, std::vector<std::string>{""});
  EXPECT_EQ(p.replies[1].code, 354);
  EXPECT_EQ(p.replies[1].lines, std::vector<std::string>{""});
}

TEST(ReplyParserTest, MultiLineReply) {
  Parsed p = parse(
      "250-mx.example.com Hello\r\n"
      "250-PIPELINING\r\n"
      "250-\r\n"
      "250 SIZE 1000\r\n");
  ASSERT_TRUE(p.ok) << p.error;
  ASSERT_EQ(p.replies.size(), 1u);
  EXPECT_EQ(p.replies[0].code, 250);
  EXPECT_EQ(p.replies[0].lines,
            (std::vector<std::string>{"mx.example.com Hello", "PIPELINING", "", "SIZE 1000"}));
}

TEST(ReplyParserTest, SeveralRepliesInOneBuffer) {
  Parsed p = parse("250 2.1.0 ok\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n354 go\r\n");
  ASSERT_TRUE(p.ok) << p.error;
  ASSERT_EQ(p.replies.size(), 3u);
  EXPECT_EQ(p.replies[0].code, 250);
  EXPECT_EQ(p.replies[1].code, 550);
  EXPECT_EQ(p.replies[1].lines.size(), 2u);
  EXPECT_TRUE(p.replies[1].permanent());
  EXPECT_EQ(p.replies[2].code, 354);
}

TEST(ReplyParserTest, ToleratesBareLfTerminators) {
  Parsed p = parse("250-first\n250 second\n421 bye\r\n");
  ASSERT_TRUE(p.ok) << p.error;
  ASSERT_EQ(p.replies.size(), 2u);
  EXPECT_EQ(p.replies[0].lines, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(p.replies[1].code, 421);
  EXPECT_TRUE(p.replies[1].transient());
}

TEST(ReplyParserTest, PartialReplyIsBuffered) {
  ReplyParser parser;
  std::vector<Reply> out;
  EXPECT_FALSE(parser.partial());
  ASSERT_TRUE(parser.feed("25", out));
  EXPECT_TRUE(parser.partial());
  ASSERT_TRUE(parser.feed("0-a\r\n", out));
  EXPECT_TRUE(parser.partial());  // inside a multi-line reply
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(parser.feed("250 b\r", out));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(parser.feed("\n", out));
  EXPECT_FALSE(parser.partial());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].lines, (std::vector<std::string>{"a", "b"}));
}

TEST(ReplyParserTest, EnhancedCodes) {
  struct Case {
    const char* input;
    const char* enhanced;
  };
  const Case cases[] = {
      {"550 5.1.1 <x@example.com>: user unknown\r\n", "5.1.1"},
      {"250 2.0.0\r\n", "2.0.0"},
      {"451 4.7.1 greylisted\r\n", "4.7.1"},
      {"552 5.3.4 message too big\r\n", "5.3.4"},
      {"550 5.123.456 three digits each\r\n", "5.123.456"},
      {"550 4.1.1 class differs from the code\r\n", ""},
      {"250 5.0.0 class differs\r\n", ""},
      {"550 3.1.1 class 3 does not exist\r\n", ""},
      {"550 5.1234.1 subject too long\r\n", ""},
      {"550 5.1.1234 detail too long\r\n", ""},
      {"550 5.1.1x no space after\r\n", ""},
      {"550 5.1 too short\r\n", ""},
      {"550 55.1.1 class two digits\r\n", ""},
      {"550 user unknown\r\n", ""},
      {"550\r\n", ""},
      {"550-first line\r\n550 5.1.1 only the first line counts\r\n", ""},
      {"550-5.7.1 first\r\n550 5.7.1 second\r\n", "5.7.1"},
  };
  for (const Case& c : cases) {
    Parsed p = parse(c.input);
    ASSERT_TRUE(p.ok) << c.input << p.error;
    ASSERT_EQ(p.replies.size(), 1u) << c.input;
    EXPECT_EQ(p.replies[0].enhanced.str(), c.enhanced) << c.input;
    EXPECT_EQ(p.replies[0].enhanced.present(), std::string(c.enhanced) != "") << c.input;
  }
  Parsed p = parse("550 5.1.2 bad\r\n");
  ASSERT_EQ(p.replies.size(), 1u);
  EXPECT_EQ(p.replies[0].enhanced.klass, 5);
  EXPECT_EQ(p.replies[0].enhanced.subject, 1);
  EXPECT_EQ(p.replies[0].enhanced.detail, 2);
  // The text keeps the enhanced code: it is what the server said.
  EXPECT_EQ(p.replies[0].lines[0], "5.1.2 bad");
}

TEST(ReplyParserTest, Summary) {
  Parsed p = parse("550-5.1.1 user unknown\r\n550 5.1.1 see https://example.com\r\n");
  ASSERT_EQ(p.replies.size(), 1u);
  EXPECT_EQ(p.replies[0].summary(), "550 5.1.1 user unknown");

  p = parse("250\r\n");
  EXPECT_EQ(p.replies[0].summary(), "250");

  p = parse("250 caf\xc3\xa9\ttab\x7f\r\n");
  EXPECT_EQ(p.replies[0].summary(), "250 caf???tab?");

  p = parse("250 " + std::string(1000, 'x') + "\r\n");
  const std::string summary = p.replies[0].summary();
  EXPECT_EQ(summary.size(), 256u);
  EXPECT_EQ(summary, "250 " + std::string(252, 'x'));

  EXPECT_EQ(Reply{}.summary(), "");

  std::string out = "S: ";
  p.replies[0].appendSummary(out);
  EXPECT_EQ(out, "S: " + summary);
}

TEST(ReplyParserTest, EnhancedCodeStr) {
  EXPECT_EQ(EnhancedCode{}.str(), "");
  EXPECT_EQ((EnhancedCode{4, 7, 1}).str(), "4.7.1");
}

struct ErrorCase {
  std::string input;
  std::string error;
  std::size_t repliesBefore;  // complete replies before the error
};

void expectError(const ErrorCase& c, ReplyLimits limits = {}) {
  Parsed p = parse(c.input, limits);
  EXPECT_FALSE(p.ok) << c.input;
  EXPECT_EQ(p.error, c.error) << c.input;
  EXPECT_EQ(p.replies.size(), c.repliesBefore) << c.input;
}

TEST(ReplyParserTest, MalformedLines) {
  expectError({"xyz\r\n", "malformed reply line \"xyz\"", 0});
  expectError({"25\r\n", "malformed reply line \"25\"", 0});
  expectError({"\r\n", "malformed reply line \"\"", 0});
  expectError({"2500 ok\r\n", "malformed reply line \"2500 ok\"", 0});
  expectError({"250x ok\r\n", "malformed reply line \"250x ok\"", 0});
  expectError({"25a ok\r\n", "malformed reply line \"25a ok\"", 0});
  expectError({" 250 ok\r\n", "malformed reply line \" 250 ok\"", 0});
  expectError({"250 ok\r\nHTTP/1.1 400 Bad Request\r\n",
               "malformed reply line \"HTTP/1.1 400 Bad Request\"", 1});
  expectError({std::string("\x16\x03\x01\x02\x00\r\n", 7), "reply contains a NUL octet", 0});
  expectError({"\x16\x03\x01\r\n", "malformed reply line \"???\"", 0});
  // Long garbage is quoted only in part.
  expectError({std::string(100, 'z') + "\r\n",
               "malformed reply line \"" + std::string(64, 'z') + "...\"", 0});
}

TEST(ReplyParserTest, CodeOutOfRange) {
  expectError({"199 hi\r\n", "reply code 199 is not in 2xx-5xx (line \"199 hi\")", 0});
  expectError({"600 hi\r\n", "reply code 600 is not in 2xx-5xx (line \"600 hi\")", 0});
  expectError({"000\r\n", "reply code 0 is not in 2xx-5xx (line \"000\")", 0});
}

TEST(ReplyParserTest, MixedCodesInMultiLineReply) {
  expectError({"250-a\r\n251 b\r\n", "multi-line reply mixes codes 250 and 251", 0});
  expectError({"220 hi\r\n250-a\r\n550-b\r\n", "multi-line reply mixes codes 250 and 550", 1});
}

TEST(ReplyParserTest, NulIsRejected) {
  expectError({std::string("250 o\0k\r\n", 9), "reply contains a NUL octet", 0});
  expectError({std::string("250 ok\r\n\0", 9), "reply contains a NUL octet", 1});
}

TEST(ReplyParserTest, BareCrInsideALineIsRejected) {
  expectError({"250 a\rb\r\n", "reply line \"250 a?b\" contains a bare CR", 0});
  expectError({"250 a\r\r\n", "reply line \"250 a?\" contains a bare CR", 0});
}

TEST(ReplyParserTest, LineLengthLimit) {
  const std::string max = "250 " + std::string(2044, 'x');  // 2048 octets
  Parsed p = parse(max + "\r\n");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.replies[0].lines[0].size(), 2044u);
  p = parse(max + "\n");
  ASSERT_TRUE(p.ok) << p.error;

  expectError({max + "x\r\n", "reply line longer than 2048 octets", 0});
  expectError({max + "x\n", "reply line longer than 2048 octets", 0});
  expectError({max + "xx", "reply line longer than 2048 octets", 0});  // no line end yet
  expectError({"250 ok\r\n" + std::string(100000, '2'), "reply line longer than 2048 octets", 1});
  // Whichever comes first decides the error, in any slicing.
  expectError({max + "x" + std::string(1, '\0'), "reply contains a NUL octet", 0});
  expectError({max + "xx" + std::string(1, '\0'), "reply line longer than 2048 octets", 0});

  ReplyLimits small;
  small.maxLineLength = 10;
  expectError({"250 123456\r\n250 1234567\r\n", "reply line longer than 10 octets", 1}, small);
}

TEST(ReplyParserTest, LineCountLimit) {
  ReplyLimits limits;
  limits.maxLines = 3;
  Parsed p = parse("250-a\r\n250-b\r\n250 c\r\n", limits);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.replies[0].lines.size(), 3u);
  expectError({"250-a\r\n250-b\r\n250-c\r\n250 d\r\n", "reply has more than 3 lines", 0}, limits);

  // Default: 64 lines.
  std::string many;
  for (int i = 0; i < 64; ++i) {
    many += "250-x\r\n";
  }
  expectError({many + "250 x\r\n", "reply has more than 64 lines", 0});
}

TEST(ReplyParserTest, ReplySizeLimit) {
  ReplyLimits limits;
  limits.maxReplySize = 20;
  Parsed p = parse("250-abcde\r\n250 abc\r\n", limits);  // 11 + 9 = 20 octets
  ASSERT_TRUE(p.ok) << p.error;
  expectError({"250-abcde\r\n250 abcd\r\n", "reply longer than 20 octets", 0}, limits);
  // The size is per reply.
  p = parse("250 abcdefghijklm\r\n250 abcdefghijklm\r\n", limits);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.replies.size(), 2u);

  std::string big;
  for (int i = 0; i < 20; ++i) {
    big += "250-" + std::string(1000, 'y') + "\r\n";
  }
  expectError({big, "reply longer than 16384 octets", 0});
}

TEST(ReplyParserTest, StaysFailedUntilReset) {
  ReplyParser parser;
  std::vector<Reply> out;
  EXPECT_FALSE(parser.feed("bogus\r\n", out));
  EXPECT_TRUE(parser.failed());
  EXPECT_FALSE(parser.feed("250 ok\r\n", out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(parser.error(), "malformed reply line \"bogus\"");
  parser.reset();
  EXPECT_FALSE(parser.failed());
  EXPECT_FALSE(parser.partial());
  EXPECT_TRUE(parser.feed("250 ok\r\n", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].code, 250);
}

TEST(ReplyParserTest, ResetDropsAPartialReply) {
  ReplyParser parser;
  std::vector<Reply> out;
  ASSERT_TRUE(parser.feed("250-a\r\n250-b", out));
  parser.reset();
  ASSERT_TRUE(parser.feed("221 bye\r\n", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].code, 221);
  EXPECT_EQ(out[0].lines, std::vector<std::string>{"bye"});
}

TEST(ReplyParserTest, AnySlicingGivesTheSameReplies) {
  const std::string input =
      "220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n250 2.1.0 ok\r\n"
      "550-5.1.1 no\n550 5.1.1 user\r\n354 go\r\n";
  Parsed whole = parseWhole(input, {});
  ASSERT_TRUE(whole.ok);
  ASSERT_EQ(whole.replies.size(), 5u);
  for (std::size_t step = 2; step < 9; ++step) {
    ReplyParser parser;
    std::vector<Reply> out;
    for (std::size_t i = 0; i < input.size(); i += step) {
      ASSERT_TRUE(parser.feed(std::string_view(input).substr(i, step), out));
    }
    expectSameReplies(whole.replies, out);
  }
}

}  // namespace
}  // namespace salvo::smtp

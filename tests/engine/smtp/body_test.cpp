#include "engine/smtp/body.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace salvo::smtp {
namespace {

std::string encode(std::string_view message) {
  std::string out;
  std::string error;
  EXPECT_TRUE(encodeBody(message, out, error)) << error;
  EXPECT_TRUE(error.empty());
  return out;
}

// Refuses `message`; checks `out` is left as it was and returns the error.
std::string refusal(std::string_view message) {
  std::string out = "untouched";
  std::string error;
  EXPECT_FALSE(encodeBody(message, out, error)) << message;
  EXPECT_EQ(out, "untouched");
  return error;
}

TEST(BodyTest, CrlfMessagePassesThroughAndGetsTheFinalDot) {
  EXPECT_EQ(encode("Subject: hi\r\n\r\nhello\r\n"), "Subject: hi\r\n\r\nhello\r\n.\r\n");
}

TEST(BodyTest, MissingFinalLineEndIsAdded) {
  EXPECT_EQ(encode("Subject: hi\r\n\r\nhello"), "Subject: hi\r\n\r\nhello\r\n.\r\n");
  EXPECT_EQ(encode("x"), "x\r\n.\r\n");
}

TEST(BodyTest, EmptyMessage) {
  EXPECT_EQ(encode(""), ".\r\n");
}

TEST(BodyTest, BareLfIsNormalised) {
  EXPECT_EQ(encode("a\nb\n"), "a\r\nb\r\n.\r\n");
  EXPECT_EQ(encode("a\r\nb\nc\r\n\n"), "a\r\nb\r\nc\r\n\r\n.\r\n");
  EXPECT_EQ(encode("\n"), "\r\n.\r\n");
  EXPECT_EQ(encode("a\nb"), "a\r\nb\r\n.\r\n");
}

TEST(BodyTest, DotStuffing) {
  EXPECT_EQ(encode(".\r\n"), "..\r\n.\r\n");  // a first line of just "."
  EXPECT_EQ(encode("."), "..\r\n.\r\n");
  EXPECT_EQ(encode(".hidden\r\n"), "..hidden\r\n.\r\n");
  EXPECT_EQ(encode("a\r\n.\r\nb\r\n"), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(encode("a\n..\nb\n"), "a\r\n...\r\nb\r\n.\r\n");
  EXPECT_EQ(encode("a.b\r\n x.\r\n"), "a.b\r\n x.\r\n.\r\n");  // only leading dots
  EXPECT_EQ(encode("a\r\n."), "a\r\n..\r\n.\r\n");
}

TEST(BodyTest, AppendsToExistingOutput) {
  std::string out = "prefix|";
  std::string error;
  ASSERT_TRUE(encodeBody("a\n.b\n", out, error));
  EXPECT_EQ(out, "prefix|a\r\n..b\r\n.\r\n");
}

TEST(BodyTest, BareCrIsRefused) {
  EXPECT_EQ(refusal("a\rb\r\n"), "line 1 contains a bare CR (a CR not followed by LF)");
  EXPECT_EQ(refusal("ok\r\nok\r\nbad\r\r\n"),
            "line 3 contains a bare CR (a CR not followed by LF)");
  EXPECT_EQ(refusal("ok\r\nends with CR\r"), "line 2 contains a bare CR (a CR not followed by LF)");
  EXPECT_EQ(refusal("\r"), "line 1 contains a bare CR (a CR not followed by LF)");
  EXPECT_EQ(refusal("a\r\n.\rMAIL FROM:<x>\r\n"),
            "line 2 contains a bare CR (a CR not followed by LF)");
}

TEST(BodyTest, SmugglingSequencesCannotEndTheData) {
  // "<LF>.<CRLF>" (CVE-2023-51764 style): the bare LF becomes CRLF and the dot is stuffed.
  EXPECT_EQ(encode("a\r\n\n.\r\nMAIL FROM:<x>\r\n"), "a\r\n\r\n..\r\nMAIL FROM:<x>\r\n.\r\n");
  EXPECT_EQ(encode("a\n.\nRSET\n"), "a\r\n..\r\nRSET\r\n.\r\n");
}

TEST(BodyTest, NulIsRefused) {
  EXPECT_EQ(refusal(std::string("a\0b\r\n", 5)), "line 1 contains a NUL octet");
  EXPECT_EQ(refusal(std::string("a\r\nb\nc\0\r\n", 9)), "line 3 contains a NUL octet");
}

TEST(BodyTest, LineLengthLimit) {
  const std::string l998(998, 'x');
  const std::string l999(999, 'x');
  EXPECT_EQ(encode(l998 + "\r\n"), l998 + "\r\n.\r\n");
  EXPECT_EQ(encode(l998 + "\n"), l998 + "\r\n.\r\n");
  EXPECT_EQ(encode(l998), l998 + "\r\n.\r\n");
  EXPECT_EQ(refusal("first\r\n" + l999 + "\r\n"), "line 2 is 999 octets long; the limit is 998");
  EXPECT_EQ(refusal("first\n" + l999), "line 2 is 999 octets long; the limit is 998");
  EXPECT_EQ(refusal(std::string(1200, 'y') + "\n"), "line 1 is 1200 octets long; the limit is 998");
  // A line of 998 dots is 998 octets before stuffing: the limit applies to the message.
  const std::string dots(998, '.');
  EXPECT_EQ(encode(dots + "\r\n"), "." + dots + "\r\n.\r\n");
}

// Undoes the encoding (as a receiving server does) to check the content is preserved.
std::string decode(const std::string& wire) {
  EXPECT_TRUE(wire == ".\r\n" ||
              (wire.size() >= 5 && wire.compare(wire.size() - 5, 5, "\r\n.\r\n") == 0))
      << wire;
  std::string body = wire.substr(0, wire.size() - 3);  // without ".\r\n"
  std::string out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\r\n", pos);
    EXPECT_NE(end, std::string::npos);
    std::string_view line = std::string_view(body).substr(pos, end - pos);
    EXPECT_NE(line, ".") << "an unstuffed dot line would end the data early";
    if (!line.empty() && line[0] == '.') {
      line.remove_prefix(1);
    }
    out.append(line);
    out += "\r\n";
    pos = end + 2;
  }
  return out;
}

TEST(BodyTest, RandomMessagesRoundTrip) {
  std::mt19937 rng(12345);
  const char alphabet[] = {'a', 'b', '.', ' ', '\n', '\n', '.', 'z'};
  for (int iteration = 0; iteration < 500; ++iteration) {
    std::string message;
    const int length = static_cast<int>(rng() % 200);
    for (int i = 0; i < length; ++i) {
      const char c = alphabet[rng() % sizeof alphabet];
      if (c == '\n' && rng() % 2 == 0) {
        message += '\r';
      }
      message += c;
    }
    std::string wire = encode(message);
    // Only CRLF line ends.
    for (std::size_t i = 0; i < wire.size(); ++i) {
      if (wire[i] == '\n') {
        ASSERT_GT(i, 0u);
        ASSERT_EQ(wire[i - 1], '\r');
      }
      if (wire[i] == '\r') {
        ASSERT_LT(i + 1, wire.size());
        ASSERT_EQ(wire[i + 1], '\n');
      }
    }
    // The content survives: CRLF-normalised, with a final line end.
    std::string expected;
    for (std::size_t i = 0; i < message.size(); ++i) {
      if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) {
        expected += '\r';
      }
      expected += message[i];
    }
    if (!expected.empty() && expected.back() != '\n') {
      expected += "\r\n";
    }
    ASSERT_EQ(decode(wire), expected) << message;
  }
}

}  // namespace
}  // namespace salvo::smtp

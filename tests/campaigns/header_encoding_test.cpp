#include "campaigns/header_encoding.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace salvo::campaigns {
namespace {

std::string decodeBase64(std::string_view in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') {
      break;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::vector<std::string> lines(const std::string& header) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < header.size()) {
    const std::size_t end = header.find("\r\n", start);
    EXPECT_NE(end, std::string::npos) << "header must end with CRLF";
    if (end == std::string::npos) {
      break;
    }
    out.push_back(header.substr(start, end - start));
    start = end + 2;
  }
  return out;
}

// Decodes a header made of encoded words (as appendUnstructuredHeader writes them),
// checking each word's size and that it holds whole UTF-8 characters.
std::string decodeWords(const std::string& header) {
  std::string out;
  for (std::string line : lines(header)) {
    EXPECT_LE(line.size(), 76u) << line;
    line = line.substr(line.rfind(' ') + 1);
    EXPECT_EQ(line.substr(0, 10), "=?UTF-8?B?");
    EXPECT_EQ(line.substr(line.size() - 2), "?=");
    EXPECT_LE(line.size(), 75u);
    const std::string word = decodeBase64(line.substr(10, line.size() - 12));
    EXPECT_TRUE(isValidUtf8(word)) << "word split a character";
    out += word;
  }
  return out;
}

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [in, expected] : cases) {
    std::string out;
    appendBase64(out, in);
    EXPECT_EQ(out, expected);
  }
}

TEST(Utf8Test, Validation) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("Grüße 用户 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(isValidUtf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(isValidUtf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(isValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xC3"));              // truncated
  EXPECT_FALSE(isValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(isValidUtf8("\xFF"));
  EXPECT_TRUE(isAscii("abc\x7f"));
  EXPECT_FALSE(isAscii("ü"));
}

TEST(ControlCharTest, FindsC0DelAndC1) {
  EXPECT_EQ(firstControlChar("fine", false), -1);
  EXPECT_EQ(firstControlChar("a\tb", false), 9);
  EXPECT_EQ(firstControlChar("a\tb", true), -1);
  EXPECT_EQ(firstControlChar("a\x7f", true), 0x7f);
  EXPECT_EQ(firstControlChar("a\xc2\x85", true), 0x85);
  EXPECT_EQ(firstControlChar("\xc2\xa0", true), -1);  // NBSP is not a control
}

TEST(UnstructuredHeaderTest, ShortAsciiIsVerbatim) {
  std::string out;
  appendUnstructuredHeader(out, "Subject", "Hello Ann");
  EXPECT_EQ(out, "Subject: Hello Ann\r\n");
  out.clear();
  appendUnstructuredHeader(out, "Subject", "");
  EXPECT_EQ(out, "Subject: \r\n");
}

TEST(UnstructuredHeaderTest, LongAsciiIsFoldedAtWhiteSpace) {
  std::string value;
  for (int i = 0; i < 40; ++i) {
    value += fmt::format("word{} ", i);
  }
  value += "end";
  std::string out;
  appendUnstructuredHeader(out, "Subject", value);
  const auto folded = lines(out);
  ASSERT_GT(folded.size(), 1u);
  for (const std::string& line : folded) {
    EXPECT_LE(line.size(), 78u) << line;
    EXPECT_FALSE(line.find_first_not_of(" \t") == std::string::npos) << "blank folded line";
  }
  // Unfolding (removing CRLF) gives back the original.
  std::string unfolded;
  for (std::size_t i = 0; i < folded.size(); ++i) {
    unfolded += folded[i];
  }
  EXPECT_EQ(unfolded, "Subject: " + value);
}

TEST(UnstructuredHeaderTest, NonAsciiIsBEncoded) {
  std::string out;
  appendUnstructuredHeader(out, "Subject", "Grüße Ann");
  EXPECT_EQ(out, "Subject: =?UTF-8?B?R3LDvMOfZSBBbm4=?=\r\n");
}

TEST(UnstructuredHeaderTest, LongNonAsciiIsSplitIntoWordsOnCharacterBoundaries) {
  std::string value;
  for (int i = 0; i < 60; ++i) {
    value += "Grüße 用户 ";
  }
  std::string out;
  appendUnstructuredHeader(out, "Subject", value);
  EXPECT_GT(lines(out).size(), 5u);
  EXPECT_EQ(decodeWords(out), value);
}

TEST(UnstructuredHeaderTest, LineBreaksAndControlsNeverPassRaw) {
  std::string out;
  appendUnstructuredHeader(out, "Subject", "hi\r\nBcc: evil@x.com");
  EXPECT_EQ(out.find("\r\n"), out.size() - 2);
  EXPECT_EQ(decodeWords(out), "hi\r\nBcc: evil@x.com");
}

TEST(UnstructuredHeaderTest, UnfoldableAsciiIsEncodedToStayUnder998) {
  const std::string value(1500, 'x');
  std::string out;
  appendUnstructuredHeader(out, "Subject", value);
  for (const std::string& line : lines(out)) {
    EXPECT_LE(line.size(), 76u);
  }
  EXPECT_EQ(decodeWords(out), value);
}

TEST(EncodedWordsTest, ReturnsColumnAndFolds) {
  std::string out;
  const std::size_t column = appendEncodedWords(out, "é", 6);
  EXPECT_EQ(out, "=?UTF-8?B?w6k=?=");
  EXPECT_EQ(column, 6 + out.size());
  out.clear();
  EXPECT_EQ(appendEncodedWords(out, "", 6), 6u);
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace salvo::campaigns

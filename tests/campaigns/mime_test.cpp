#include "campaigns/mime.h"

#include <gtest/gtest.h>

#include <string>

namespace salvo::campaigns {
namespace {

std::string encode(std::string_view body, TransferEncoding e) {
  std::string out;
  appendEncodedBody(out, body, e);
  return out;
}

TEST(MimeTest, ChoosesTheLightestLegalEncoding) {
  EXPECT_EQ(chooseTransferEncoding("plain ascii\nlines\n"), TransferEncoding::SevenBit);
  EXPECT_EQ(chooseTransferEncoding(std::string(998, 'a')), TransferEncoding::SevenBit);
  EXPECT_EQ(chooseTransferEncoding(std::string(999, 'a')), TransferEncoding::QuotedPrintable);
  EXPECT_EQ(chooseTransferEncoding("Grüße aus Köln, bis bald und danke"),
            TransferEncoding::QuotedPrintable);
  EXPECT_EQ(chooseTransferEncoding("Привет, мир"), TransferEncoding::Base64);
  EXPECT_EQ(chooseTransferEncoding(""), TransferEncoding::SevenBit);
}

TEST(MimeTest, SevenBitNormalisesLineEnds) {
  EXPECT_EQ(encode("a\nb\r\nc\rd", TransferEncoding::SevenBit), "a\r\nb\r\nc\r\nd\r\n");
  EXPECT_EQ(encode("a\n\n", TransferEncoding::SevenBit), "a\r\n\r\n");
  EXPECT_EQ(encode("", TransferEncoding::SevenBit), "");
}

TEST(MimeTest, QuotedPrintableEncodesEightBitEqualsAndTrailingSpace) {
  EXPECT_EQ(encode("Grüße a=b \nx\t", TransferEncoding::QuotedPrintable),
            "Gr=C3=BC=C3=9Fe a=3Db=20\r\nx=09\r\n");
}

TEST(MimeTest, QuotedPrintableSoftBreaksKeepLinesAt76) {
  const std::string line(200, 'x');
  const std::string out = encode(line + "é", TransferEncoding::QuotedPrintable);
  std::size_t start = 0;
  std::string decoded;
  while (start < out.size()) {
    const std::size_t end = out.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    const std::string piece = out.substr(start, end - start);
    EXPECT_LE(piece.size(), 76u) << piece;
    decoded += piece.back() == '=' ? piece.substr(0, piece.size() - 1) : piece;
    start = end + 2;
  }
  EXPECT_EQ(decoded, line + "=C3=A9");
  // An escape is never split by a soft break.
  const std::string escapes = encode(std::string(40, '\xC3'), TransferEncoding::QuotedPrintable);
  EXPECT_EQ(escapes.substr(0, 76), std::string(75, ' ').replace(0, 75, [] {
    std::string s;
    for (int i = 0; i < 25; ++i) {
      s += "=C3";
    }
    return s;
  }()) + "=");
}

TEST(MimeTest, Base64EncodesCanonicalCrlfTextIn76CharacterLines) {
  EXPECT_EQ(encode("Привет\n", TransferEncoding::Base64), "0J/RgNC40LLQtdGCDQo=\r\n");
  const std::string out = encode(std::string(100, '\xD0'), TransferEncoding::Base64);
  EXPECT_EQ(out.find("\r\n"), 76u);
}

}  // namespace
}  // namespace salvo::campaigns

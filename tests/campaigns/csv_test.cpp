#include "campaigns/csv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace salvo::campaigns {
namespace {

// Hands out its input one byte per underflow(), like a socket trickling data.
class OneByteBuf : public std::streambuf {
 public:
  explicit OneByteBuf(std::string data) : data_(std::move(data)) {}

 protected:
  int_type underflow() override {
    if (pos_ >= data_.size()) {
      return traits_type::eof();
    }
    ch_ = data_[pos_++];
    setg(&ch_, &ch_, &ch_ + 1);
    return traits_type::to_int_type(ch_);
  }

 private:
  std::string data_;
  std::size_t pos_ = 0;
  char ch_ = 0;
};

// Everything the reader reports, one string per event:
//   "#2 @2:1 [a|b]" for record 2 starting at line 2, "!3:1 message" for an error.
std::vector<std::string> readAll(std::istream& in, char delimiter) {
  CsvReader reader(in, delimiter);
  std::vector<std::string> events;
  std::vector<std::string> fields;
  while (true) {
    const CsvReader::Result r = reader.next(fields);
    if (r == CsvReader::Result::End) {
      break;
    }
    if (r == CsvReader::Result::Error) {
      events.push_back(fmt::format("!{}:{} {}", reader.errorPosition().line,
                                   reader.errorPosition().column, reader.error()));
      continue;
    }
    events.push_back(fmt::format("#{} @{}:{} [{}]", reader.recordNumber(),
                                 reader.positions().front().line, reader.positions().front().column,
                                 fmt::join(fields, "|")));
    EXPECT_EQ(reader.positions().size(), fields.size());
  }
  // End is sticky.
  EXPECT_EQ(reader.next(fields), CsvReader::Result::End);
  return events;
}

// The same input read whole and one byte at a time must give the same events.
std::vector<std::string> readBothWays(const std::string& input, char delimiter = ',') {
  std::istringstream whole(input);
  const auto a = readAll(whole, delimiter);
  OneByteBuf buf(input);
  std::istream trickle(&buf);
  const auto b = readAll(trickle, delimiter);
  EXPECT_EQ(a, b) << "whole and byte-at-a-time reads differ";
  return a;
}

using Events = std::vector<std::string>;

TEST(CsvReaderTest, SimpleLfRows) {
  EXPECT_EQ(readBothWays("email,name\na@x.com,Ann\nb@x.com,Bob\n"),
            (Events{"#1 @1:1 [email|name]", "#2 @2:1 [a@x.com|Ann]", "#3 @3:1 [b@x.com|Bob]"}));
}

TEST(CsvReaderTest, CrlfRowsAndNoFinalNewline) {
  EXPECT_EQ(readBothWays("email,name\r\na@x.com,Ann\r\nb@x.com,Bob"),
            (Events{"#1 @1:1 [email|name]", "#2 @2:1 [a@x.com|Ann]", "#3 @3:1 [b@x.com|Bob]"}));
}

TEST(CsvReaderTest, QuotedFieldsAndDoubledQuotes) {
  EXPECT_EQ(readBothWays("a,b\n\"x,y\",\"say \"\"hi\"\"\"\n\"\",\"\"\"\"\n"),
            (Events{"#1 @1:1 [a|b]", "#2 @2:1 [x,y|say \"hi\"]", "#3 @3:1 [|\"]"}));
}

TEST(CsvReaderTest, EmbeddedNewlinesInsideQuotes) {
  // CRLF inside quotes is kept as LF; lines keep counting so later rows name their line.
  EXPECT_EQ(readBothWays("a,b\r\n\"line1\r\nline2\",x\r\n\"p\nq\nr\",y\r\nlast,z\r\n"),
            (Events{"#1 @1:1 [a|b]", "#2 @2:1 [line1\nline2|x]", "#3 @4:1 [p\nq\nr|y]",
                    "#4 @7:1 [last|z]"}));
}

TEST(CsvReaderTest, ByteOrderMarkIsSkipped) {
  EXPECT_EQ(readBothWays("\xEF\xBB\xBF"
                         "email,name\na@x.com,Ann\n"),
            (Events{"#1 @1:1 [email|name]", "#2 @2:1 [a@x.com|Ann]"}));
  // Bytes that only start like a BOM are data.
  EXPECT_EQ(readBothWays("\xEF\xBBx,y\n"), (Events{"#1 @1:1 [\xEF\xBBx|y]"}));
  EXPECT_EQ(readBothWays("\xEF"), (Events{"#1 @1:1 [\xEF]"}));
  EXPECT_EQ(readBothWays("\xEF\xBB\xBF"), Events{});
}

TEST(CsvReaderTest, BlankLinesAreSkipped) {
  EXPECT_EQ(readBothWays("\n\na,b\n\n\r\nc,d\n\n"), (Events{"#1 @3:1 [a|b]", "#2 @6:1 [c|d]"}));
  EXPECT_EQ(readBothWays(""), Events{});
  EXPECT_EQ(readBothWays("\r\n\r\n"), Events{});
}

TEST(CsvReaderTest, EmptyFieldsAndTrailingDelimiter) {
  EXPECT_EQ(readBothWays("a,b,c\n,,\nx,,\n"),
            (Events{"#1 @1:1 [a|b|c]", "#2 @2:1 [||]", "#3 @3:1 [x||]"}));
}

TEST(CsvReaderTest, OtherDelimiters) {
  EXPECT_EQ(readBothWays("email;name\na@x.com;\"Lee; Ann\"\n", ';'),
            (Events{"#1 @1:1 [email|name]", "#2 @2:1 [a@x.com|Lee; Ann]"}));
  EXPECT_EQ(readBothWays("email\tname\na@x.com\tAnn, Lee\n", '\t'),
            (Events{"#1 @1:1 [email|name]", "#2 @2:1 [a@x.com|Ann, Lee]"}));
}

TEST(CsvReaderTest, FieldPositions) {
  std::istringstream in("ab,\"cd\",ef\n\"x\ny\",z,w\n");
  CsvReader reader(in);
  std::vector<std::string> fields;
  ASSERT_EQ(reader.next(fields), CsvReader::Result::Record);
  ASSERT_EQ(reader.positions().size(), 3u);
  EXPECT_EQ(reader.positions()[0].column, 1);
  EXPECT_EQ(reader.positions()[1].column, 4);
  EXPECT_EQ(reader.positions()[2].column, 9);
  ASSERT_EQ(reader.next(fields), CsvReader::Result::Record);
  EXPECT_EQ(reader.positions()[0].line, 2);
  EXPECT_EQ(reader.positions()[1].line, 3);
  EXPECT_EQ(reader.positions()[1].column, 4);
}

TEST(CsvReaderTest, WrongFieldCountNamesTheLineAndContinues) {
  EXPECT_EQ(readBothWays("a,b\nc\nd,e\nf,g,h\n"),
            (Events{"#1 @1:1 [a|b]", "!2:1 row has 1 field, expected 2 like the first row",
                    "#3 @3:1 [d|e]", "!4:1 row has 3 fields, expected 2 like the first row"}));
}

TEST(CsvReaderTest, UnterminatedQuoteAtEndOfFile) {
  EXPECT_EQ(
      readBothWays("a,b\nc,\"d\ne,f\n"),
      (Events{"#1 @1:1 [a|b]",
              "!2:3 unterminated quoted field (no closing '\"' before the end of the file)"}));
}

TEST(CsvReaderTest, TextAfterClosingQuoteIsAnError) {
  EXPECT_EQ(readBothWays("a,b\n\"c\"x,d\ne,f\n"),
            (Events{"#1 @1:1 [a|b]", "!2:4 unexpected 'x' after the closing quote of field 1",
                    "#3 @3:1 [e|f]"}));
}

TEST(CsvReaderTest, LoneCarriageReturnIsData) {
  // Only LF and CRLF end a row; a stray CR stays in the value (and is rejected later if the
  // value reaches a header), and lines are counted at LF.
  EXPECT_EQ(readBothWays("a,b\nx\ry,z\r\n\"p\rq\",\r\n\rc,d\n"),
            (Events{"#1 @1:1 [a|b]", "#2 @2:1 [x\ry|z]", "#3 @3:1 [p\rq|]", "#4 @4:1 [\rc|d]"}));
}

TEST(CsvReaderTest, QuoteInsideUnquotedFieldIsLiteral) {
  EXPECT_EQ(readBothWays("a,b\nO\"Brien,x\n"), (Events{"#1 @1:1 [a|b]", "#2 @2:1 [O\"Brien|x]"}));
}

TEST(CsvReaderTest, OversizedFieldEndsTheStream) {
  std::string input = "a\n\"" + std::string(CsvReader::kMaxFieldBytes + 10, 'x') + "\"\nb\n";
  std::istringstream in(input);
  const auto events = readAll(in, ',');
  EXPECT_EQ(events, (Events{"#1 @1:1 [a]", "!2:1 field longer than 1048576 bytes"}));
}

// A stream that produces `rows` CSV rows on demand without ever holding them all.
class GeneratedCsv : public std::streambuf {
 public:
  explicit GeneratedCsv(std::size_t rows) : rows_(rows) {}

 protected:
  int_type underflow() override {
    if (next_ > rows_) {
      return traits_type::eof();
    }
    line_ = next_ == 0 ? std::string("email,name\r\n")
                       : fmt::format("user{}@x.com,\"Name, {}\"\r\n", next_, next_);
    ++next_;
    setg(line_.data(), line_.data(), line_.data() + line_.size());
    return traits_type::to_int_type(line_[0]);
  }

 private:
  std::size_t rows_;
  std::size_t next_ = 0;
  std::string line_;
};

TEST(CsvReaderTest, StreamsManyRows) {
  constexpr std::size_t kRows = 200000;
  GeneratedCsv source(kRows);
  std::istream in(&source);
  CsvReader reader(in);
  std::vector<std::string> fields;
  std::size_t records = 0;
  while (reader.next(fields) == CsvReader::Result::Record) {
    ++records;
  }
  EXPECT_EQ(records, kRows + 1);
  EXPECT_EQ(fields[1], fmt::format("Name, {}", kRows));
  EXPECT_EQ(reader.positions().front().line, static_cast<int>(kRows + 1));
}

}  // namespace
}  // namespace salvo::campaigns

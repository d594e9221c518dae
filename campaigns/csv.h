// A streaming RFC 4180 CSV reader for recipient lists.
// Contract: reads one record at a time from any std::istream through its streambuf (so a
// 10-million-row file costs one record of memory), whatever the stream's buffer size.
// Accepts quoted fields with "" escapes and embedded line breaks (CRLF inside quotes is
// kept as LF), a UTF-8 byte order mark at the start, CRLF or LF row ends (a lone CR is
// data); blank lines are skipped. Lines are counted at LF. Every record must have as many fields as
// the first one. Errors carry the line and column; after an error in one record the reader
// continues with the next, except after an unterminated quote or an oversized record, which end the
// stream.
#pragma once

#include <array>
#include <cstddef>
#include <istream>
#include <string>
#include <vector>

namespace salvo::campaigns {

struct CsvPosition {
  int line = 0;    // 1-based
  int column = 0;  // 1-based, in bytes (a BOM is not counted)
};

class CsvReader {
 public:
  enum class Result { Record, End, Error };
  static constexpr std::size_t kMaxFieldBytes = 1 << 20;
  static constexpr std::size_t kMaxFields = 4096;

  // `in` must outlive the reader. `delimiter` must not be '"', CR or LF.
  explicit CsvReader(std::istream& in, char delimiter = ',');

  // Reads the next record into `fields` (resized; string capacity is reused).
  // Record: `fields` and positions() describe it. Error: error() and errorPosition() say
  // what and where. End: no more input.
  Result next(std::vector<std::string>& fields);

  // The record just read: its ordinal (1 = first record, the header when there is one)
  // and where each field starts.
  std::size_t recordNumber() const { return recordNumber_; }
  const std::vector<CsvPosition>& positions() const { return positions_; }
  const std::string& error() const { return error_; }
  CsvPosition errorPosition() const { return errorPosition_; }

 private:
  int get();         // next byte or EOF (-1), tracking line and column
  int peek();        // next byte without consuming it
  int peekSecond();  // the byte after that
  bool atLineEnd();  // LF or CRLF next
  void skipByteOrderMark();
  void skipRestOfLine();
  Result fail(CsvPosition at, std::string message, bool fatal);

  std::streambuf* buf_;
  int delimiter_;  // as an unsigned byte value, comparable with get()
  bool started_ = false;
  bool finished_ = false;
  // Bytes taken from the streambuf but not yet consumed: a BOM look-alike that is data,
  // or the byte peekSecond() had to step over.
  std::array<int, 3> pending_{};
  std::size_t pendingBegin_ = 0;
  std::size_t pendingEnd_ = 0;
  int line_ = 1;
  int column_ = 1;
  std::size_t expectedFields_ = 0;
  std::size_t recordNumber_ = 0;
  std::vector<CsvPosition> positions_;
  std::string error_;
  CsvPosition errorPosition_;
};

}  // namespace salvo::campaigns

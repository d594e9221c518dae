#include "campaigns/csv.h"

#include <utility>

#include <fmt/format.h>

namespace salvo::campaigns {

namespace {

constexpr int kEof = -1;

std::string describe(int c) {
  if (c == ' ') {
    return "a space";
  }
  if (c < 0x20 || c >= 0x7F) {
    return fmt::format("byte 0x{:02X}", c);
  }
  return fmt::format("'{}'", static_cast<char>(c));
}

}  // namespace

CsvReader::CsvReader(std::istream& in, char delimiter)
    : buf_(in.rdbuf()), delimiter_(static_cast<unsigned char>(delimiter)) {}

int CsvReader::peek() {
  if (pendingBegin_ < pendingEnd_) {
    return pending_[pendingBegin_];
  }
  const auto c = buf_->sgetc();
  return c == std::streambuf::traits_type::eof() ? kEof : static_cast<unsigned char>(c);
}

int CsvReader::peekSecond() {
  if (pendingEnd_ - pendingBegin_ >= 2) {
    return pending_[pendingBegin_ + 1];
  }
  if (pendingBegin_ == pendingEnd_) {
    // Move the next byte into the pending queue so the streambuf shows the one after.
    pendingBegin_ = pendingEnd_ = 0;
    const auto raw = buf_->sbumpc();
    if (raw == std::streambuf::traits_type::eof()) {
      return kEof;
    }
    pending_[pendingEnd_++] = static_cast<unsigned char>(raw);
  }
  const auto c = buf_->sgetc();
  return c == std::streambuf::traits_type::eof() ? kEof : static_cast<unsigned char>(c);
}

int CsvReader::get() {
  int c = kEof;
  if (pendingBegin_ < pendingEnd_) {
    c = pending_[pendingBegin_++];
  } else {
    const auto raw = buf_->sbumpc();
    if (raw == std::streambuf::traits_type::eof()) {
      return kEof;
    }
    c = static_cast<unsigned char>(raw);
  }
  // Lines are counted at LF, as grep -n and editors do; a CR is an ordinary byte unless it
  // precedes a LF.
  if (c == '\n') {
    ++line_;
    column_ = 1;
  } else {
    ++column_;
  }
  return c;
}

bool CsvReader::atLineEnd() {
  const int c = peek();
  return c == '\n' || (c == '\r' && peekSecond() == '\n');
}

void CsvReader::skipByteOrderMark() {
  // A UTF-8 byte order mark (EF BB BF) is dropped; anything else read while looking for it
  // is replayed as data.
  static constexpr int kBom[] = {0xEF, 0xBB, 0xBF};
  for (int expected : kBom) {
    const auto raw = buf_->sbumpc();
    if (raw == std::streambuf::traits_type::eof()) {
      return;
    }
    pending_[pendingEnd_++] = static_cast<unsigned char>(raw);
    if (pending_[pendingEnd_ - 1] != expected) {
      return;
    }
  }
  pendingEnd_ = 0;
}

void CsvReader::skipRestOfLine() {
  while (true) {
    const int c = get();
    if (c == kEof || c == '\n') {
      return;
    }
  }
}

CsvReader::Result CsvReader::fail(CsvPosition at, std::string message, bool fatal) {
  error_ = std::move(message);
  errorPosition_ = at;
  finished_ = finished_ || fatal;
  return Result::Error;
}

CsvReader::Result CsvReader::next(std::vector<std::string>& fields) {
  if (finished_) {
    return Result::End;
  }
  if (!started_) {
    started_ = true;
    skipByteOrderMark();
  }
  while (atLineEnd()) {
    skipRestOfLine();  // a blank line
  }
  if (peek() == kEof) {
    finished_ = true;
    return Result::End;
  }
  ++recordNumber_;
  positions_.clear();
  const CsvPosition recordStart{line_, 1};
  std::size_t n = 0;
  while (true) {
    if (n == kMaxFields) {
      return fail(CsvPosition{line_, column_},
                  fmt::format("more than {} fields in one row", kMaxFields), true);
    }
    if (fields.size() <= n) {
      fields.emplace_back();
    }
    std::string& field = fields[n];
    field.clear();
    positions_.push_back(CsvPosition{line_, column_});
    ++n;
    if (peek() == '"') {
      const CsvPosition open{line_, column_};
      get();
      while (true) {
        const int c = get();
        if (c == kEof) {
          return fail(
              open, "unterminated quoted field (no closing '\"' before the end of the file)", true);
        }
        if (c == '"') {
          if (peek() != '"') {
            break;
          }
          get();
        } else if (c == '\r' && peek() == '\n') {
          continue;  // CRLF inside quotes is kept as LF
        }
        field += static_cast<char>(c);
        if (field.size() > kMaxFieldBytes) {
          return fail(open, fmt::format("field longer than {} bytes", kMaxFieldBytes), true);
        }
      }
      const int after = peek();
      if (after != delimiter_ && after != kEof && !atLineEnd()) {
        const CsvPosition at{line_, column_};
        skipRestOfLine();
        return fail(
            at,
            fmt::format("unexpected {} after the closing quote of field {}", describe(after), n),
            false);
      }
    } else {
      // Unquoted: up to the delimiter or the line end. A '"' inside is taken literally.
      while (true) {
        const int c = peek();
        if (c == kEof || c == delimiter_ || atLineEnd()) {
          break;
        }
        field += static_cast<char>(get());
        if (field.size() > kMaxFieldBytes) {
          return fail(positions_.back(), fmt::format("field longer than {} bytes", kMaxFieldBytes),
                      true);
        }
      }
    }
    if (peek() == delimiter_) {
      get();
      continue;
    }
    skipRestOfLine();  // the line end (CRLF or LF), or nothing at the end of the input
    break;
  }
  fields.resize(n);
  if (expectedFields_ == 0) {
    expectedFields_ = n;
  } else if (n != expectedFields_) {
    return fail(recordStart,
                fmt::format("row has {} field{}, expected {} like the first row", n,
                            n == 1 ? "" : "s", expectedFields_),
                false);
  }
  return Result::Record;
}

}  // namespace salvo::campaigns

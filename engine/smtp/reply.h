// SMTP replies and the incremental reply parser (RFC 5321 §4.2, RFC 3463 enhanced codes).
// Contract: pure code. The parser eats bytes in any slicing (whole or one byte at a time
// gives the same replies), enforces caps on line length, line count and reply size, and
// reports hostile or garbled input as an error instead of guessing. No I/O, no clock.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace salvo::smtp {

// RFC 3463 "class.subject.detail", e.g. 5.1.1. All zero when the reply carried none.
struct EnhancedCode {
  int klass = 0;
  int subject = 0;
  int detail = 0;

  bool present() const { return klass != 0; }
  std::string str() const;  // "5.1.1", or "" when absent
};

struct Reply {
  int code = 0;                    // 200..599
  EnhancedCode enhanced;           // from the first line when it starts with one
  std::vector<std::string> lines;  // text after "NNN-" / "NNN " of each line, no CRLF

  int klass() const { return code / 100; }
  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return klass() == 4; }
  bool permanent() const { return klass() == 5; }
  // One line for logs and the queue: "550 5.1.1 text of the first line", capped at 256
  // octets, with any non-printable octet replaced by '?'. "" for an empty Reply (code 0).
  std::string summary() const;
  // The same, appended to `out` (no allocation when `out` has room).
  void appendSummary(std::string& out) const;
};

struct ReplyLimits {
  std::size_t maxLineLength = 2048;  // RFC 5321 says 512; real servers send longer.
  std::size_t maxLines = 64;
  std::size_t maxReplySize = 16 * 1024;
};

class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {});

  // Consumes all of `bytes`, appending every completed reply to `out`. Returns false on a
  // protocol violation (bad code, mixed codes in a multi-line reply, a cap exceeded, NUL);
  // error() then says what, and the parser stays failed until reset().
  bool feed(std::string_view bytes, std::vector<Reply>& out);

  const std::string& error() const { return error_; }
  bool failed() const { return !error_.empty(); }
  // True when some bytes of an unfinished reply are buffered.
  bool partial() const;
  void reset();

 private:
  bool finishLine(std::vector<Reply>& out);
  bool fail(std::string message);  // sets error_, drops buffered input, returns false

  ReplyLimits limits_;
  std::string line_;
  Reply current_;
  bool inReply_ = false;
  std::size_t replySize_ = 0;
  std::string error_;
};

}  // namespace salvo::smtp

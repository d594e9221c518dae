#include "engine/smtp/reply.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include <fmt/format.h>

namespace salvo::smtp {
namespace {

constexpr std::size_t kSummaryCap = 256;
constexpr std::size_t kQuotedCap = 64;  // how much of a bad line an error message quotes

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isPrintable(char c) {
  return c >= 0x20 && c < 0x7f;
}

// A bad line, quoted for an error message: printable, capped, never a raw control octet.
std::string quoted(std::string_view line) {
  std::string q;
  q.reserve(std::min(line.size(), kQuotedCap) + 5);
  q += '"';
  for (std::size_t i = 0; i < line.size() && i < kQuotedCap; ++i) {
    q += isPrintable(line[i]) ? line[i] : '?';
  }
  if (line.size() > kQuotedCap) {
    q += "...";
  }
  q += '"';
  return q;
}

// Reads 1..maxDigits decimal digits at text[pos]; advances pos.
bool readNumber(std::string_view text, std::size_t& pos, std::size_t maxDigits, int& value) {
  const std::size_t start = pos;
  value = 0;
  while (pos < text.size() && pos - start < maxDigits && isDigit(text[pos])) {
    value = value * 10 + (text[pos] - '0');
    ++pos;
  }
  return pos > start;
}

// RFC 3463: "class.subject.detail" at the start of the text, followed by a space or the end;
// class 2, 4 or 5 and equal to the class of the basic code, else it is just text.
EnhancedCode parseEnhanced(std::string_view text, int code) {
  std::size_t pos = 0;
  EnhancedCode e;
  if (!readNumber(text, pos, 1, e.klass) || pos >= text.size() || text[pos++] != '.' ||
      !readNumber(text, pos, 3, e.subject) || pos >= text.size() || text[pos++] != '.' ||
      !readNumber(text, pos, 3, e.detail) || (pos < text.size() && text[pos] != ' ')) {
    return {};
  }
  if ((e.klass != 2 && e.klass != 4 && e.klass != 5) || e.klass != code / 100) {
    return {};
  }
  return e;
}

}  // namespace

std::string EnhancedCode::str() const {
  if (!present()) {
    return {};
  }
  return fmt::format("{}.{}.{}", klass, subject, detail);
}

void Reply::appendSummary(std::string& out) const {
  if (code == 0) {
    return;
  }
  const std::size_t start = out.size();
  fmt::format_to(std::back_inserter(out), "{}", code);
  if (lines.empty() || lines.front().empty()) {
    return;
  }
  out += ' ';
  const std::string& text = lines.front();
  const std::size_t room = kSummaryCap - (out.size() - start);
  const std::size_t n = std::min(text.size(), room);
  const std::size_t textStart = out.size();
  out.append(text, 0, n);
  for (std::size_t i = textStart; i < out.size(); ++i) {
    if (!isPrintable(out[i])) {
      out[i] = '?';
    }
  }
}

std::string Reply::summary() const {
  std::string s;
  appendSummary(s);
  return s;
}

ReplyParser::ReplyParser(ReplyLimits limits) : limits_(limits) {}

bool ReplyParser::feed(std::string_view bytes, std::vector<Reply>& out) {
  if (failed()) {
    return false;
  }
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    const char* stop = nl != nullptr ? nl : end;
    const auto n = static_cast<std::size_t>(stop - p);
    // One octet of slack for the CR of a CRLF; finishLine() checks the exact length. The
    // first offending octet decides the error, so that any slicing reports the same one.
    const std::size_t room = limits_.maxLineLength + 1 - line_.size();
    if (std::memchr(p, '\0', std::min(n, room + 1)) != nullptr) {
      return fail("reply contains a NUL octet");
    }
    if (n > room) {
      return fail(fmt::format("reply line longer than {} octets", limits_.maxLineLength));
    }
    line_.append(p, n);
    if (nl == nullptr) {
      break;
    }
    p = nl + 1;
    if (!finishLine(out)) {
      return false;
    }
  }
  return true;
}

bool ReplyParser::finishLine(std::vector<Reply>& out) {
  std::string_view line = line_;
  std::size_t terminator = 1;  // a bare LF is tolerated from servers
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
    terminator = 2;
  }
  if (line.size() > limits_.maxLineLength) {
    return fail(fmt::format("reply line longer than {} octets", limits_.maxLineLength));
  }
  if (line.find('\r') != std::string_view::npos) {
    return fail(fmt::format("reply line {} contains a bare CR", quoted(line)));
  }
  replySize_ += line.size() + terminator;
  if (replySize_ > limits_.maxReplySize) {
    return fail(fmt::format("reply longer than {} octets", limits_.maxReplySize));
  }
  if (line.size() < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) ||
      (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    return fail(fmt::format("malformed reply line {}", quoted(line)));
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (code < 200 || code > 599) {
    return fail(fmt::format("reply code {} is not in 2xx-5xx (line {})", code, quoted(line)));
  }
  const bool last = line.size() == 3 || line[3] == ' ';
  if (!inReply_) {
    current_ = Reply{};
    current_.code = code;
    inReply_ = true;
  } else if (code != current_.code) {
    return fail(fmt::format("multi-line reply mixes codes {} and {}", current_.code, code));
  }
  if (current_.lines.size() >= limits_.maxLines) {
    return fail(fmt::format("reply has more than {} lines", limits_.maxLines));
  }
  current_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view{});
  line_.clear();
  if (last) {
    current_.enhanced = parseEnhanced(current_.lines.front(), code);
    out.push_back(std::move(current_));
    current_ = Reply{};
    inReply_ = false;
    replySize_ = 0;
  }
  return true;
}

bool ReplyParser::fail(std::string message) {
  error_ = std::move(message);
  line_.clear();
  current_ = Reply{};
  inReply_ = false;
  replySize_ = 0;
  return false;
}

bool ReplyParser::partial() const {
  return inReply_ || !line_.empty();
}

void ReplyParser::reset() {
  line_.clear();
  current_ = Reply{};
  inReply_ = false;
  replySize_ = 0;
  error_.clear();
}

}  // namespace salvo::smtp

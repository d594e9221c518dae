#include "engine/smtp/body.h"

#include <cstring>

#include <fmt/format.h>

namespace salvo::smtp {
namespace {

std::size_t lineNumberAt(std::string_view message, std::size_t offset) {
  std::size_t line = 1;
  const char* p = message.data();
  const char* const end = p + offset;
  while ((p = static_cast<const char*>(std::memchr(p, '\n', end - p))) != nullptr) {
    ++line;
    ++p;
  }
  return line;
}

}  // namespace

// Lines that need no change (CRLF-terminated, not starting with '.') are copied in spans as
// long as possible: for a well-formed message the output is a handful of appends.
bool encodeBody(std::string_view message, std::string& out, std::string& error) {
  const char* const begin = message.data();
  const char* const end = begin + message.size();

  if (const void* nul = std::memchr(begin, '\0', message.size()); nul != nullptr) {
    const auto offset = static_cast<std::size_t>(static_cast<const char*>(nul) - begin);
    error = fmt::format("line {} contains a NUL octet", lineNumberAt(message, offset));
    return false;
  }

  const std::size_t original = out.size();
  out.reserve(original + message.size() + 5);
  const char* flushed = begin;  // input before this is already in `out`
  const char* line = begin;
  std::size_t lineNo = 1;
  while (line < end) {
    const char* lf = static_cast<const char*>(std::memchr(line, '\n', end - line));
    const char* contentEnd = lf != nullptr ? lf : end;
    const bool crlf = lf != nullptr && contentEnd > line && contentEnd[-1] == '\r';
    if (crlf) {
      --contentEnd;
    }
    const auto length = static_cast<std::size_t>(contentEnd - line);
    if (length > kMaxLineLength) {
      out.resize(original);
      error =
          fmt::format("line {} is {} octets long; the limit is {}", lineNo, length, kMaxLineLength);
      return false;
    }
    if (std::memchr(line, '\r', length) != nullptr) {
      out.resize(original);
      error = fmt::format("line {} contains a bare CR (a CR not followed by LF)", lineNo);
      return false;
    }
    if (*line == '.') {
      out.append(flushed, line);
      out += '.';
      flushed = line;
    }
    if (lf == nullptr) {
      // The message does not end with a line end: close its last line.
      out.append(flushed, end);
      out += "\r\n";
      flushed = end;
      break;
    }
    if (!crlf) {
      out.append(flushed, lf);
      out += "\r\n";
      flushed = lf + 1;
    }
    line = lf + 1;
    ++lineNo;
  }
  out.append(flushed, end);
  out += ".\r\n";
  return true;
}

}  // namespace salvo::smtp

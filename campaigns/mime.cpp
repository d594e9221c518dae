#include "campaigns/mime.h"

#include <cstddef>
#include <cstring>

#include "campaigns/header_encoding.h"

namespace salvo::campaigns {

namespace {

constexpr std::size_t kLineMax = 998;        // RFC 5322 section 2.1.1
constexpr std::size_t kEncodedLineMax = 76;  // RFC 2045 sections 6.7 and 6.8
constexpr char kHex[] = "0123456789ABCDEF";

// Calls `line(text)` for every line of `body`, whatever its line end; a final line without
// a line end is reported too, an empty final line (after a last line end) is not.
template <typename F>
void forEachLine(std::string_view body, F&& line) {
  std::size_t start = 0;
  if (std::memchr(body.data(), '\r', body.size()) == nullptr) {
    // The common case (campaign text has LF line ends): memchr finds them fast.
    while (start < body.size()) {
      const void* lf = std::memchr(body.data() + start, '\n', body.size() - start);
      const std::size_t end =
          lf == nullptr ? body.size()
                        : static_cast<std::size_t>(static_cast<const char*>(lf) - body.data());
      line(body.substr(start, end - start));
      start = end + 1;
    }
    return;
  }
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\r' && c != '\n') {
      continue;
    }
    line(body.substr(start, i - start));
    if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
      ++i;
    }
    start = i + 1;
  }
  if (start < body.size()) {
    line(body.substr(start));
  }
}

void appendQuotedPrintableLine(std::string& out, std::string_view line) {
  std::size_t column = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    const bool last = i + 1 == line.size();
    // White space at the end of a line would be lost in transit, so it is encoded there.
    const bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
    const std::size_t width = literal ? 1 : 3;
    // Keep room for a soft line break ("=") unless this is the line's last character.
    if (column + width > (last ? kEncodedLineMax : kEncodedLineMax - 1)) {
      out += "=\r\n";
      column = 0;
    }
    if (literal) {
      out += static_cast<char>(c);
    } else {
      out += '=';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    column += width;
  }
  out += "\r\n";
}

}  // namespace

std::string_view transferEncodingName(TransferEncoding encoding) {
  switch (encoding) {
    case TransferEncoding::SevenBit:
      return "7bit";
    case TransferEncoding::QuotedPrintable:
      return "quoted-printable";
    case TransferEncoding::Base64:
      return "base64";
  }
  return "7bit";
}

TransferEncoding chooseTransferEncoding(std::string_view body) {
  // Two simple passes the compiler vectorizes (an OR, then a count only when needed) and
  // a memchr walk over the lines beat one byte-at-a-time pass.
  unsigned char any = 0;
  for (const char ch : body) {
    any |= static_cast<unsigned char>(ch);
  }
  std::size_t eightBit = 0;
  if ((any & 0x80) != 0) {
    for (const char ch : body) {
      eightBit += static_cast<unsigned char>(ch) >> 7;
    }
  }
  std::size_t longest = 0;
  forEachLine(body, [&](std::string_view line) {
    longest = line.size() > longest ? line.size() : longest;
  });
  if (eightBit == 0 && longest <= kLineMax) {
    return TransferEncoding::SevenBit;
  }
  // Quoted-printable triples every 8-bit byte; past about one in six, base64 is smaller.
  return eightBit * 6 <= body.size() ? TransferEncoding::QuotedPrintable : TransferEncoding::Base64;
}

void appendEncodedBody(std::string& out, std::string_view body, TransferEncoding encoding) {
  switch (encoding) {
    case TransferEncoding::SevenBit:
      forEachLine(body, [&](std::string_view line) {
        out += line;
        out += "\r\n";
      });
      return;
    case TransferEncoding::QuotedPrintable:
      forEachLine(body, [&](std::string_view line) { appendQuotedPrintableLine(out, line); });
      return;
    case TransferEncoding::Base64: {
      // The canonical form of text is CRLF lines (RFC 2046 section 4.1.1).
      thread_local std::string canonical;
      thread_local std::string encoded;
      canonical.clear();
      forEachLine(body, [&](std::string_view line) {
        canonical += line;
        canonical += "\r\n";
      });
      encoded.clear();
      appendBase64(encoded, canonical);
      for (std::size_t i = 0; i < encoded.size(); i += kEncodedLineMax) {
        out.append(encoded, i, kEncodedLineMax);
        out += "\r\n";
      }
      return;
    }
  }
}

}  // namespace salvo::campaigns

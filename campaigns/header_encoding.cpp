#include "campaigns/header_encoding.h"

#include <algorithm>
#include <cstdint>

namespace salvo::campaigns {

namespace {

constexpr std::size_t kEncodedWordMax = 75;  // RFC 2047 section 2
constexpr std::size_t kEncodedLineMax = 76;  // RFC 2047 section 2
constexpr std::size_t kFoldTarget = 78;      // RFC 5322 section 2.1.1 SHOULD
constexpr std::size_t kLineMax = 998;        // RFC 5322 section 2.1.1 MUST
constexpr std::string_view kWordPrefix = "=?UTF-8?B?";
constexpr std::string_view kWordSuffix = "?=";

bool isWsp(char c) {
  return c == ' ' || c == '\t';
}

bool isContinuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Length of the well-formed UTF-8 sequence at the start of `s`, 0 when malformed.
std::size_t utf8SequenceLength(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    return 1;
  }
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) {
      lo = 0xA0;  // no overlong forms
    } else if (b0 == 0xED) {
      hi = 0x9F;  // no surrogates
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) {
      lo = 0x90;
    } else if (b0 == 0xF4) {
      hi = 0x8F;  // <= U+10FFFF
    }
  } else {
    return 0;
  }
  if (s.size() < len) {
    return 0;
  }
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < lo || b1 > hi) {
    return 0;
  }
  for (std::size_t i = 2; i < len; ++i) {
    if (!isContinuation(static_cast<unsigned char>(s[i]))) {
      return 0;
    }
  }
  return len;
}

// The largest prefix of `text` no longer than `budget` bytes that ends on a character
// boundary (at least one whole character, even if that exceeds a tiny budget).
std::size_t chunkLength(std::string_view text, std::size_t budget) {
  if (text.size() <= budget) {
    return text.size();
  }
  std::size_t n = budget;
  while (n > 0 && isContinuation(static_cast<unsigned char>(text[n]))) {
    --n;
  }
  if (n == 0) {
    // A single character longer than the budget (or malformed input): take it whole.
    n = 1;
    while (n < text.size() && isContinuation(static_cast<unsigned char>(text[n]))) {
      ++n;
    }
  }
  return n;
}

// Raw bytes that fit in one encoded word starting at `column`.
std::size_t rawBudget(std::size_t column) {
  const std::size_t overhead = kWordPrefix.size() + kWordSuffix.size();
  std::size_t room = kEncodedWordMax;
  if (column + room > kEncodedLineMax) {
    room = kEncodedLineMax > column ? kEncodedLineMax - column : 0;
  }
  const std::size_t base64Chars = room > overhead ? ((room - overhead) / 4) * 4 : 0;
  // Always room for one 4-byte character (8 base64 characters) so encoding progresses.
  return std::max<std::size_t>(base64Chars / 4 * 3, 6);
}

}  // namespace

bool isAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool isValidUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = utf8SequenceLength(text.substr(i));
    if (len == 0) {
      return false;
    }
    i += len;
  }
  return true;
}

long firstControlChar(std::string_view text, bool allowTab) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      if (c == '\t' && allowTab) {
        continue;
      }
      return c;
    }
    // C1 controls are U+0080..U+009F, encoded C2 80..C2 9F.
    if (c == 0xC2 && i + 1 < text.size()) {
      const auto c1 = static_cast<unsigned char>(text[i + 1]);
      if (c1 >= 0x80 && c1 <= 0x9F) {
        return c1;
      }
    }
  }
  return -1;
}

void appendBase64(std::string& out, std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  while (i + 3 <= data.size()) {
    const std::uint32_t v = (static_cast<unsigned char>(data[i]) << 16) |
                            (static_cast<unsigned char>(data[i + 1]) << 8) |
                            static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = static_cast<unsigned char>(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = (static_cast<unsigned char>(data[i]) << 16) |
                            (static_cast<unsigned char>(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
}

std::size_t appendEncodedWords(std::string& out, std::string_view text, std::size_t column) {
  bool first = true;
  while (!text.empty()) {
    if (!first) {
      out += "\r\n ";
      column = 1;
    }
    const std::size_t n = chunkLength(text, rawBudget(column));
    const std::size_t before = out.size();
    out += kWordPrefix;
    appendBase64(out, text.substr(0, n));
    out += kWordSuffix;
    column += out.size() - before;
    text.remove_prefix(n);
    first = false;
  }
  return column;
}

void appendUnstructuredHeader(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  const std::size_t valueStart = out.size();
  std::size_t column = name.size() + 2;
  bool plain = isAscii(value) && firstControlChar(value, true) < 0;
  if (plain) {
    // Fold before a run of white space once the line passes the 78-octet target; a token
    // that alone breaks the 998 limit forces encoding (encoded words can split anywhere).
    std::size_t i = 0;
    while (i < value.size()) {
      std::size_t j = i;
      while (j < value.size() && isWsp(value[j])) {
        ++j;
      }
      const bool hasLeadingWsp = j > i;
      while (j < value.size() && !isWsp(value[j])) {
        ++j;
      }
      const bool endsWithText = !isWsp(value[j - 1]);
      const std::size_t len = j - i;
      if (i > 0 && hasLeadingWsp && endsWithText && column + len > kFoldTarget) {
        out += "\r\n";
        column = 0;
      }
      out.append(value.substr(i, len));
      column += len;
      if (column > kLineMax) {
        plain = false;
        break;
      }
      i = j;
    }
  }
  if (!plain) {
    out.resize(valueStart);
    appendEncodedWords(out, value, name.size() + 2);
  }
  out += "\r\n";
}

}  // namespace salvo::campaigns

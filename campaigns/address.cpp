#include "campaigns/address.h"

#include <arpa/inet.h>
#include <strings.h>

#include <cstring>

#include <fmt/format.h>

#include "campaigns/header_encoding.h"
#include "campaigns/text.h"

namespace salvo::campaigns {

namespace {

constexpr std::size_t kMaxAddress = 254;  // RFC 5321 4.5.3.1.3 path (256) minus "<>"
constexpr std::size_t kMaxLocal = 64;     // RFC 5321 4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;   // RFC 5321 4.5.3.1.2
constexpr std::size_t kMaxLabel = 63;     // RFC 1035 2.3.4
constexpr std::size_t kMaxDisplayName = 256;

bool isAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5322 atext, plus UTF-8 bytes (RFC 6531 atext = ... / UTF8-non-ascii).
bool isAtext(unsigned char c) {
  return isAlnum(c) || c >= 0x80 || std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr;
}

// RFC 5321 qtextSMTP (space included) plus UTF-8 bytes.
bool isQtext(unsigned char c) {
  return (c >= 32 && c <= 126 && c != '"' && c != '\\') || c >= 0x80;
}

std::string describe(unsigned char c) {
  if (c == ' ') {
    return "a space";
  }
  if (c >= 0x80) {
    return fmt::format("byte 0x{:02X}", c);
  }
  return fmt::format("'{}'", static_cast<char>(c));
}

// CR, LF, NUL, other control characters and malformed UTF-8: the checks shared by every
// piece of text that may end up in a header.
bool checkHeaderText(std::string_view text, std::string_view what, std::string& error) {
  if (text.find_first_of("\r\n") != std::string_view::npos) {
    error = fmt::format("{} contains a line break", what);
    return false;
  }
  if (text.find('\0') != std::string_view::npos) {
    error = fmt::format("{} contains a NUL byte", what);
    return false;
  }
  const long control = firstControlChar(text, false);
  if (control >= 0) {
    error = fmt::format("{} contains a control character (U+{:04X})", what, control);
    return false;
  }
  if (!isValidUtf8(text)) {
    error = fmt::format("{} is not valid UTF-8", what);
    return false;
  }
  return true;
}

// Validates a dot-atom local part; empty error when fine.
bool checkDotAtom(std::string_view local, std::string& error) {
  if (local.empty()) {
    error = "local part is empty";
    return false;
  }
  if (local.front() == '.') {
    error = "local part starts with '.'";
    return false;
  }
  if (local.back() == '.') {
    error = "local part ends with '.'";
    return false;
  }
  for (std::size_t i = 0; i < local.size(); ++i) {
    const auto c = static_cast<unsigned char>(local[i]);
    if (c == '.') {
      if (local[i + 1] == '.') {
        error = "local part contains '..'";
        return false;
      }
      continue;
    }
    if (!isAtext(c)) {
      error = fmt::format("local part contains {}", describe(c));
      return false;
    }
  }
  return true;
}

bool parseIpv4(std::string_view s) {
  int parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t digits = 0;
    int value = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 4) {
      value = value * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0 || digits > 3 || value > 255) {
      return false;
    }
    ++parts;
    if (i == s.size()) {
      return parts == 4;
    }
    if (s[i] != '.' || parts == 4) {
      return false;
    }
    ++i;
  }
}

bool parseAddressLiteral(std::string_view text, std::string& canonical, std::string& error) {
  if (text.back() != ']') {
    error = "address literal is missing ']'";
    return false;
  }
  const std::string_view inner = text.substr(1, text.size() - 2);
  constexpr std::string_view kV6 = "ipv6:";
  if (inner.size() > kV6.size() && strncasecmp(inner.data(), "IPv6:", kV6.size()) == 0) {
    const std::string v6(inner.substr(kV6.size()));
    in6_addr addr{};
    if (inet_pton(AF_INET6, v6.c_str(), &addr) != 1) {
      error = fmt::format("invalid IPv6 address literal '{}'", text);
      return false;
    }
    canonical = "[IPv6:";
    for (char c : v6) {
      canonical += asciiLower(c);
    }
    canonical += ']';
    return true;
  }
  if (!parseIpv4(inner)) {
    error = fmt::format("invalid address literal '{}' (expected [1.2.3.4] or [IPv6:...])", text);
    return false;
  }
  canonical.assign(text);
  return true;
}

// Position of `ch` outside double quotes (backslash escapes inside quotes), or npos.
std::size_t findUnquoted(std::string_view s, char ch) {
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    } else if (s[i] == ch && !quoted) {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

bool parseDomain(std::string_view text, std::string& canonical, std::string& error) {
  if (text.empty()) {
    error = "domain is empty";
    return false;
  }
  if (!checkHeaderText(text, "domain", error)) {
    return false;
  }
  if (text.front() == '[') {
    return parseAddressLiteral(text, canonical, error);
  }
  if (text.size() > kMaxDomain) {
    error = fmt::format("domain is longer than {} octets", kMaxDomain);
    return false;
  }
  canonical.clear();
  canonical.reserve(text.size());
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find('.', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string_view label = text.substr(start, end - start);
    if (label.empty()) {
      error = fmt::format("domain '{}' has an empty label", text);
      return false;
    }
    if (label.size() > kMaxLabel) {
      error = fmt::format("domain label '{}' is longer than {} octets", label, kMaxLabel);
      return false;
    }
    if (label.front() == '-') {
      error = fmt::format("domain label '{}' starts with '-'", label);
      return false;
    }
    if (label.back() == '-') {
      error = fmt::format("domain label '{}' ends with '-'", label);
      return false;
    }
    for (char ch : label) {
      const auto c = static_cast<unsigned char>(ch);
      if (!isAlnum(c) && c != '-' && c < 0x80) {
        error = fmt::format("domain contains {}", describe(c));
        return false;
      }
      canonical += asciiLower(static_cast<char>(c));
    }
    if (end == text.size()) {
      return true;
    }
    canonical += '.';
    start = end + 1;
  }
}

std::optional<Address> parseAddress(std::string_view text, std::string& error) {
  if (text.empty()) {
    error = "address is empty";
    return std::nullopt;
  }
  if (!checkHeaderText(text, "address", error)) {
    return std::nullopt;
  }
  if (text.size() > kMaxAddress) {
    error = fmt::format("address is longer than {} octets", kMaxAddress);
    return std::nullopt;
  }
  Address out;
  std::size_t at = 0;
  if (text.front() == '"') {
    // Quoted-string local part; kept quoted only when its content is not a dot-atom.
    std::string content;
    std::size_t i = 1;
    bool closed = false;
    while (i < text.size()) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c == '"') {
        closed = true;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= text.size()) {
          break;
        }
        const auto next = static_cast<unsigned char>(text[i + 1]);
        if (next < 32 || next > 126) {
          error = fmt::format("invalid escape of {} in the quoted local part", describe(next));
          return std::nullopt;
        }
        content += static_cast<char>(next);
        i += 2;
        continue;
      }
      if (!isQtext(c)) {
        error = fmt::format("quoted local part contains {}", describe(c));
        return std::nullopt;
      }
      content += static_cast<char>(c);
      ++i;
    }
    if (!closed) {
      error = "quoted local part is missing its closing '\"'";
      return std::nullopt;
    }
    at = i + 1;
    if (at >= text.size() || text[at] != '@') {
      error = "missing '@' after the quoted local part";
      return std::nullopt;
    }
    std::string ignored;
    if (checkDotAtom(content, ignored)) {
      out.local = std::move(content);
    } else {
      out.local = "\"";
      for (char c : content) {
        if (c == '"' || c == '\\') {
          out.local += '\\';
        }
        out.local += c;
      }
      out.local += '"';
    }
  } else {
    at = text.find('@');
    if (at == std::string_view::npos) {
      error = "missing '@'";
      return std::nullopt;
    }
    if (!checkDotAtom(text.substr(0, at), error)) {
      return std::nullopt;
    }
    out.local.assign(text.substr(0, at));
  }
  if (out.local.size() > kMaxLocal) {
    error = fmt::format("local part is longer than {} octets", kMaxLocal);
    return std::nullopt;
  }
  const std::string_view domain = text.substr(at + 1);
  if (domain.empty()) {
    error = "missing domain after '@'";
    return std::nullopt;
  }
  if (domain.find('@') != std::string_view::npos) {
    error = "more than one '@' (quote the local part if it contains one)";
    return std::nullopt;
  }
  if (!parseDomain(domain, out.domain, error)) {
    return std::nullopt;
  }
  return out;
}

std::optional<Mailbox> parseMailbox(std::string_view text, std::string& error) {
  text = trimBlanks(text);
  // Injection first; other bad characters are reported by the part (name or address)
  // that holds them.
  if (text.find_first_of("\r\n") != std::string_view::npos) {
    error = "address contains a line break";
    return std::nullopt;
  }
  if (text.find('\0') != std::string_view::npos) {
    error = "address contains a NUL byte";
    return std::nullopt;
  }
  Mailbox out;
  // name-addr: the '<' is the first one outside a quoted display name.
  const std::size_t lt = findUnquoted(text, '<');
  if (text.empty() || text.back() != '>') {
    if (lt != std::string_view::npos) {
      error = text.find('>', lt) != std::string_view::npos
                  ? "text after the '>' that closes the address"
                  : "missing '>' after the address";
      return std::nullopt;
    }
    auto addr = parseAddress(text, error);
    if (!addr) {
      return std::nullopt;
    }
    out.address = std::move(*addr);
    return out;
  }
  if (lt == std::string_view::npos) {
    // The only way to hide the '<' is an unbalanced quote before it.
    if (text.front() == '"') {
      error = "quoted display name is missing its closing '\"'";
    } else if (text.find('"') != std::string_view::npos) {
      error = "display name contains '\"' (put the whole name in quotes and escape it as \\\")";
    } else {
      error = "'>' without a matching '<'";
    }
    return std::nullopt;
  }
  auto addr = parseAddress(text.substr(lt + 1, text.size() - lt - 2), error);
  if (!addr) {
    return std::nullopt;
  }
  out.address = std::move(*addr);
  const std::string_view name = trimBlanks(text.substr(0, lt));
  if (!name.empty() && name.front() == '"') {
    std::size_t i = 1;
    bool closed = false;
    while (i < name.size()) {
      if (name[i] == '\\' && i + 1 < name.size()) {
        out.displayName += name[i + 1];
        i += 2;
        continue;
      }
      if (name[i] == '"') {
        closed = true;
        break;
      }
      out.displayName += name[i];
      ++i;
    }
    if (!closed) {
      error = "quoted display name is missing its closing '\"'";
      return std::nullopt;
    }
    if (i + 1 != name.size()) {
      error = "text after the quoted display name (put the whole name in quotes)";
      return std::nullopt;
    }
  } else {
    if (name.find('"') != std::string_view::npos) {
      error = "display name contains '\"' (put the whole name in quotes and escape it as \\\")";
      return std::nullopt;
    }
    out.displayName.assign(name);
  }
  if (!checkDisplayName(out.displayName, error)) {
    return std::nullopt;
  }
  return out;
}

bool checkDisplayName(std::string_view name, std::string& error) {
  if (!checkHeaderText(name, "display name", error)) {
    return false;
  }
  if (name.size() > kMaxDisplayName) {
    error = fmt::format("display name is longer than {} octets", kMaxDisplayName);
    return false;
  }
  return true;
}

std::string Mailbox::header() const {
  const std::string addr = address.str();
  if (displayName.empty()) {
    return addr;
  }
  std::string out;
  out.reserve(displayName.size() * 2 + addr.size() + 4);
  if (!isAscii(displayName) || firstControlChar(displayName, false) >= 0) {
    constexpr std::size_t kLongestFieldName = sizeof("Reply-To: ") - 1;
    const std::size_t column = appendEncodedWords(out, displayName, kLongestFieldName);
    // Keep the line holding the last encoded word within RFC 2047's 76 characters.
    out += column + addr.size() + 3 > 76 ? "\r\n <" : " <";
  } else {
    // RFC 5322 specials force a quoted string; so do "=?" (it would read as an encoded
    // word) and white space a phrase would not preserve.
    const bool needsQuotes = displayName.find_first_of("()<>[]:;@\\,.\"") != std::string::npos ||
                             displayName.find("=?") != std::string::npos ||
                             displayName.find("  ") != std::string::npos ||
                             displayName.find('\t') != std::string::npos ||
                             displayName.front() == ' ' || displayName.back() == ' ';
    if (needsQuotes) {
      out += '"';
      for (char c : displayName) {
        if (c == '"' || c == '\\') {
          out += '\\';
        }
        out += c;
      }
      out += '"';
    } else {
      out += displayName;
    }
    out += " <";
  }
  out += addr;
  out += '>';
  return out;
}

bool hasLineBreakOrNul(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace salvo::campaigns

#include "engine/smtp/capabilities.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>

namespace salvo::smtp {
namespace {

char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool equalsNoCase(std::string_view a, std::string_view upperCase) {
  if (a.size() != upperCase.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (upper(a[i]) != upperCase[i]) {
      return false;
    }
  }
  return true;
}

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

// Splits an EHLO line into words separated by spaces or tabs.
class Words {
 public:
  explicit Words(std::string_view line) : rest_(line) {}
  bool next(std::string_view& word) {
    std::size_t i = 0;
    while (i < rest_.size() && isSpace(rest_[i])) {
      ++i;
    }
    std::size_t j = i;
    while (j < rest_.size() && !isSpace(rest_[j])) {
      ++j;
    }
    word = rest_.substr(i, j - i);
    rest_.remove_prefix(j);
    return !word.empty();
  }

 private:
  std::string_view rest_;
};

// "SIZE 10240000": digits only; an absent, malformed or zero value means no fixed limit.
// A value beyond 64 bits is clamped (it is no limit in practice).
std::uint64_t parseSize(std::string_view value) {
  std::uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      return 0;
    }
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      return std::numeric_limits<std::uint64_t>::max();
    }
    n = n * 10 + digit;
  }
  return n;
}

void addMechanism(std::vector<std::string>& mechs, std::string_view word) {
  if (word.empty()) {
    return;
  }
  std::string m(word);
  std::transform(m.begin(), m.end(), m.begin(), upper);
  if (std::find(mechs.begin(), mechs.end(), m) == mechs.end()) {
    mechs.push_back(std::move(m));
  }
}

}  // namespace

Capabilities Capabilities::fromEhlo(const Reply& reply) {
  Capabilities caps;
  caps.esmtp = true;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    Words words(reply.lines[i]);
    std::string_view keyword;
    if (!words.next(keyword)) {
      continue;
    }
    std::string_view param;
    if (keyword.size() > 5 && equalsNoCase(keyword.substr(0, 5), "AUTH=")) {
      // The pre-RFC 2554 form some servers still announce: "AUTH=LOGIN PLAIN".
      addMechanism(caps.authMechanisms, keyword.substr(5));
      while (words.next(param)) {
        addMechanism(caps.authMechanisms, param);
      }
    } else if (equalsNoCase(keyword, "AUTH")) {
      while (words.next(param)) {
        addMechanism(caps.authMechanisms, param);
      }
    } else if (equalsNoCase(keyword, "SIZE")) {
      caps.size = true;
      caps.maxSize = words.next(param) ? parseSize(param) : 0;
    } else if (equalsNoCase(keyword, "PIPELINING")) {
      caps.pipelining = true;
    } else if (equalsNoCase(keyword, "STARTTLS")) {
      caps.startTls = true;
    } else if (equalsNoCase(keyword, "8BITMIME")) {
      caps.eightBitMime = true;
    } else if (equalsNoCase(keyword, "SMTPUTF8")) {
      caps.smtpUtf8 = true;
    } else if (equalsNoCase(keyword, "ENHANCEDSTATUSCODES")) {
      caps.enhancedStatusCodes = true;
    } else if (equalsNoCase(keyword, "CHUNKING")) {
      caps.chunking = true;
    }
  }
  return caps;
}

}  // namespace salvo::smtp

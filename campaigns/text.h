// Small ASCII text helpers shared inside campaigns/ (not a public contract).
#pragma once

#include <string_view>

namespace salvo::campaigns {

// Without leading and trailing spaces and tabs.
inline std::string_view trimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

inline char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality (column and key names such as "Email").
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) {
      return false;
    }
  }
  return true;
}

// The recipient address column/key: "email" in any case.
inline bool isEmailKey(std::string_view name) {
  return equalsIgnoreCase(name, "email");
}

}  // namespace salvo::campaigns

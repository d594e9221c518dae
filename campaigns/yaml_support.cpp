#include "campaigns/yaml_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace salvo::campaigns {

namespace {

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The raw token at `pos` when it is one of YAML's plain null spellings.
std::string_view nullToken(std::string_view text, std::size_t pos) {
  for (std::string_view token : {"null", "Null", "NULL", "~"}) {
    if (text.compare(pos, token.size(), token) != 0) {
      continue;
    }
    const std::size_t end = pos + token.size();
    if (end == text.size() || std::strchr(" \t\r\n,]}#", text[end]) != nullptr) {
      return token;
    }
  }
  return {};
}

}  // namespace

bool readWholeFile(const std::string& path, std::string& content, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    error = std::strerror(EISDIR);
    return false;
  }
  content.clear();
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      error = std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) {
      break;
    }
    content.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

YamlPosition positionOf(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) {
    return {};
  }
  return YamlPosition{mark.line + 1, mark.column + 1};
}

std::optional<YAML::Node> YamlFile::parse(std::string& text) {
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    text.erase(0, 3);
  }
  text_ = text;
  try {
    return YAML::Load(text_);
  } catch (const YAML::Exception& e) {
    // yaml-cpp's what() repeats the position; its msg is the bare reason.
    error(positionOf(e.mark), e.msg);
  } catch (const std::exception& e) {
    error(YamlPosition{}, e.what());
  }
  return std::nullopt;
}

void YamlFile::error(YamlPosition at, std::string message, int exitCode) {
  diags_.add(file_, at.line, at.column, std::move(message), exitCode);
}

void YamlFile::error(const YAML::Node& at, std::string message) {
  error(positionOf(at.Mark()), std::move(message));
}

std::optional<std::string> scalarText(const YAML::Node& node, std::string_view text) {
  if (node.IsScalar()) {
    return node.Scalar();
  }
  if (node.IsNull() || !node.IsDefined()) {
    const YAML::Mark mark = node.Mark();
    if (!mark.is_null() && mark.pos >= 0 && static_cast<std::size_t>(mark.pos) < text.size()) {
      return std::string(nullToken(text, static_cast<std::size_t>(mark.pos)));
    }
    return std::string();
  }
  return std::nullopt;
}

YamlPosition valuePosition(const YAML::Node& key, const YAML::Node& value, std::string_view text) {
  if (value.IsNull()) {
    const YAML::Mark mark = value.Mark();
    const bool hasToken = !mark.is_null() && mark.pos >= 0 &&
                          static_cast<std::size_t>(mark.pos) < text.size() &&
                          !nullToken(text, static_cast<std::size_t>(mark.pos)).empty();
    if (!hasToken) {
      return positionOf(key.Mark());
    }
  }
  return positionOf(value.Mark());
}

std::string printable(std::string_view text) {
  constexpr std::size_t kMax = 200;
  std::string out;
  std::size_t i = 0;
  for (; i < text.size() && out.size() < kMax; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (i < text.size()) {
    // Do not cut a UTF-8 sequence in half.
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) {
      out.pop_back();
    }
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) {
      out.pop_back();
    }
    out += "...";
  }
  return out;
}

std::optional<std::string> YamlFile::scalar(const YAML::Node& node, std::string_view what) {
  auto value = scalarText(node, text_);
  if (!value) {
    error(node,
          fmt::format("{} must be a single value, not a {}", what, node.IsMap() ? "map" : "list"));
  }
  return value;
}

std::map<std::string, YamlFile::Entry, std::less<>> YamlFile::readMap(
    const YAML::Node& map, const std::vector<std::string_view>& known) {
  std::map<std::string, Entry, std::less<>> entries;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key, "keys must be plain names, not lists or maps");
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      error(key, unknownKeyMessage(printable(name), known));
      continue;
    }
    if (entries.count(name) != 0) {
      const YamlPosition first = positionOf(entries[name].key.Mark());
      error(key, fmt::format("duplicate key '{}' (first set on line {})", name, first.line));
      continue;
    }
    entries.emplace(name, Entry{key, it->second});
  }
  return entries;
}

std::string unknownKeyMessage(std::string_view key, const std::vector<std::string_view>& known) {
  std::string_view best;
  std::size_t bestDistance = 3;  // suggest only close misspellings
  for (std::string_view k : known) {
    const std::size_t d = editDistance(key, k);
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  if (!best.empty()) {
    return fmt::format("unknown key '{}' (did you mean '{}'?)", key, best);
  }
  return fmt::format("unknown key '{}' (expected one of: {})", key, fmt::join(known, ", "));
}

std::optional<std::int64_t> parseInteger(std::string_view text) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  if (text.empty()) {
    return std::nullopt;
  }
  const auto [ptr, ec] = std::from_chars(text.data() + (text.front() == '+' ? 1 : 0), end, value);
  if (ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint64_t> parseDurationMs(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    ++digits;
  }
  if (digits == 0 || digits > 15) {
    return std::nullopt;
  }
  std::uint64_t number = 0;
  std::from_chars(text.data(), text.data() + digits, number);
  const std::string_view unit = text.substr(digits);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 3600 * 1000;
  } else if (unit == "d") {
    scale = 86400 * 1000;
  } else {
    return std::nullopt;
  }
  if (number > std::numeric_limits<std::uint64_t>::max() / scale) {
    return std::nullopt;
  }
  return number * scale;
}

}  // namespace salvo::campaigns

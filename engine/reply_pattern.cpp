#include "engine/reply_pattern.h"

#include <fmt/format.h>

#include <charconv>

namespace salvo::engine {

namespace {

bool parseCode(std::string_view text, std::array<int, 3>& out) {
  if (text.size() != 3) {
    return false;
  }
  for (std::size_t i = 0; i < 3; ++i) {
    const char c = text[i];
    if (c == 'x' || c == 'X') {
      out[i] = -1;
    } else if (c >= '0' && c <= '9') {
      out[i] = c - '0';
    } else {
      return false;
    }
  }
  return out[0] == -1 || (out[0] >= 2 && out[0] <= 5);
}

bool parseEnhanced(std::string_view text, std::array<int, 3>& out) {
  for (std::size_t i = 0; i < 3; ++i) {
    const std::size_t dot = i < 2 ? text.find('.') : text.size();
    if (dot == std::string_view::npos) {
      return false;
    }
    const std::string_view part = text.substr(0, dot);
    if (part == "x" || part == "X") {
      out[i] = -1;
    } else {
      // RFC 3463: class 1 digit, subject and detail 1 to 3 digits.
      if (part.empty() || part.size() > (i == 0 ? 1u : 3u)) {
        return false;
      }
      int value = 0;
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
      if (ec != std::errc() || end != part.data() + part.size()) {
        return false;
      }
      out[i] = value;
    }
    text.remove_prefix(std::min(text.size(), dot + 1));
  }
  return out[0] == -1 || out[0] == 2 || out[0] == 4 || out[0] == 5;
}

}  // namespace

std::optional<ReplyMatcher> ReplyMatcher::compile(const ReplyPattern& pattern, std::string& error) {
  ReplyMatcher m;
  if (pattern.code.empty() && pattern.enhanced.empty() && pattern.text.empty()) {
    error = "a rule must match on at least one of 'code', 'enhanced' or 'text'";
    return std::nullopt;
  }
  if (!pattern.code.empty() && !parseCode(pattern.code, m.code_)) {
    error = fmt::format(
        "code '{}': expected three characters, each a digit or x, starting with 2 to 5 "
        "(like 421 or 4xx)",
        campaigns::printable(pattern.code));
    return std::nullopt;
  }
  if (!pattern.enhanced.empty()) {
    if (!parseEnhanced(pattern.enhanced, m.enhanced_)) {
      error = fmt::format(
          "enhanced code '{}': expected class.subject.detail, each a number or x (like 5.1.1 "
          "or 4.7.x)",
          campaigns::printable(pattern.enhanced));
      return std::nullopt;
    }
    m.anyEnhanced_ = false;
  }
  if (!pattern.text.empty()) {
    try {
      m.text_.emplace(pattern.text,
                      std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
    } catch (const std::regex_error& e) {
      error = fmt::format("text '{}' is not a valid regular expression: {}",
                          campaigns::printable(pattern.text), e.what());
      return std::nullopt;
    }
  }
  return m;
}

bool ReplyMatcher::matches(int code, const smtp::EnhancedCode& enhanced,
                           std::string_view text) const {
  const int digits[3] = {code / 100 % 10, code / 10 % 10, code % 10};
  for (std::size_t i = 0; i < 3; ++i) {
    if (code_[i] >= 0 && code_[i] != digits[i]) {
      return false;
    }
  }
  if (!anyEnhanced_) {
    if (!enhanced.present()) {
      return false;
    }
    const int parts[3] = {enhanced.klass, enhanced.subject, enhanced.detail};
    for (std::size_t i = 0; i < 3; ++i) {
      if (enhanced_[i] >= 0 && enhanced_[i] != parts[i]) {
        return false;
      }
    }
  }
  if (text_) {
    text = text.substr(0, kMaxTextBytes);
    return std::regex_search(text.begin(), text.end(), *text_);
  }
  return true;
}

std::string replyText(const smtp::Reply& reply) {
  std::string out;
  for (const std::string& line : reply.lines) {
    if (!out.empty()) {
      out += ' ';
    }
    out += line;
  }
  return out;
}

bool readReplyPattern(campaigns::YamlFile& yaml, const YAML::Node& rule,
                      const std::map<std::string, campaigns::YamlFile::Entry, std::less<>>& fields,
                      ReplyPattern& pattern) {
  bool ok = true;
  const auto field = [&](std::string_view key, std::string& out) {
    const auto it = fields.find(key);
    if (it == fields.end()) {
      return;
    }
    auto value = yaml.scalar(it->second.value, fmt::format("'{}'", key));
    if (!value) {
      ok = false;
      return;
    }
    out = std::move(*value);
  };
  field("code", pattern.code);
  field("enhanced", pattern.enhanced);
  field("text", pattern.text);
  if (!ok) {
    return false;
  }
  std::string error;
  if (!ReplyMatcher::compile(pattern, error)) {
    // Point at the offending field when there is one, else at the rule.
    campaigns::YamlPosition at = campaigns::positionOf(rule.Mark());
    for (std::string_view key : {"code", "enhanced", "text"}) {
      const auto it = fields.find(key);
      if (it != fields.end() && error.find(key) == 0) {
        at = yaml.valuePosition(it->second.key, it->second.value);
      }
    }
    yaml.error(at, error);
    return false;
  }
  return true;
}

std::optional<YAML::Node> loadPolicyFile(const std::string& path, campaigns::YamlFile& yaml) {
  std::string text;
  std::string error;
  if (!campaigns::readWholeFile(path, text, error)) {
    yaml.error(campaigns::YamlPosition{}, fmt::format("cannot read: {}", error));
    return std::nullopt;
  }
  return yaml.parse(text);
}

std::optional<std::int64_t> readPolicyDuration(campaigns::YamlFile& yaml,
                                               const campaigns::YamlFile::Entry& entry,
                                               std::string_view what) {
  auto text = yaml.scalar(entry.value, what);
  if (!text) {
    return std::nullopt;
  }
  const auto ms = campaigns::parseDurationMs(*text);
  constexpr std::uint64_t kMaxMs = 365ULL * 86400 * 1000;
  if (!ms || *ms == 0 || *ms > kMaxMs) {
    yaml.error(yaml.valuePosition(entry.key, entry.value),
               fmt::format("{} '{}' is not a duration from 1ms to 365d (like 500ms, 30s, 5m, "
                           "4h, 3d)",
                           what, campaigns::printable(*text)));
    return std::nullopt;
  }
  return static_cast<std::int64_t>(*ms);
}

std::optional<YAML::Node> policyRules(campaigns::YamlFile& yaml, const YAML::Node& root,
                                      std::string_view shape) {
  if (!root.IsMap()) {
    yaml.error(root, "expected a map with a 'rules' list");
    return std::nullopt;
  }
  const auto top = yaml.readMap(root, {"rules"});
  const auto it = top.find("rules");
  if (it == top.end()) {
    yaml.error(root, "missing required field 'rules'");
    return std::nullopt;
  }
  const YAML::Node& list = it->second.value;
  if (!list.IsSequence()) {
    yaml.error(yaml.valuePosition(it->second.key, list),
               fmt::format("'rules' must be a list of {}", shape));
    return std::nullopt;
  }
  return list;  // a handle: shares the document's data
}

}  // namespace salvo::engine

// ReplyPattern: what shaping rules and bounce rules match an SMTP reply on: its code, its
// enhanced code and a regular expression on its text. Contract: patterns are compiled once
// (when a rule table is built) and matched many times; matching is pure and allocation
// free apart from std::regex's own work. Also the shared reading of such rule files:
// yaml-cpp is used through campaigns/yaml_support.h, so every problem is a
// file:line:column diagnostic (exit 78, bad configuration) and nothing throws.
#pragma once

#include <array>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

#include "campaigns/yaml_support.h"
#include "engine/smtp/reply.h"

namespace salvo::engine {

struct ReplyPattern {
  std::string code;      // "" any; three characters, each a digit or x: "421", "4xx", "55x"
  std::string enhanced;  // "" any; "class.subject.detail", each a number or x: "5.1.1", "4.7.x"
  std::string text;      // "" any; ECMAScript regex, case-insensitive, searched in the text

  bool operator==(const ReplyPattern&) const = default;
};

class ReplyMatcher {
 public:
  // Only this many leading bytes of a reply's text are searched: replies are capped by
  // the parser, but std::regex backtracks recursively and must not meet long input.
  static constexpr std::size_t kMaxTextBytes = 1024;

  // nullopt and `error` ("code '4x': expected three digits or x, like 421 or 4xx") when
  // the pattern is malformed. A pattern must constrain at least one of the three parts.
  static std::optional<ReplyMatcher> compile(const ReplyPattern& pattern, std::string& error);

  bool matches(int code, const smtp::EnhancedCode& enhanced, std::string_view text) const;

 private:
  ReplyMatcher() = default;
  std::array<int, 3> code_{-1, -1, -1};  // digit, or -1 for x (any)
  bool anyEnhanced_ = true;
  std::array<int, 3> enhanced_{-1, -1, -1};  // number, or -1 for x (any)
  std::optional<std::regex> text_;
};

// The text of a reply as rules see it: its lines joined by single spaces.
std::string replyText(const smtp::Reply& reply);

// Reads the "code", "enhanced" and "text" fields of one rule (entries from readMap()) into
// `pattern`, reporting malformed values at their position. false after an error.
bool readReplyPattern(campaigns::YamlFile& yaml, const YAML::Node& rule,
                      const std::map<std::string, campaigns::YamlFile::Entry, std::less<>>& fields,
                      ReplyPattern& pattern);

// Reads and parses a policy file (providers, bounce rules, shaping rules). nullopt after
// reporting why (a file that cannot be read, a YAML syntax error); `yaml` keeps the text
// so later diagnostics can point into it.
std::optional<YAML::Node> loadPolicyFile(const std::string& path, campaigns::YamlFile& yaml);

// The one load/parse pair of the rule files: `fromYaml` builds a T from the parsed root,
// reporting into `yaml`. nullopt unless the whole file was read without a diagnostic.
template <typename T, typename FromYaml>
std::optional<T> loadPolicy(const std::string& path, campaigns::Diagnostics& diags,
                            FromYaml fromYaml) {
  campaigns::YamlFile yaml(path, diags, campaigns::kExitConfig);
  const std::size_t before = diags.size();
  auto root = loadPolicyFile(path, yaml);
  if (!root) {
    return std::nullopt;
  }
  auto result = fromYaml(*root, yaml);
  return diags.size() == before ? std::move(result) : std::nullopt;
}

template <typename T, typename FromYaml>
std::optional<T> parsePolicy(std::string text, const std::string& file,
                             campaigns::Diagnostics& diags, FromYaml fromYaml) {
  campaigns::YamlFile yaml(file, diags, campaigns::kExitConfig);
  const std::size_t before = diags.size();
  auto root = yaml.parse(text);
  if (!root) {
    return std::nullopt;
  }
  auto result = fromYaml(*root, yaml);
  return diags.size() == before ? std::move(result) : std::nullopt;
}

// The `rules:` list of a rule file's root map, or nullopt after reporting why; `shape`
// describes one rule for the message ("{category, code, enhanced, text, hard}").
std::optional<YAML::Node> policyRules(campaigns::YamlFile& yaml, const YAML::Node& root,
                                      std::string_view shape);

// A duration field ("30m", "1h", "90s", "500ms" or seconds) in milliseconds, > 0.
std::optional<std::int64_t> readPolicyDuration(campaigns::YamlFile& yaml,
                                               const campaigns::YamlFile::Entry& entry,
                                               std::string_view what);

}  // namespace salvo::engine

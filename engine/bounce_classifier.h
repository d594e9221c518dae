// BounceClassifier: which kind of failure a reply reports (bad mailbox, quota, spam...),
// and whether it is hard (the address will never work: it goes to the suppression list)
// or soft. Contract: an ordered list of rules on code, enhanced code and text; the first
// match decides; no match is `other`, soft. Only a 5xx reply can be hard: a 4xx reply is
// classified (deferrals by category) but never suppresses anyone. The rules are compiled
// once; classify() is const and safe to call from any thread. The shipped defaults are
// defaultBounceRules(), the same content as examples/policy/bounce-rules.yaml, which
// users copy and edit.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campaigns/diagnostics.h"
#include "engine/reply_pattern.h"

namespace salvo::engine {

enum class BounceCategory {
  BadMailbox,       // the mailbox does not exist
  BadDomain,        // the domain does not exist or accepts no mail
  InactiveMailbox,  // the mailbox exists but is disabled or abandoned
  Quota,            // the mailbox is full
  PolicyRelated,    // sender policy: authentication (SPF, DKIM, DMARC), relaying, greylisting
  SpamRelated,      // reputation, block lists, "looks like spam"
  Content,          // size, attachments, viruses
  Routing,          // relay denied, loops, unreachable next hop
  Protocol,         // syntax errors, bad command sequence
  MessageExpired,   // too long in a queue (ours or theirs)
  Other,
};
inline constexpr std::size_t kBounceCategoryCount = 11;

// "bad-mailbox", "bad-domain", ... (the label values of the bounce metrics).
const char* bounceCategoryName(BounceCategory category);
std::optional<BounceCategory> parseBounceCategory(std::string_view name);
// bad-mailbox, bad-domain and inactive-mailbox are hard unless a rule says otherwise.
bool hardByDefault(BounceCategory category);

struct BounceRule {
  ReplyPattern pattern;
  BounceCategory category = BounceCategory::Other;
  bool hard = false;

  bool operator==(const BounceRule&) const = default;
};

struct BounceClass {
  BounceCategory category = BounceCategory::Other;
  bool hard = false;
  int rule = -1;  // index of the rule that matched, -1 for none
};

// The shipped rules, most specific first.
const std::vector<BounceRule>& defaultBounceRules();

class BounceClassifier {
 public:
  // The shipped defaults (they always compile: a test checks it).
  BounceClassifier();
  // nullopt and `error` naming the rule (1-based) when a pattern does not compile.
  static std::optional<BounceClassifier> create(std::vector<BounceRule> rules, std::string& error);
  // Reads a rules file (format: examples/policy/bounce-rules.yaml). nullopt after adding
  // every problem to `diags` as file:line:column (exit 78).
  static std::optional<BounceClassifier> load(const std::string& path,
                                              campaigns::Diagnostics& diags);
  // The same on text already read; `file` names it in diagnostics.
  static std::optional<BounceClassifier> parse(std::string text, const std::string& file,
                                               campaigns::Diagnostics& diags);

  BounceClass classify(int code, const smtp::EnhancedCode& enhanced, std::string_view text) const;
  BounceClass classify(const smtp::Reply& reply) const;

  const std::vector<BounceRule>& rules() const { return rules_; }

 private:
  struct Tag {};
  BounceClassifier(Tag) {}
  static std::optional<BounceClassifier> fromYaml(const YAML::Node& root,
                                                  campaigns::YamlFile& yaml);

  std::vector<BounceRule> rules_;
  std::vector<ReplyMatcher> matchers_;
};

}  // namespace salvo::engine

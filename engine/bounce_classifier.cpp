#include "engine/bounce_classifier.h"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace salvo::engine {

namespace {

constexpr std::array<const char*, kBounceCategoryCount> kCategoryNames = {
    "bad-mailbox",  "bad-domain", "inactive-mailbox", "quota",    "policy-related",
    "spam-related", "content",    "routing",          "protocol", "message-expired",
    "other",
};

BounceRule rule(std::string code, std::string enhanced, std::string text, BounceCategory category) {
  return BounceRule{ReplyPattern{std::move(code), std::move(enhanced), std::move(text)}, category,
                    hardByDefault(category)};
}

}  // namespace

const char* bounceCategoryName(BounceCategory category) {
  return kCategoryNames[static_cast<std::size_t>(category)];
}

std::optional<BounceCategory> parseBounceCategory(std::string_view name) {
  for (std::size_t i = 0; i < kCategoryNames.size(); ++i) {
    if (name == kCategoryNames[i]) {
      return static_cast<BounceCategory>(i);
    }
  }
  return std::nullopt;
}

bool hardByDefault(BounceCategory category) {
  return category == BounceCategory::BadMailbox || category == BounceCategory::BadDomain ||
         category == BounceCategory::InactiveMailbox;
}

// Order matters: the first match wins, so the texts that name a cause precisely (block
// lists, authentication, quota, disabled accounts) come before the broad enhanced-code
// classes, and the catch-all words ("denied", "rejected") come last. Keep this list and
// examples/policy/bounce-rules.yaml identical (a test compares them).
const std::vector<BounceRule>& defaultBounceRules() {
  static const std::vector<BounceRule> rules = {
      rule("", "4.4.7", "", BounceCategory::MessageExpired),
      rule("", "5.4.7", "", BounceCategory::MessageExpired),
      rule("", "",
           "(message|delivery) (has )?expired|delivery time expired|too long in (the )?queue|retry "
           "timeout exceeded",
           BounceCategory::MessageExpired),
      rule("", "", "greylist|graylist", BounceCategory::PolicyRelated),
      rule(
          "", "",
          R"re(spamhaus|spamcop|barracuda|sorbs|blocked using|block ?list|black ?list|\bdnsbl\b|\brbl\b|listed (at|on|in|by)|(poor|low|bad) reputation|\bspam\b|unsolicited|bulk mail|junk mail|traffic not accepted|banned sender)re",
          BounceCategory::SpamRelated),
      rule(
          "", "",
          R"re(dmarc|\bspf\b|dkim|unauthenticated|not authenticated|authentication (failed|required)|reverse dns|\bptr\b|sender address rejected|sender (is )?(not allowed|denied|blocked))re",
          BounceCategory::PolicyRelated),
      rule("", "",
           "virus|malware|malicious|infected|attachment|message (size )?(is )?too (big|large)|size "
           "limit|exceeds (the )?(maximum )?(message )?size|message content|content (rejected|not "
           "accepted)|security issue|phishing",
           BounceCategory::Content),
      rule("", "5.2.2", "", BounceCategory::Quota),
      rule("", "4.2.2", "", BounceCategory::Quota),
      rule("", "",
           "quota|(mailbox|inbox|storage|disk|account) (is |has )?(full|exceeded)|insufficient "
           "(system )?storage|exceeded (its|the|their) storage",
           BounceCategory::Quota),
      rule(
          "", "",
          R"re((account|mailbox|user|address)\b.{0,40}\b(is|has been|was) (disabled|deactivated|inactive|suspended|discontinued|closed|expired)|no longer (active|available|in use|valid)|inactive (user|account|mailbox))re",
          BounceCategory::InactiveMailbox),
      rule("", "",
           "domain (name )?not found|no such domain|domain (does not|doesn.t) exist|host (or "
           "domain name )?not found|unrouteable (mail )?domain|null mx|nxdomain|accepts no mail",
           BounceCategory::BadDomain),
      rule(
          "", "",
          R"re(user unknown|unknown (user|recipient|mailbox|address)|no such (user|mailbox|recipient|address|account)|(user|mailbox|recipient|address|account)( \S+)? (does not|doesn.t) exist|(mailbox|user|recipient) (not found|invalid)|invalid (recipient|mailbox|address|user)|recipientnotfound|not a valid (mailbox|recipient|user)|(does not|doesn.t) have an? \S+ account|recipient address rejected|not our customer|no mailbox here|unknown or illegal alias)re",
          BounceCategory::BadMailbox),
      rule("", "5.1.1", "", BounceCategory::BadMailbox),
      rule("", "5.1.3", "", BounceCategory::BadMailbox),
      rule("", "5.1.6", "", BounceCategory::BadMailbox),
      rule("", "5.1.2", "", BounceCategory::BadDomain),
      rule("", "5.1.10", "", BounceCategory::BadDomain),
      rule("", "5.2.1", "", BounceCategory::InactiveMailbox),
      rule("", "5.3.4", "", BounceCategory::Content),
      rule("", "5.2.3", "", BounceCategory::Content),
      rule("", "x.6.x", "", BounceCategory::Content),
      rule("", "",
           "relay(ing)? (access )?(denied|not permitted|prohibited)|unable to relay|loops? (back "
           "to myself|detected)|mail loop|too many hops|unable to route|no route to host",
           BounceCategory::Routing),
      rule("", "x.4.x", "", BounceCategory::Routing),
      rule("", "x.5.x", "", BounceCategory::Protocol),
      rule("50x", "", "", BounceCategory::Protocol),
      rule("", "x.7.x", "", BounceCategory::PolicyRelated),
      rule("", "", "policy|not allowed|not permitted|prohibited|denied|refused|rejected|blocked",
           BounceCategory::PolicyRelated),
  };
  return rules;
}

BounceClassifier::BounceClassifier() {
  std::string error;
  auto built = create(defaultBounceRules(), error);
  if (!built) {
    // The shipped rules are code: a bad one is a programming error (a test catches it).
    std::fprintf(stderr, "salvo: built-in bounce rules do not compile: %s\n", error.c_str());
    std::abort();
  }
  *this = std::move(*built);
}

std::optional<BounceClassifier> BounceClassifier::create(std::vector<BounceRule> rules,
                                                         std::string& error) {
  BounceClassifier c{Tag{}};
  c.matchers_.reserve(rules.size());
  for (std::size_t i = 0; i < rules.size(); ++i) {
    std::string why;
    auto m = ReplyMatcher::compile(rules[i].pattern, why);
    if (!m) {
      error = fmt::format("bounce rule {}: {}", i + 1, why);
      return std::nullopt;
    }
    c.matchers_.push_back(std::move(*m));
  }
  c.rules_ = std::move(rules);
  return c;
}

BounceClass BounceClassifier::classify(int code, const smtp::EnhancedCode& enhanced,
                                       std::string_view text) const {
  for (std::size_t i = 0; i < matchers_.size(); ++i) {
    if (matchers_[i].matches(code, enhanced, text)) {
      const BounceRule& r = rules_[i];
      // A transient reply never suppresses an address, whatever the rule says.
      return BounceClass{r.category, r.hard && code / 100 == 5, static_cast<int>(i)};
    }
  }
  return BounceClass{};
}

BounceClass BounceClassifier::classify(const smtp::Reply& reply) const {
  return classify(reply.code, reply.enhanced, replyText(reply));
}

std::optional<BounceClassifier> BounceClassifier::load(const std::string& path,
                                                       campaigns::Diagnostics& diags) {
  return loadPolicy<BounceClassifier>(path, diags, &BounceClassifier::fromYaml);
}

std::optional<BounceClassifier> BounceClassifier::parse(std::string text, const std::string& file,
                                                        campaigns::Diagnostics& diags) {
  return parsePolicy<BounceClassifier>(std::move(text), file, diags, &BounceClassifier::fromYaml);
}

std::optional<BounceClassifier> BounceClassifier::fromYaml(const YAML::Node& root,
                                                           campaigns::YamlFile& yaml) {
  const auto rulesList = policyRules(yaml, root, "{category, code, enhanced, text, hard}");
  if (!rulesList) {
    return std::nullopt;
  }
  const YAML::Node& list = *rulesList;
  std::vector<BounceRule> rules;
  bool ok = true;
  for (const YAML::Node& item : list) {
    if (!item.IsMap()) {
      yaml.error(item, "a rule must be a map {category: ..., code/enhanced/text: ...}");
      ok = false;
      continue;
    }
    const auto fields = yaml.readMap(item, {"category", "code", "enhanced", "text", "hard"});
    BounceRule r;
    ok = readReplyPattern(yaml, item, fields, r.pattern) && ok;
    const auto catIt = fields.find("category");
    if (catIt == fields.end()) {
      yaml.error(item, "missing required field 'category'");
      ok = false;
    } else if (auto name = yaml.scalar(catIt->second.value, "'category'")) {
      if (auto cat = parseBounceCategory(*name)) {
        r.category = *cat;
        r.hard = hardByDefault(*cat);
      } else {
        std::string known;
        for (const char* n : kCategoryNames) {
          known += known.empty() ? n : fmt::format(", {}", n);
        }
        yaml.error(yaml.valuePosition(catIt->second.key, catIt->second.value),
                   fmt::format("unknown category '{}' (expected one of: {})",
                               campaigns::printable(*name), known));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (const auto hardIt = fields.find("hard"); hardIt != fields.end()) {
      auto value = yaml.scalar(hardIt->second.value, "'hard'");
      if (value && (*value == "true" || *value == "false")) {
        r.hard = *value == "true";
      } else if (value) {
        yaml.error(
            yaml.valuePosition(hardIt->second.key, hardIt->second.value),
            fmt::format("'hard' must be true or false, not '{}'", campaigns::printable(*value)));
        ok = false;
      } else {
        ok = false;
      }
    }
    rules.push_back(std::move(r));
  }
  if (!ok) {
    return std::nullopt;
  }
  std::string error;
  auto c = create(std::move(rules), error);
  if (!c) {
    // Patterns were compiled while reading; this cannot fail, but say so if it does.
    yaml.error(root, error);
  }
  return c;
}

}  // namespace salvo::engine

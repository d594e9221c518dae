#include "engine/shaping_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace salvo::engine {

namespace {

constexpr std::array<const char*, 4> kActionNames = {
    "suspend_destination",
    "scale_rate",
    "scale_connections",
    "suspend_campaign",
};

bool scales(ShapingAction action) {
  return action == ShapingAction::ScaleRate || action == ShapingAction::ScaleConnections;
}

ShapingRule rule(std::string name, std::string code, std::string enhanced, std::string text,
                 ShapingAction action, double factor, std::int64_t durationMs) {
  return ShapingRule{std::move(name),
                     ReplyPattern{std::move(code), std::move(enhanced), std::move(text)}, action,
                     scales(action) ? factor : 1.0, durationMs};
}

std::string validateRule(const ShapingRule& r) {
  if (scales(r.action) && !(r.factor > 0 && r.factor <= 1)) {
    return fmt::format("factor {} is not in (0, 1]", r.factor);
  }
  if (r.durationMs <= 0) {
    return "the duration must be positive";
  }
  return "";
}

}  // namespace

const char* shapingActionName(ShapingAction action) {
  return kActionNames[static_cast<std::size_t>(action)];
}

std::optional<ShapingAction> parseShapingAction(std::string_view name) {
  for (std::size_t i = 0; i < kActionNames.size(); ++i) {
    if (name == kActionNames[i]) {
      return static_cast<ShapingAction>(i);
    }
  }
  return std::nullopt;
}

// Provider-specific wordings first (their codes are documented by the providers), then
// the generic ones. Keep identical to examples/policy/shaping-rules.yaml (a test checks).
const std::vector<ShapingRule>& defaultShapingRules() {
  static const std::vector<ShapingRule> rules = {
      rule("gmail-rate-limited", "", "4.7.28", "", ShapingAction::ScaleRate, 0.5, 1800000),
      rule("gmail-unusual-rate", "4xx", "4.7.0", "unusual rate|rate.?limit",
           ShapingAction::ScaleRate, 0.5, 1800000),
      rule("yahoo-unexpected-volume", "4xx", "", R"re(\[TSS0[0-9]\])re", ShapingAction::ScaleRate,
           0.25, 3600000),
      rule("yahoo-ip-deferred", "", "", R"re(\[TS0[0-9]\])re", ShapingAction::SuspendDestination, 0,
           3600000),
      rule("microsoft-server-busy", "4xx", "4.7.500", "", ShapingAction::ScaleRate, 0.5, 1800000),
      rule("microsoft-ip-rate-limited", "4xx", "4.7.650", "", ShapingAction::ScaleRate, 0.5,
           3600000),
      rule("too-many-connections", "4xx", "",
           "too many (concurrent |simultaneous )?connections|concurrent (server "
           ")?connections|connection (count )?limit",
           ShapingAction::ScaleConnections, 0.5, 1800000),
      rule("rate-limited", "4xx", "",
           "rate.?limit|too many (messages|mails|emails)|throttl|slow down|sending rate|try again "
           "later from",
           ShapingAction::ScaleRate, 0.5, 1800000),
      rule("likely-unsolicited", "", "", "likely unsolicited|message .{0,40}(spam|unsolicited)",
           ShapingAction::SuspendCampaign, 0, 3600000),
  };
  return rules;
}

ShapingRules::ShapingRules() {
  std::string error;
  auto built = create(defaultShapingRules(), error);
  if (!built) {
    // The shipped rules are code: a bad one is a programming error (a test catches it).
    std::fprintf(stderr, "salvo: built-in shaping rules do not compile: %s\n", error.c_str());
    std::abort();
  }
  *this = std::move(*built);
}

std::optional<ShapingRules> ShapingRules::create(std::vector<ShapingRule> rules,
                                                 std::string& error) {
  ShapingRules s{Tag{}};
  s.matchers_.reserve(rules.size());
  for (std::size_t i = 0; i < rules.size(); ++i) {
    std::string why = validateRule(rules[i]);
    std::optional<ReplyMatcher> m;
    if (why.empty()) {
      m = ReplyMatcher::compile(rules[i].pattern, why);
    }
    if (!m) {
      error = fmt::format("shaping rule {} ({}): {}", i + 1, rules[i].name, why);
      return std::nullopt;
    }
    s.matchers_.push_back(std::move(*m));
  }
  s.rules_ = std::move(rules);
  return s;
}

const ShapingRule* ShapingRules::evaluate(int code, const smtp::EnhancedCode& enhanced,
                                          std::string_view text) const {
  if (code < 400) {
    return nullptr;
  }
  for (std::size_t i = 0; i < matchers_.size(); ++i) {
    if (matchers_[i].matches(code, enhanced, text)) {
      return &rules_[i];
    }
  }
  return nullptr;
}

const ShapingRule* ShapingRules::evaluate(const smtp::Reply& reply) const {
  if (reply.code < 400) {
    return nullptr;
  }
  return evaluate(reply.code, reply.enhanced, replyText(reply));
}

std::optional<ShapingRules> ShapingRules::load(const std::string& path,
                                               campaigns::Diagnostics& diags) {
  return loadPolicy<ShapingRules>(path, diags, &ShapingRules::fromYaml);
}

std::optional<ShapingRules> ShapingRules::parse(std::string text, const std::string& file,
                                                campaigns::Diagnostics& diags) {
  return parsePolicy<ShapingRules>(std::move(text), file, diags, &ShapingRules::fromYaml);
}

std::optional<ShapingRules> ShapingRules::fromYaml(const YAML::Node& root,
                                                   campaigns::YamlFile& yaml) {
  const auto rulesList =
      policyRules(yaml, root, "{name, code, enhanced, text, action, factor, duration}");
  if (!rulesList) {
    return std::nullopt;
  }
  const YAML::Node& list = *rulesList;
  std::vector<ShapingRule> rules;
  bool ok = true;
  for (const YAML::Node& item : list) {
    if (!item.IsMap()) {
      yaml.error(item, "a rule must be a map {name: ..., action: ..., duration: ...}");
      ok = false;
      continue;
    }
    const auto fields =
        yaml.readMap(item, {"name", "code", "enhanced", "text", "action", "factor", "duration"});
    ShapingRule r;
    bool ruleOk = readReplyPattern(yaml, item, fields, r.pattern);
    if (const auto it = fields.find("name"); it != fields.end()) {
      auto name = yaml.scalar(it->second.value, "'name'");
      ruleOk = name.has_value() && ruleOk;
      r.name = name.value_or("");
    } else {
      yaml.error(item, "missing required field 'name'");
      ruleOk = false;
    }
    const auto actionIt = fields.find("action");
    if (actionIt == fields.end()) {
      yaml.error(item, "missing required field 'action'");
      ruleOk = false;
    } else if (auto name = yaml.scalar(actionIt->second.value, "'action'")) {
      if (auto action = parseShapingAction(*name)) {
        r.action = *action;
      } else {
        yaml.error(yaml.valuePosition(actionIt->second.key, actionIt->second.value),
                   fmt::format("unknown action '{}' (expected one of: suspend_destination, "
                               "scale_rate, scale_connections, suspend_campaign)",
                               campaigns::printable(*name)));
        ruleOk = false;
      }
    } else {
      ruleOk = false;
    }
    const auto factorIt = fields.find("factor");
    if (ruleOk && scales(r.action)) {
      if (factorIt == fields.end()) {
        yaml.error(item, fmt::format("'{}' needs a 'factor' in (0, 1], like 0.5",
                                     shapingActionName(r.action)));
        ruleOk = false;
      } else if (auto text = yaml.scalar(factorIt->second.value, "'factor'")) {
        char* end = nullptr;
        const double f = std::strtod(text->c_str(), &end);
        if (text->empty() || end != text->c_str() + text->size() || !(f > 0 && f <= 1)) {
          yaml.error(yaml.valuePosition(factorIt->second.key, factorIt->second.value),
                     fmt::format("'factor' must be a number in (0, 1], like 0.5, not '{}'",
                                 campaigns::printable(*text)));
          ruleOk = false;
        } else {
          r.factor = f;
        }
      } else {
        ruleOk = false;
      }
    } else if (ruleOk && factorIt != fields.end()) {
      yaml.error(yaml.valuePosition(factorIt->second.key, factorIt->second.value),
                 fmt::format("'factor' applies only to scale_rate and scale_connections, "
                             "not to {}",
                             shapingActionName(r.action)));
      ruleOk = false;
    }
    if (const auto it = fields.find("duration"); it != fields.end()) {
      auto ms = readPolicyDuration(yaml, it->second, "'duration'");
      ruleOk = ms.has_value() && ruleOk;
      r.durationMs = ms.value_or(0);
    } else {
      yaml.error(item, "missing required field 'duration' (like 30m)");
      ruleOk = false;
    }
    ok = ok && ruleOk;
    rules.push_back(std::move(r));
  }
  if (!ok) {
    return std::nullopt;
  }
  std::string error;
  auto s = create(std::move(rules), error);
  if (!s) {
    yaml.error(root, error);
  }
  return s;
}

void ShapingState::apply(const ShapingRule& rule, std::string_view campaign, std::int64_t nowMs,
                         std::int64_t sentAtMs) {
  const std::int64_t until = nowMs + rule.durationMs;
  const auto scale = [&](Scaled& s) {
    if (nowMs < s.untilMs && sentAtMs < s.cutAtMs) {
      return;  // sent before the last cut: the cohort that cut
    }
    s.factor = std::max(kMinFactor, current(s, nowMs) * rule.factor);
    s.cutAtMs = nowMs;
    s.untilMs = until;
  };
  switch (rule.action) {
    case ShapingAction::SuspendDestination:
      suspendedUntilMs_ = std::max(suspendedUntilMs_, until);
      break;
    case ShapingAction::ScaleRate:
      scale(rate_);
      break;
    case ShapingAction::ScaleConnections:
      scale(connections_);
      break;
    case ShapingAction::SuspendCampaign: {
      // Forget campaigns whose suspension has ended, so the map stays small.
      std::erase_if(campaignsUntilMs_, [&](const auto& kv) { return kv.second <= nowMs; });
      std::int64_t& slot = campaignsUntilMs_[std::string(campaign)];
      slot = std::max(slot, until);
      break;
    }
  }
}

bool ShapingState::campaignSuspended(std::string_view campaign, std::int64_t nowMs) const {
  const auto it = campaignsUntilMs_.find(std::string(campaign));
  return it != campaignsUntilMs_.end() && nowMs < it->second;
}

double ShapingState::rateFactor(std::int64_t nowMs) const {
  return current(rate_, nowMs);
}

double ShapingState::connectionFactor(std::int64_t nowMs) const {
  return current(connections_, nowMs);
}

std::optional<std::int64_t> ShapingState::nextChangeMs(std::int64_t nowMs) const {
  std::optional<std::int64_t> next;
  const auto consider = [&](std::int64_t until) {
    if (until > nowMs && (!next || until < *next)) {
      next = until;
    }
  };
  consider(suspendedUntilMs_);
  consider(rate_.untilMs);
  consider(connections_.untilMs);
  for (const auto& [name, until] : campaignsUntilMs_) {
    consider(until);
  }
  return next;
}

}  // namespace salvo::engine

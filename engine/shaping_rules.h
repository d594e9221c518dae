// ShapingRules: what a destination does when a provider says "slow down". Contract: an
// ordered list of rules on a non-2xx reply's code, enhanced code and text; the first match
// yields an action held for a duration (suspend the destination, scale its rate or its
// connections, suspend one campaign there). Rules are compiled once; evaluate() is const
// and thread-safe. ShapingState is the per-destination value that remembers the actions in
// force; its owner passes `now` (steady ms) and reads the factors. No clock, no I/O. The
// shipped defaults are defaultShapingRules(), identical to examples/policy/shaping-rules.yaml.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "campaigns/diagnostics.h"
#include "engine/reply_pattern.h"

namespace salvo::engine {

enum class ShapingAction {
  SuspendDestination,  // send nothing to the destination for the duration
  ScaleRate,           // multiply its messages-per-second limit by `factor`
  ScaleConnections,    // multiply its connection limit by `factor`
  SuspendCampaign,     // send nothing of the reply's campaign to the destination
};
// "suspend_destination", "scale_rate", ... (the YAML names and the metric label values).
const char* shapingActionName(ShapingAction action);
std::optional<ShapingAction> parseShapingAction(std::string_view name);

struct ShapingRule {
  std::string name;  // for logs and diagnostics: "gmail-rate-limited"
  ReplyPattern pattern;
  ShapingAction action = ShapingAction::ScaleRate;
  double factor = 1.0;  // ScaleRate / ScaleConnections: in (0, 1]; 1 for the others
  std::int64_t durationMs = 0;

  bool operator==(const ShapingRule&) const = default;
};

// The shipped rules for well-known provider replies (Gmail, Yahoo, Microsoft) and the
// common generic wordings ("too many connections", "rate limited").
const std::vector<ShapingRule>& defaultShapingRules();

class ShapingRules {
 public:
  ShapingRules();  // the shipped defaults
  static std::optional<ShapingRules> create(std::vector<ShapingRule> rules, std::string& error);
  // Reads a rules file (format: examples/policy/shaping-rules.yaml); nullopt after adding
  // every problem to `diags` as file:line:column (exit 78).
  static std::optional<ShapingRules> load(const std::string& path, campaigns::Diagnostics& diags);
  static std::optional<ShapingRules> parse(std::string text, const std::string& file,
                                           campaigns::Diagnostics& diags);

  // The first rule matching a reply, or nullptr. 2xx and 3xx replies never match (callers
  // need not filter, but evaluating only failures keeps regexes off the hot path).
  const ShapingRule* evaluate(int code, const smtp::EnhancedCode& enhanced,
                              std::string_view text) const;
  const ShapingRule* evaluate(const smtp::Reply& reply) const;

  const std::vector<ShapingRule>& rules() const { return rules_; }

 private:
  struct Tag {};
  explicit ShapingRules(Tag) {}
  static std::optional<ShapingRules> fromYaml(const YAML::Node& root, campaigns::YamlFile& yaml);

  std::vector<ShapingRule> rules_;
  std::vector<ReplyMatcher> matchers_;
};

// The shaping actions in force at one destination. Scaling is a multiplicative cut with
// a linear recovery (AIMD, as TCP does): a hit multiplies the current factor by the
// rule's factor (never below kMinFactor), and the factor then climbs back linearly to 1
// over the rule's duration. A reply to a message sent before the last cut belongs to the
// cohort that cut (it was sent at the old rate) and does not cut again, so a burst of
// 421s halves the rate once per round trip, not once per message or connection.
// Suspensions extend to at least now + duration.
class ShapingState {
 public:
  // The deepest cut: an eighth of the configured (or observed) rate or connections. Replies
  // that keep coming at that level are not a rate problem (a per-connection message cap,
  // say): cutting further would only starve the destination; a suspend rule is the tool
  // for a provider that wants nothing at all for a while.
  static constexpr double kMinFactor = 1.0 / 8;

  // `campaign` names the campaign of the reply (for SuspendCampaign); `sentAtMs` is when
  // the message (or connection) the reply answers was sent (opened), on the same clock.
  void apply(const ShapingRule& rule, std::string_view campaign, std::int64_t nowMs,
             std::int64_t sentAtMs);

  bool destinationSuspended(std::int64_t nowMs) const { return nowMs < suspendedUntilMs_; }
  bool campaignSuspended(std::string_view campaign, std::int64_t nowMs) const;
  double rateFactor(std::int64_t nowMs) const;
  double connectionFactor(std::int64_t nowMs) const;
  // The next moment something in force ends (to arm a timer), or nullopt when nothing is.
  std::optional<std::int64_t> nextChangeMs(std::int64_t nowMs) const;

 private:
  struct Scaled {
    double factor = 1.0;  // at cutAtMs
    std::int64_t cutAtMs = 0;
    std::int64_t untilMs = 0;  // back to 1
  };
  static double current(const Scaled& s, std::int64_t nowMs) {
    if (nowMs >= s.untilMs) {
      return 1.0;
    }
    if (nowMs <= s.cutAtMs) {
      return s.factor;
    }
    double progress =
        static_cast<double>(nowMs - s.cutAtMs) / static_cast<double>(s.untilMs - s.cutAtMs);
    return s.factor + (1.0 - s.factor) * progress;
  }

  std::int64_t suspendedUntilMs_ = 0;
  Scaled rate_;
  Scaled connections_;
  std::unordered_map<std::string, std::int64_t> campaignsUntilMs_;
};

}  // namespace salvo::engine

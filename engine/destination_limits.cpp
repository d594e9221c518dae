#include "engine/destination_limits.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "campaigns/yaml_support.h"

namespace salvo::engine {

DestinationLimits defaultDestinationLimits() {
  DestinationLimits d;
  d.maxConnections = 8;      // as delivery.max_connections_per_destination
  d.initialConnections = 2;  // slow start: Postfix starts at 5 for a whole MTA's load
  d.messagesPerConnection = 1000;
  d.messagesPerSecond = 0;
  d.connectionsPerMinute = 0;
  d.failedCohortLimit = 1;   // Postfix's default
  d.probeDelayMs = 300'000;  // Postfix's minimal_backoff_time
  return d;
}

ConcurrencyWindowConfig windowConfig(const DestinationLimits& limits) {
  ConcurrencyWindowConfig c;
  c.max = limits.maxConnections;
  c.initial = std::min(limits.initialConnections, limits.maxConnections);
  c.failedCohortLimit = limits.failedCohortLimit;
  c.probeDelayMs = limits.probeDelayMs;
  return c;
}

const std::vector<DestinationLimitKey>& destinationLimitKeys() {
  static const std::vector<DestinationLimitKey> keys = {
      {"max_connections", LimitKind::Integer, 1, 100000, "connections open at once",
       [](DestinationLimits& l, double v) { l.maxConnections = static_cast<int>(v); },
       [](const DestinationLimits& l) { return static_cast<double>(l.maxConnections); }},
      {"initial_connections", LimitKind::Integer, 1, 100000,
       "connections at the start (slow start; capped at max_connections)",
       [](DestinationLimits& l, double v) { l.initialConnections = static_cast<int>(v); },
       [](const DestinationLimits& l) { return static_cast<double>(l.initialConnections); }},
      {"messages_per_connection", LimitKind::Integer, 1, 100000000,
       "messages sent on one connection before it is closed",
       [](DestinationLimits& l, double v) { l.messagesPerConnection = static_cast<int>(v); },
       [](const DestinationLimits& l) { return static_cast<double>(l.messagesPerConnection); }},
      {"messages_per_second", LimitKind::Rate, 0, 1000000,
       "messages per second over all connections (0 = unlimited)",
       [](DestinationLimits& l, double v) { l.messagesPerSecond = v; },
       [](const DestinationLimits& l) { return l.messagesPerSecond; }},
      {"connections_per_minute", LimitKind::Rate, 0, 1000000,
       "new connections per minute (0 = unlimited)",
       [](DestinationLimits& l, double v) { l.connectionsPerMinute = v; },
       [](const DestinationLimits& l) { return l.connectionsPerMinute; }},
      {"failed_cohort_limit", LimitKind::Integer, 0, 1000,
       "consecutive failed cohorts before the site is dead (0 = never)",
       [](DestinationLimits& l, double v) { l.failedCohortLimit = static_cast<int>(v); },
       [](const DestinationLimits& l) { return static_cast<double>(l.failedCohortLimit); }},
      {"probe_delay", LimitKind::Duration, 1000, 86400.0 * 1000,
       "how long a dead site rests before one probe connection",
       [](DestinationLimits& l, double v) { l.probeDelayMs = static_cast<std::int64_t>(v); },
       [](const DestinationLimits& l) { return static_cast<double>(l.probeDelayMs); }},
  };
  return keys;
}

const DestinationLimitKey* findDestinationLimitKey(std::string_view key) {
  for (const DestinationLimitKey& k : destinationLimitKeys()) {
    if (k.key == key) {
      return &k;
    }
  }
  return nullptr;
}

bool setDestinationLimit(DestinationLimits& limits, std::string_view key, std::string_view value,
                         std::string& error) {
  const DestinationLimitKey* k = findDestinationLimitKey(key);
  if (k == nullptr) {
    std::vector<std::string_view> known;
    for (const DestinationLimitKey& each : destinationLimitKeys()) {
      known.push_back(each.key);
    }
    error = campaigns::unknownKeyMessage(key, known);
    return false;
  }
  double v = 0;
  bool ok = false;
  switch (k->kind) {
    case LimitKind::Integer: {
      const auto n = campaigns::parseInteger(value);
      ok = n.has_value();
      v = n ? static_cast<double>(*n) : 0;
      break;
    }
    case LimitKind::Rate: {
      const std::string text(value);
      char* end = nullptr;
      v = std::strtod(text.c_str(), &end);
      ok = !text.empty() && end == text.c_str() + text.size() && std::isfinite(v);
      break;
    }
    case LimitKind::Duration: {
      const auto ms = campaigns::parseDurationMs(value);
      ok = ms.has_value();
      v = ms ? static_cast<double>(*ms) : 0;
      break;
    }
  }
  if (!ok || v < k->min || v > k->max) {
    switch (k->kind) {
      case LimitKind::Integer:
        error = fmt::format("'{}' must be a whole number from {} to {}, not '{}'", k->key, k->min,
                            k->max, campaigns::printable(value));
        break;
      case LimitKind::Rate:
        error = fmt::format("'{}' must be a number from {} to {}, not '{}'", k->key, k->min, k->max,
                            campaigns::printable(value));
        break;
      case LimitKind::Duration:
        error = fmt::format("'{}' must be a duration from {}s to {}d (like 30s, 5m), not '{}'",
                            k->key, k->min / 1000, k->max / 86400000, campaigns::printable(value));
        break;
    }
    return false;
  }
  k->set(limits, v);
  return true;
}

}  // namespace salvo::engine

// DestinationLimits: every limit that applies to one destination (an MX site), in one
// struct. Contract: plain values; defaultDestinationLimits() is the one place defaults are
// set, and destinationLimitKeys() the one table mapping configuration keys (salvo.yaml,
// providers.yaml) to fields, with their ranges (OpenSMTPD limit.c). When a limit holds a
// destination back, logs and metrics name it by its key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/concurrency_window.h"

namespace salvo::engine {

struct DestinationLimits {
  int maxConnections = 0;           // open at once (the concurrency window's ceiling)
  int initialConnections = 0;       // where the window starts (slow start), capped at max
  int messagesPerConnection = 0;    // then QUIT and reconnect
  double messagesPerSecond = 0;     // smooth rate over all its connections; 0 = unlimited
  double connectionsPerMinute = 0;  // new connections opened; 0 = unlimited
  int failedCohortLimit = 0;        // failed cohorts before the site is "dead"; 0 = never
  std::int64_t probeDelayMs = 0;    // how long a dead site rests before a probe

  bool operator==(const DestinationLimits&) const = default;
};

DestinationLimits defaultDestinationLimits();

// The window configuration these limits describe.
ConcurrencyWindowConfig windowConfig(const DestinationLimits& limits);

enum class LimitKind { Integer, Rate, Duration };

struct DestinationLimitKey {
  std::string_view key;  // "max_connections"
  LimitKind kind;
  double min;  // inclusive range; for durations in ms
  double max;
  std::string_view help;  // one line for docs and error messages
  // Sets the field from a value already range-checked.
  void (*set)(DestinationLimits&, double);
  double (*get)(const DestinationLimits&);
};

const std::vector<DestinationLimitKey>& destinationLimitKeys();
const DestinationLimitKey* findDestinationLimitKey(std::string_view key);

// Sets `key` from its text ("20", "0.5", "5m" for durations). false and `error` (naming
// the key and the accepted range) when the key is unknown or the value malformed.
bool setDestinationLimit(DestinationLimits& limits, std::string_view key, std::string_view value,
                         std::string& error);

}  // namespace salvo::engine

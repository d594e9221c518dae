// The daemon's configuration file (salvo.yaml): data directory, metrics endpoint, routes,
// delivery limits, retry schedule, DNS. Contract: parsed and validated here, once, with
// file:line:column errors (exit 78); every other module receives these plain values and
// never parses configuration itself. Defaults apply when no file is given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "campaigns/diagnostics.h"

namespace salvo::campaigns {

// routes: domain pattern -> fixed host:port (smarthost, test sink). First match wins.
// Patterns: "*" (every domain), "*.example.com" (subdomains and example.com itself),
// "example.com" (exactly).
struct RouteConfig {
  std::string pattern;
  std::string host;
  std::uint16_t port = 25;
};

struct DeliveryConfig {
  int threads = 0;       // event loops; 0 = one per core
  std::string heloName;  // EHLO name; "" = the machine's hostname
  int maxConnectionsPerDestination = 8;
  int messagesPerConnection = 1000;  // then QUIT and reconnect
  std::size_t maxInFlight = 20000;   // jobs leased at once
  std::uint16_t mxPort = 25;         // port for MX delivery (tests override)
  std::uint32_t connectTimeoutMs = 30'000;
  std::uint32_t idleTimeoutMs = 5'000;  // close a connection with nothing to send
};

struct RetryConfig {
  std::uint32_t firstDelaySec = 300;     // 5 minutes
  std::uint32_t maxDelaySec = 4 * 3600;  // doubling up to this
  std::uint32_t maxAgeSec = 3 * 86400;   // then the job expires
};

struct SalvoConfig {
  std::string file;  // where it was read from, "" = built-in defaults
  std::string dataDir = "salvo-data";
  std::string metricsListen = "127.0.0.1:9464";  // "" or "off" disables the endpoint
  std::vector<std::string> dnsServers;           // empty = /etc/resolv.conf
  std::vector<RouteConfig> routes;
  DeliveryConfig delivery;
  RetryConfig retry;
};

// Reads `path`. When `path` is empty: ./salvo.yaml if present, else the defaults.
std::optional<SalvoConfig> loadConfig(const std::string& path, Diagnostics& diags);

}  // namespace salvo::campaigns

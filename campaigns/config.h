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

namespace YAML {
class Node;
}  // namespace YAML

namespace salvo::campaigns {

// routes: domain pattern -> fixed host:port (smarthost, test sink). First match wins.
// Patterns: "*" (every domain), "*.example.com" (subdomains and example.com itself),
// "example.com" (exactly).
// When the delivery engine uses STARTTLS (see engine/smtp/session.h):
//   none          never;
//   opportunistic when the server offers it (a failed handshake retries in plaintext);
//   required      always: a server without STARTTLS or a failed handshake defers;
//   verify        required, and the certificate must chain to the system store (or
//                 delivery.tls_ca_file) and match the host name (route host, MX host).
enum class TlsMode { None, Opportunistic, Required, Verify };
const char* tlsModeName(TlsMode mode);

struct RouteConfig {
  std::string pattern;
  std::string host;
  std::uint16_t port = 25;
  std::optional<TlsMode> tls;  // unset: delivery.tls
  // SMTP AUTH (RFC 4954) with a smarthost account; authUser "" = no AUTH. The password is
  // read once, at load (password_file: a file only its owner may read; password_env: an
  // environment variable). Credentials go only over TLS unless allowPlaintextAuth.
  std::string authUser{};  // "{}": brace-initialised routes may omit these fields
  std::string authPassword{};
  bool allowPlaintextAuth = false;
};

// Reply timeouts per SMTP state; defaults from RFC 5321 §4.5.3.2.
struct SmtpTimeoutsConfig {
  std::uint32_t greetingMs = 300'000;
  std::uint32_t mailMs = 300'000;
  std::uint32_t rcptMs = 300'000;
  std::uint32_t dataMs = 120'000;       // the 354 to DATA
  std::uint32_t dataBlockMs = 180'000;  // sending the message body
  std::uint32_t dotMs = 600'000;        // the final reply after "."
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
  SmtpTimeoutsConfig timeouts;
  TlsMode tls = TlsMode::Opportunistic;  // routes may override
  std::string tlsCaFile;                 // extra trust anchors for 'verify' (PEM)
};

struct QueueConfig {
  // Finished campaigns' job records are purged this long after they finished (their
  // campaign record and counters stay); 0 = never (only `salvo purge`).
  std::uint32_t retentionSec = 0;
};

struct RetryConfig {
  std::uint32_t firstDelaySec = 300;     // 5 minutes
  std::uint32_t maxDelaySec = 4 * 3600;  // doubling up to this
  std::uint32_t maxAgeSec = 3 * 86400;   // then the job expires

  bool operator==(const RetryConfig&) const = default;
};

// A retry schedule written over another: each key given replaces the base's value. A
// campaign's `retry:` key is one, applied over the daemon's schedule at delivery time.
struct RetryOverride {
  std::optional<std::uint32_t> firstDelaySec;
  std::optional<std::uint32_t> maxDelaySec;
  std::optional<std::uint32_t> maxAgeSec;

  bool empty() const { return !firstDelaySec && !maxDelaySec && !maxAgeSec; }
  RetryConfig over(const RetryConfig& base) const;
  bool operator==(const RetryOverride&) const = default;
};

class YamlFile;
// Reads a `retry:` map (first_delay, max_delay, max_age: durations in whole seconds), the
// one parser for salvo.yaml's section and a campaign's key; errors go to `yaml` with
// file:line:column (and its exit code). `base` is the schedule the result applies over:
// max_delay ending up shorter than first_delay is an error. nullptr when the base is not
// known yet (a campaign's, applied over the daemon's): then only a max_delay written
// shorter than a first_delay written is. nullopt after any error.
std::optional<RetryOverride> readRetryOverride(YamlFile& yaml, const YAML::Node& key,
                                               const YAML::Node& value, const RetryConfig* base);

// policy: the delivery policy files (paths relative to the configuration file); ""
// = the built-in tables (the same as examples/policy/*.yaml).
struct PolicyConfig {
  std::string providers;     // providers.yaml: provider MX patterns and limits
  std::string bounceRules;   // bounce-rules.yaml: reply -> bounce category
  std::string shapingRules;  // shaping-rules.yaml: reply -> throttling action
};

// limits: per-destination limit overrides, by recipient domain pattern (`match`, as routes)
// or MX host pattern (`mx`: "*.google.com"); the first entry that matches a destination
// applies on top of its provider's limits. Values stay text here: the engine owns the
// limit keys (engine/destination_limits.h) and checks them at startup.
struct LimitValueConfig {
  std::string key;  // "messages_per_second"
  std::string value;
  std::string file;  // where it was written, for diagnostics
  int line = 0;
  int column = 0;
};
struct LimitOverrideConfig {
  std::string match;  // recipient domain pattern, or ""
  std::string mx;     // MX host pattern, or ""
  std::vector<LimitValueConfig> values;
};

struct SalvoConfig {
  std::string file;  // where it was read from, "" = built-in defaults
  std::string dataDir = "salvo-data";
  std::string metricsListen = "127.0.0.1:9464";  // "" or "off" disables the endpoint
  std::vector<std::string> dnsServers;           // empty = /etc/resolv.conf
  std::vector<RouteConfig> routes;
  DeliveryConfig delivery;
  RetryConfig retry;
  QueueConfig queue;
  PolicyConfig policy;
  std::vector<LimitOverrideConfig> limits;
};

// Reads `path`. When `path` is empty: ./salvo.yaml if present, else the defaults.
std::optional<SalvoConfig> loadConfig(const std::string& path, Diagnostics& diags);

}  // namespace salvo::campaigns

// salvo.yaml: one table per section maps keys to fields; every value is range-checked
// here so the rest of the program receives plain, valid numbers.
#include "campaigns/config.h"

#include <arpa/inet.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "campaigns/address.h"
#include "campaigns/yaml_support.h"

namespace salvo::campaigns {

namespace {

constexpr std::string_view kDefaultFile = "salvo.yaml";

bool isIpAddress(const std::string& text) {
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 || inet_pton(AF_INET6, text.c_str(), &v6) == 1;
}

std::optional<std::uint16_t> parsePort(std::string_view text) {
  const auto n = parseInteger(text);
  if (!n || *n < 1 || *n > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(*n);
}

// "host:port" or "[v6]:port" with a port 1..65535; `portOptional` also takes a bare host.
bool checkHostPort(std::string_view text, bool portOptional, bool hostMustBeIp,
                   std::string& error) {
  std::string host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      error = "missing ']' after the IPv6 address";
      return false;
    }
    host.assign(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      error = "expected ':' and a port after ']'";
      return false;
    }
    port = rest.empty() ? rest : rest.substr(1);
    in6_addr v6{};
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
      error = fmt::format("'{}' is not an IPv6 address", host);
      return false;
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      // Several colons: a bare IPv6 address, which cannot carry a port.
      if (portOptional && isIpAddress(std::string(text))) {
        return true;
      }
      error = "write an IPv6 address in brackets, e.g. [::1]:53";
      return false;
    }
    host.assign(text.substr(0, colon == std::string_view::npos ? text.size() : colon));
    port = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
    if (host.empty()) {
      error = "the host is empty";
      return false;
    }
    std::string canonical;
    std::string why;
    if (hostMustBeIp ? !isIpAddress(host) : !parseDomain(host, canonical, why)) {
      error = hostMustBeIp ? fmt::format("'{}' is not an IP address", host)
                           : fmt::format("invalid host '{}': {}", host, why);
      return false;
    }
  }
  if (port.empty() && text.find(':') == std::string_view::npos) {
    if (portOptional) {
      return true;
    }
    error = "missing ':port'";
    return false;
  }
  if (!parsePort(port)) {
    error = fmt::format("port '{}' is not a number from 1 to 65535", port);
    return false;
  }
  return true;
}

struct IntegerKey {
  std::string_view key;
  std::int64_t min;
  std::int64_t max;
  void (*set)(DeliveryConfig&, std::int64_t);
};

constexpr std::int64_t kUint32Max = std::numeric_limits<std::uint32_t>::max();

const IntegerKey kDeliveryIntegers[] = {
    {"threads", 0, 256, [](DeliveryConfig& d, std::int64_t v) { d.threads = static_cast<int>(v); }},
    {"max_connections_per_destination", 1, 100000,
     [](DeliveryConfig& d, std::int64_t v) {
       d.maxConnectionsPerDestination = static_cast<int>(v);
     }},
    {"messages_per_connection", 1, 100000000,
     [](DeliveryConfig& d, std::int64_t v) { d.messagesPerConnection = static_cast<int>(v); }},
    {"max_in_flight", 1, 100000000,
     [](DeliveryConfig& d, std::int64_t v) { d.maxInFlight = static_cast<std::size_t>(v); }},
    {"mx_port", 1, 65535,
     [](DeliveryConfig& d, std::int64_t v) { d.mxPort = static_cast<std::uint16_t>(v); }},
};

struct DurationKey {
  std::string_view key;
  void (*set)(SalvoConfig&, std::uint64_t ms);
  bool wholeSeconds;
};

const DurationKey kDeliveryDurations[] = {
    {"connect_timeout",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.connectTimeoutMs = static_cast<std::uint32_t>(ms);
     },
     false},
    {"idle_timeout",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.idleTimeoutMs = static_cast<std::uint32_t>(ms);
     },
     false},
};

// delivery.timeouts: one key per SMTP state.
const DurationKey kSmtpTimeouts[] = {
    {"greeting",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.timeouts.greetingMs = static_cast<std::uint32_t>(ms);
     },
     false},
    {"mail",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.timeouts.mailMs = static_cast<std::uint32_t>(ms);
     },
     false},
    {"rcpt",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.timeouts.rcptMs = static_cast<std::uint32_t>(ms);
     },
     false},
    {"data",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.timeouts.dataMs = static_cast<std::uint32_t>(ms);
     },
     false},
    {"data_block",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.timeouts.dataBlockMs = static_cast<std::uint32_t>(ms);
     },
     false},
    {"dot",
     [](SalvoConfig& c, std::uint64_t ms) {
       c.delivery.timeouts.dotMs = static_cast<std::uint32_t>(ms);
     },
     false},
};

constexpr const char* kTlsModeNames[] = {"none", "opportunistic", "required", "verify"};

std::optional<TlsMode> parseTlsMode(std::string_view text) {
  for (std::size_t i = 0; i < std::size(kTlsModeNames); ++i) {
    if (text == kTlsModeNames[i]) {
      return static_cast<TlsMode>(i);
    }
  }
  return std::nullopt;
}

// retry: (salvo.yaml and campaigns) in whole seconds.
struct RetryKey {
  std::string_view key;
  std::optional<std::uint32_t> RetryOverride::*field;
};

const RetryKey kRetryKeys[] = {
    {"first_delay", &RetryOverride::firstDelaySec},
    {"max_delay", &RetryOverride::maxDelaySec},
    {"max_age", &RetryOverride::maxAgeSec},
};

// A duration value, checked: well formed, above zero, whole seconds when asked, and within
// 32 bits (of milliseconds, or of seconds when whole). nullopt after reporting why.
std::optional<std::uint64_t> readDuration(YamlFile& yaml, const YamlFile::Entry& e,
                                          std::string_view key, bool wholeSeconds) {
  auto text = yaml.scalar(e.value, fmt::format("'{}'", key));
  if (!text) {
    return std::nullopt;
  }
  const YamlPosition at = yaml.valuePosition(e.key, e.value);
  const auto ms = parseDurationMs(*text);
  if (!ms) {
    yaml.error(at, fmt::format("'{}' has an invalid duration '{}' (use e.g. 500ms, 30s, 5m, 4h, "
                               "3d or a number of seconds)",
                               key, printable(*text)));
    return std::nullopt;
  }
  if (*ms == 0) {
    yaml.error(at, fmt::format("'{}' must be greater than zero", key));
    return std::nullopt;
  }
  if (wholeSeconds && *ms % 1000 != 0) {
    yaml.error(at, fmt::format("'{}' must be a whole number of seconds (got '{}')", key,
                               printable(*text)));
    return std::nullopt;
  }
  if ((wholeSeconds ? *ms / 1000 : *ms) > static_cast<std::uint64_t>(kUint32Max)) {
    yaml.error(at, fmt::format("'{}' is too long ('{}')", key, printable(*text)));
    return std::nullopt;
  }
  return ms;
}

class ConfigLoader {
 public:
  ConfigLoader(std::string file, Diagnostics& diags)
      : yaml_(std::move(file), diags, kExitConfig), diags_(diags) {}

  // Parses `text` and applies its settings over the defaults in `config`.
  void load(std::string& text, SalvoConfig& config);

 private:
  // A map-valued section; false (after an error) when it is something else.
  bool isSection(const YamlFile::Entry& e, std::string_view name);
  void loadMetrics(const YamlFile::Entry& e, SalvoConfig& config);
  void loadDns(const YamlFile::Entry& e, SalvoConfig& config);
  void loadDelivery(const YamlFile::Entry& e, SalvoConfig& config);
  void loadRetry(const YamlFile::Entry& e, SalvoConfig& config);
  void loadQueue(const YamlFile::Entry& e, SalvoConfig& config);
  void loadTimeouts(const YamlFile::Entry& e, SalvoConfig& config);
  // A 'tls' value: none, opportunistic, required or verify.
  std::optional<TlsMode> loadTlsMode(const YamlFile::Entry& e);
  void loadRoutes(const YamlFile::Entry& e, SalvoConfig& config);
  void loadPolicy(const YamlFile::Entry& e, SalvoConfig& config);
  void loadLimits(const YamlFile::Entry& e, SalvoConfig& config);
  // auth_user, password_file / password_env, allow_plaintext_auth of one route.
  bool loadRouteAuth(const std::map<std::string, YamlFile::Entry, std::less<>>& fields,
                     RouteConfig& route);
  void loadDuration(const YamlFile::Entry& e, const DurationKey& key, SalvoConfig& config);

  YamlFile yaml_;
  Diagnostics& diags_;
};

bool ConfigLoader::isSection(const YamlFile::Entry& e, std::string_view name) {
  if (!e.value.IsMap()) {
    yaml_.error(yaml_.valuePosition(e.key, e.value), fmt::format("'{}' must be a map", name));
    return false;
  }
  return true;
}

void ConfigLoader::load(std::string& text, SalvoConfig& config) {
  const auto parsed = yaml_.parse(text);
  if (!parsed) {
    return;
  }
  const YAML::Node& root = *parsed;
  if (root.IsNull()) {
    return;  // an empty file: every default applies
  }
  if (!root.IsMap()) {
    yaml_.error(root,
                "expected a map of settings (data_dir, metrics, dns, delivery, retry, routes, "
                "policy, limits, queue)");
    return;
  }
  const auto fields = yaml_.readMap(root, {"data_dir", "metrics", "dns", "delivery", "retry",
                                           "routes", "policy", "limits", "queue"});
  if (const auto it = fields.find("data_dir"); it != fields.end()) {
    auto dir = yaml_.scalar(it->second.value, "'data_dir'");
    if (dir && dir->empty()) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value), "'data_dir' is empty");
    } else if (dir) {
      // Relative to the configuration file's folder, like every path in it.
      std::filesystem::path p(*dir);
      if (p.is_relative()) {
        p = std::filesystem::path(yaml_.file()).parent_path() / p;
      }
      std::error_code ec;
      const auto absolute = std::filesystem::absolute(p, ec);
      config.dataDir = (ec ? p : absolute).lexically_normal().string();
    }
  }
  if (const auto it = fields.find("metrics"); it != fields.end()) {
    loadMetrics(it->second, config);
  }
  if (const auto it = fields.find("dns"); it != fields.end()) {
    loadDns(it->second, config);
  }
  if (const auto it = fields.find("delivery"); it != fields.end()) {
    loadDelivery(it->second, config);
  }
  if (const auto it = fields.find("retry"); it != fields.end()) {
    loadRetry(it->second, config);
  }
  if (const auto it = fields.find("routes"); it != fields.end()) {
    loadRoutes(it->second, config);
  }
  if (const auto it = fields.find("queue"); it != fields.end()) {
    loadQueue(it->second, config);
  }
  if (const auto it = fields.find("policy"); it != fields.end()) {
    loadPolicy(it->second, config);
  }
  if (const auto it = fields.find("limits"); it != fields.end()) {
    loadLimits(it->second, config);
  }
}

void ConfigLoader::loadPolicy(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "policy")) {
    return;
  }
  const auto fields = yaml_.readMap(e.value, {"providers", "bounce_rules", "shaping_rules"});
  const std::pair<const char*, std::string*> keys[] = {
      {"providers", &config.policy.providers},
      {"bounce_rules", &config.policy.bounceRules},
      {"shaping_rules", &config.policy.shapingRules}};
  for (const auto& [key, target] : keys) {
    const auto it = fields.find(key);
    if (it == fields.end()) {
      continue;
    }
    auto path = yaml_.scalar(it->second.value, fmt::format("'{}'", key));
    if (path && path->empty()) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                  fmt::format("'{}' is empty (leave it out for the built-in table)", key));
    } else if (path) {
      std::filesystem::path p(*path);
      if (p.is_relative()) {
        p = std::filesystem::path(yaml_.file()).parent_path() / p;
      }
      *target = p.lexically_normal().string();
    }
  }
}

void ConfigLoader::loadLimits(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!e.value.IsSequence()) {
    yaml_.error(yaml_.valuePosition(e.key, e.value),
                "'limits' must be a list like [{match: \"*.example\", messages_per_second: 20}]");
    return;
  }
  for (const YAML::Node& item : e.value) {
    if (!item.IsMap()) {
      yaml_.error(item, "a limits entry must be a map {match: ... or mx: ..., LIMIT: VALUE...}");
      continue;
    }
    LimitOverrideConfig entry;
    bool ok = true;
    for (const auto& kv : item) {
      auto key = yaml_.scalar(kv.first, "a limits key");
      auto value = yaml_.scalar(kv.second, key ? fmt::format("'{}'", *key) : "a limit");
      if (!key || !value) {
        ok = false;
        continue;
      }
      const auto at = yaml_.valuePosition(kv.first, kv.second);
      if (*key == "match" || *key == "mx") {
        std::string_view domain = *value;
        const bool subdomains = domain.substr(0, 2) == "*.";
        if (subdomains) {
          domain.remove_prefix(2);
        }
        std::string canonical;
        std::string why;
        if (domain.empty() || !parseDomain(domain, canonical, why)) {
          yaml_.error(at, fmt::format("invalid '{}' pattern '{}': {}", *key, printable(*value),
                                      why.empty() ? "expected \"*.domain\" or \"domain\"" : why));
          ok = false;
          continue;
        }
        (*key == "match" ? entry.match : entry.mx) = subdomains ? "*." + canonical : canonical;
        continue;
      }
      entry.values.push_back(LimitValueConfig{*key, *value, yaml_.file(), at.line, at.column});
    }
    if (entry.match.empty() == entry.mx.empty()) {
      yaml_.error(item,
                  "a limits entry needs exactly one of 'match' (recipient domains) or "
                  "'mx' (MX host names)");
      ok = false;
    }
    if (ok) {
      config.limits.push_back(std::move(entry));
    }
  }
}

void ConfigLoader::loadMetrics(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "metrics")) {
    return;
  }
  const auto fields = yaml_.readMap(e.value, {"listen"});
  const auto it = fields.find("listen");
  if (it == fields.end()) {
    return;
  }
  auto listen = yaml_.scalar(it->second.value, "'listen'");
  if (!listen) {
    return;
  }
  if (*listen == "off") {
    config.metricsListen.clear();
    return;
  }
  std::string why;
  if (!checkHostPort(*listen, false, false, why)) {
    yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                fmt::format("invalid metrics listen address '{}': {} (expected host:port or "
                            "\"off\")",
                            printable(*listen), why));
    return;
  }
  config.metricsListen = *listen;
}

void ConfigLoader::loadDns(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "dns")) {
    return;
  }
  const auto fields = yaml_.readMap(e.value, {"servers"});
  const auto it = fields.find("servers");
  if (it == fields.end()) {
    return;
  }
  if (!it->second.value.IsSequence()) {
    yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                "'servers' must be a list like [\"127.0.0.1:53\"]");
    return;
  }
  for (const YAML::Node& server : it->second.value) {
    auto text = yaml_.scalar(server, "a DNS server");
    if (!text) {
      continue;
    }
    std::string why;
    if (!checkHostPort(*text, true, true, why)) {
      yaml_.error(server, fmt::format("invalid DNS server '{}': {} (expected IP or IP:port)",
                                      printable(*text), why));
      continue;
    }
    config.dnsServers.push_back(*text);
  }
}

void ConfigLoader::loadDuration(const YamlFile::Entry& e, const DurationKey& key,
                                SalvoConfig& config) {
  if (const auto ms = readDuration(yaml_, e, key.key, key.wholeSeconds)) {
    key.set(config, *ms);
  }
}

void ConfigLoader::loadDelivery(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "delivery")) {
    return;
  }
  std::vector<std::string_view> known;
  for (const IntegerKey& k : kDeliveryIntegers) {
    known.push_back(k.key);
  }
  for (const DurationKey& k : kDeliveryDurations) {
    known.push_back(k.key);
  }
  known.push_back("helo_name");
  known.push_back("timeouts");
  known.push_back("tls");
  known.push_back("tls_ca_file");
  const auto fields = yaml_.readMap(e.value, known);
  if (const auto it = fields.find("timeouts"); it != fields.end()) {
    loadTimeouts(it->second, config);
  }
  if (const auto it = fields.find("tls"); it != fields.end()) {
    if (auto mode = loadTlsMode(it->second)) {
      config.delivery.tls = *mode;
    }
  }
  if (const auto it = fields.find("tls_ca_file"); it != fields.end()) {
    if (auto path = yaml_.scalar(it->second.value, "'tls_ca_file'")) {
      std::error_code ec;
      if (path->empty() || !std::filesystem::is_regular_file(*path, ec)) {
        yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                    fmt::format("'tls_ca_file' {} is not a readable file", printable(*path)));
      } else {
        config.delivery.tlsCaFile = *path;
      }
    }
  }
  for (const IntegerKey& k : kDeliveryIntegers) {
    const auto it = fields.find(k.key);
    if (it == fields.end()) {
      continue;
    }
    auto text = yaml_.scalar(it->second.value, fmt::format("'{}'", k.key));
    if (!text) {
      continue;
    }
    const auto n = parseInteger(*text);
    if (!n || *n < k.min || *n > k.max) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                  fmt::format("'{}' must be an integer from {} to {} (got '{}')", k.key, k.min,
                              k.max, printable(*text)));
      continue;
    }
    k.set(config.delivery, *n);
  }
  for (const DurationKey& k : kDeliveryDurations) {
    if (const auto it = fields.find(k.key); it != fields.end()) {
      loadDuration(it->second, k, config);
    }
  }
  if (const auto it = fields.find("helo_name"); it != fields.end()) {
    auto name = yaml_.scalar(it->second.value, "'helo_name'");
    std::string canonical;
    std::string why;
    if (name && !name->empty() && !parseDomain(*name, canonical, why)) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                  fmt::format("invalid helo_name '{}': {}", printable(*name), why));
    } else if (name) {
      config.delivery.heloName = canonical;
    }
  }
}

void ConfigLoader::loadTimeouts(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "timeouts")) {
    return;
  }
  std::vector<std::string_view> known;
  for (const DurationKey& k : kSmtpTimeouts) {
    known.push_back(k.key);
  }
  const auto fields = yaml_.readMap(e.value, known);
  for (const DurationKey& k : kSmtpTimeouts) {
    if (const auto it = fields.find(k.key); it != fields.end()) {
      loadDuration(it->second, k, config);
    }
  }
}

std::optional<TlsMode> ConfigLoader::loadTlsMode(const YamlFile::Entry& e) {
  auto text = yaml_.scalar(e.value, "'tls'");
  if (!text) {
    return std::nullopt;
  }
  auto mode = parseTlsMode(*text);
  if (!mode) {
    yaml_.error(yaml_.valuePosition(e.key, e.value),
                fmt::format("'tls' must be none, opportunistic, required or verify (got '{}')",
                            printable(*text)));
  }
  return mode;
}

void ConfigLoader::loadQueue(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "queue")) {
    return;
  }
  const auto fields = yaml_.readMap(e.value, {"retention"});
  if (const auto it = fields.find("retention"); it != fields.end()) {
    if (const auto ms = readDuration(yaml_, it->second, "retention", /*wholeSeconds=*/true)) {
      config.queue.retentionSec = static_cast<std::uint32_t>(*ms / 1000);
    }
  }
}

void ConfigLoader::loadRetry(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!isSection(e, "retry")) {
    return;
  }
  if (const auto o = readRetryOverride(yaml_, e.key, e.value, &config.retry)) {
    config.retry = o->over(config.retry);
  }
}

void ConfigLoader::loadRoutes(const YamlFile::Entry& e, SalvoConfig& config) {
  if (!e.value.IsSequence()) {
    yaml_.error(yaml_.valuePosition(e.key, e.value),
                "'routes' must be a list like [{match: \"*.example\", host: 127.0.0.1, port: "
                "2525}]");
    return;
  }
  for (const YAML::Node& item : e.value) {
    if (!item.IsMap()) {
      yaml_.error(item, "a route must be a map {match: ..., host: ..., port: ...}");
      continue;
    }
    const auto fields =
        yaml_.readMap(item, {"match", "host", "port", "tls", "auth_user", "password_file",
                             "password_env", "allow_plaintext_auth"});
    RouteConfig route;
    bool ok = true;
    const auto matchIt = fields.find("match");
    const auto hostIt = fields.find("host");
    if (matchIt == fields.end()) {
      yaml_.error(item, "missing required field 'match'");
      ok = false;
    } else if (auto match = yaml_.scalar(matchIt->second.value, "'match'")) {
      std::string_view domain = *match;
      const bool subdomains = domain.substr(0, 2) == "*.";
      if (subdomains) {
        domain.remove_prefix(2);
      }
      std::string canonical;
      std::string why;
      if (*match == "*") {
        route.pattern = std::move(*match);
      } else if (!domain.empty() && domain.front() != '[' && parseDomain(domain, canonical, why)) {
        route.pattern = subdomains ? "*." + canonical : canonical;
      } else {
        if (why.empty()) {
          why = "expected \"*\", \"*.domain\" or \"domain\"";
        }
        yaml_.error(yaml_.valuePosition(matchIt->second.key, matchIt->second.value),
                    fmt::format("invalid route pattern '{}': {}", printable(*match), why));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (hostIt == fields.end()) {
      yaml_.error(item, "missing required field 'host'");
      ok = false;
    } else if (auto host = yaml_.scalar(hostIt->second.value, "'host'")) {
      std::string canonical;
      std::string why;
      if (!host->empty() && (isIpAddress(*host) || parseDomain(*host, canonical, why)) &&
          host->front() != '[') {
        route.host = isIpAddress(*host) ? *host : canonical;
      } else {
        yaml_.error(yaml_.valuePosition(hostIt->second.key, hostIt->second.value),
                    fmt::format("invalid route host '{}': {}", printable(*host),
                                why.empty() ? "expected a host name or an IP address" : why));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (const auto portIt = fields.find("port"); portIt != fields.end()) {
      auto text = yaml_.scalar(portIt->second.value, "'port'");
      const auto port = text ? parsePort(*text) : std::nullopt;
      if (text && !port) {
        yaml_.error(
            yaml_.valuePosition(portIt->second.key, portIt->second.value),
            fmt::format("route port '{}' is not a number from 1 to 65535", printable(*text)));
      }
      if (!port) {
        ok = false;
      } else {
        route.port = *port;
      }
    }
    if (const auto tlsIt = fields.find("tls"); tlsIt != fields.end()) {
      route.tls = loadTlsMode(tlsIt->second);
      ok = ok && route.tls.has_value();
    }
    ok = loadRouteAuth(fields, route) && ok;
    if (ok) {
      config.routes.push_back(std::move(route));
    }
  }
}

bool ConfigLoader::loadRouteAuth(const std::map<std::string, YamlFile::Entry, std::less<>>& fields,
                                 RouteConfig& route) {
  const auto at = [&](const YamlFile::Entry& f) { return yaml_.valuePosition(f.key, f.value); };
  const auto hasControlOctet = [](std::string_view v) {
    return std::any_of(v.begin(), v.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  };
  bool ok = true;
  if (const auto it = fields.find("allow_plaintext_auth"); it != fields.end()) {
    const auto text = yaml_.scalar(it->second.value, "'allow_plaintext_auth'");
    if (text && (*text == "true" || *text == "false")) {
      route.allowPlaintextAuth = *text == "true";
    } else {
      if (text) {
        yaml_.error(at(it->second),
                    fmt::format("'allow_plaintext_auth' must be true or false (got '{}')",
                                printable(*text)));
      }
      ok = false;
    }
  }
  const auto userIt = fields.find("auth_user");
  const auto fileIt = fields.find("password_file");
  const auto envIt = fields.find("password_env");
  if (userIt == fields.end()) {
    const auto stray = fileIt != fields.end() ? fileIt : envIt;
    if (stray != fields.end()) {
      yaml_.error(at(stray->second),
                  fmt::format("'{}' needs 'auth_user' on the same route", stray->first));
      return false;
    }
    return ok;
  }
  const auto user = yaml_.scalar(userIt->second.value, "'auth_user'");
  if (!user) {
    return false;
  }
  if (user->empty() || hasControlOctet(*user)) {
    yaml_.error(at(userIt->second), "'auth_user' must be a non-empty name without control octets");
    return false;
  }
  if ((fileIt == fields.end()) == (envIt == fields.end())) {
    yaml_.error(at(userIt->second),
                "'auth_user' needs exactly one of 'password_file' or 'password_env'");
    return false;
  }
  std::string password;
  if (fileIt != fields.end()) {
    const auto path = yaml_.scalar(fileIt->second.value, "'password_file'");
    if (!path) {
      return false;
    }
    struct stat st {};
    std::string why;
    if (::stat(path->c_str(), &st) != 0) {
      why = std::strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
      why = "not a regular file";
    } else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      why = fmt::format("mode {:04o} lets others read it; chmod 600 it", st.st_mode & 07777);
    } else if (st.st_uid != ::geteuid()) {
      why = "not owned by the user salvo runs as";
    }
    if (why.empty() && !readWholeFile(*path, password, why)) {
      password.clear();
    }
    if (why.empty()) {
      // One line: the trailing line break is not part of the password.
      while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
      }
      if (password.empty()) {
        why = "it is empty";
      }
    }
    if (!why.empty()) {
      yaml_.error(at(fileIt->second),
                  fmt::format("password_file '{}' refused: {}", printable(*path), why));
      return false;
    }
  } else {
    const auto name = yaml_.scalar(envIt->second.value, "'password_env'");
    if (!name) {
      return false;
    }
    const char* value = name->empty() ? nullptr : std::getenv(name->c_str());
    if (value == nullptr || *value == '\0') {
      yaml_.error(at(envIt->second),
                  fmt::format("password_env: environment variable '{}' is not set or empty",
                              printable(*name)));
      return false;
    }
    password = value;
  }
  if (hasControlOctet(password)) {
    yaml_.error(at(fileIt != fields.end() ? fileIt->second : envIt->second),
                "the password contains a control octet (NUL, CR, LF...)");
    return false;
  }
  route.authUser = *user;
  route.authPassword = std::move(password);
  return ok;
}

}  // namespace

const char* tlsModeName(TlsMode mode) {
  const auto i = static_cast<std::size_t>(mode);
  return i < std::size(kTlsModeNames) ? kTlsModeNames[i] : "?";
}

RetryConfig RetryOverride::over(const RetryConfig& base) const {
  RetryConfig out = base;
  out.firstDelaySec = firstDelaySec.value_or(base.firstDelaySec);
  out.maxDelaySec = maxDelaySec.value_or(base.maxDelaySec);
  out.maxAgeSec = maxAgeSec.value_or(base.maxAgeSec);
  return out;
}

std::optional<RetryOverride> readRetryOverride(YamlFile& yaml, const YAML::Node& key,
                                               const YAML::Node& value, const RetryConfig* base) {
  if (!value.IsMap()) {
    yaml.error(yaml.valuePosition(key, value),
               "'retry' must be a map like {first_delay: 5m, max_delay: 4h, max_age: 3d}");
    return std::nullopt;
  }
  std::vector<std::string_view> known;
  for (const RetryKey& k : kRetryKeys) {
    known.push_back(k.key);
  }
  const auto fields = yaml.readMap(value, known);
  const std::size_t before = yaml.diags().size();
  RetryOverride out;
  for (const RetryKey& k : kRetryKeys) {
    if (const auto it = fields.find(k.key); it != fields.end()) {
      if (const auto ms = readDuration(yaml, it->second, k.key, /*wholeSeconds=*/true)) {
        out.*k.field = static_cast<std::uint32_t>(*ms / 1000);
      }
    }
  }
  if (yaml.diags().size() != before) {
    return std::nullopt;
  }
  const bool bothWritten = out.firstDelaySec && out.maxDelaySec;
  const RetryConfig merged = out.over(base != nullptr ? *base : RetryConfig{});
  if ((base != nullptr || bothWritten) && merged.maxDelaySec < merged.firstDelaySec) {
    const auto it = fields.find("max_delay");
    const YamlPosition at = it != fields.end()
                                ? yaml.valuePosition(it->second.key, it->second.value)
                                : positionOf(value.Mark());
    yaml.error(at, fmt::format("'max_delay' ({}s) is shorter than 'first_delay' ({}s)",
                               merged.maxDelaySec, merged.firstDelaySec));
    return std::nullopt;
  }
  return out;
}

std::optional<SalvoConfig> loadConfig(const std::string& path, Diagnostics& diags) {
  SalvoConfig config;
  std::string file = path;
  if (file.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(kDefaultFile, ec)) {
      return config;  // built-in defaults
    }
    file = kDefaultFile;
  }
  const std::size_t before = diags.size();
  const std::size_t firstItem = diags.items().size();
  std::string text;
  std::string why;
  if (!readWholeFile(file, text, why)) {
    diags.add(file, 0, 0, fmt::format("cannot open config file '{}': {}", file, why), kExitNoInput);
    return std::nullopt;
  }
  config.file = file;
  ConfigLoader(file, diags).load(text, config);
  diags.sortFrom(firstItem);
  if (diags.size() != before) {
    return std::nullopt;
  }
  return config;
}

}  // namespace salvo::campaigns

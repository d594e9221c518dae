#include "engine/provider_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "campaigns/address.h"
#include "campaigns/yaml_support.h"

namespace salvo::engine {

namespace {

std::string canonicalHost(std::string_view host) {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool validProviderName(std::string_view name) {
  if (name.empty() || name.size() > 32 || name == kOtherProvider) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

// Limits for the large providers: what they publish or what senders in good standing
// observe to be accepted without 421s. Conservative on purpose: the concurrency window
// and the shaping rules only ever lower these.
Provider provider(std::string name, std::vector<std::string> mx, int maxConnections,
                  int messagesPerConnection, double messagesPerSecond,
                  double connectionsPerMinute) {
  DestinationLimits l = defaultDestinationLimits();
  l.maxConnections = maxConnections;
  l.messagesPerConnection = messagesPerConnection;
  l.messagesPerSecond = messagesPerSecond;
  l.connectionsPerMinute = connectionsPerMinute;
  return Provider{std::move(name), std::move(mx), l};
}

std::vector<Provider> defaultProviders() {
  return {
      provider("gmail", {"*.google.com", "*.googlemail.com"}, 10, 100, 50, 60),
      provider("yahoo", {"*.yahoodns.net", "*.yahoo.com"}, 8, 20, 20, 30),
      provider("microsoft", {"*.protection.outlook.com", "*.outlook.com", "*.hotmail.com"}, 8, 50,
               20, 30),
      provider("apple", {"*.icloud.com", "*.me.com"}, 5, 50, 10, 20),
      provider("gmx", {"*.gmx.net", "*.web.de", "*.gmx.com"}, 5, 50, 10, 20),
      provider("yandex", {"*.yandex.net", "*.yandex.ru"}, 5, 50, 10, 20),
      provider("mailru", {"*.mail.ru"}, 5, 50, 10, 20),
      provider("zoho", {"*.zoho.com", "*.zoho.eu", "*.zohomail.com"}, 5, 50, 10, 20),
      provider("fastmail", {"*.messagingengine.com"}, 5, 50, 10, 20),
      provider("comcast", {"*.comcast.net"}, 4, 50, 10, 20),
      provider("proofpoint", {"*.pphosted.com", "*.ppe-hosted.com"}, 5, 50, 10, 20),
      provider("mimecast", {"*.mimecast.com"}, 5, 50, 10, 20),
  };
}

// Reads a map of limit keys into `limits`; false after an error.
bool readLimits(campaigns::YamlFile& yaml, const campaigns::YamlFile::Entry& e,
                DestinationLimits& limits) {
  if (!e.value.IsMap()) {
    yaml.error(yaml.valuePosition(e.key, e.value),
               "limits must be a map like {max_connections: 10, messages_per_second: 20}");
    return false;
  }
  std::vector<std::string_view> known;
  for (const DestinationLimitKey& k : destinationLimitKeys()) {
    known.push_back(k.key);
  }
  bool ok = true;
  for (const auto& [key, entry] : yaml.readMap(e.value, known)) {
    auto value = yaml.scalar(entry.value, fmt::format("'{}'", key));
    std::string error;
    if (!value) {
      ok = false;
    } else if (!setDestinationLimit(limits, key, *value, error)) {
      yaml.error(yaml.valuePosition(entry.key, entry.value), error);
      ok = false;
    }
  }
  return ok;
}

std::optional<std::string> readMxPattern(campaigns::YamlFile& yaml, const YAML::Node& node) {
  auto text = yaml.scalar(node, "an MX pattern");
  if (!text) {
    return std::nullopt;
  }
  std::string_view domain = *text;
  const bool wildcard = domain.substr(0, 2) == "*.";
  if (wildcard) {
    domain.remove_prefix(2);
  }
  if (!domain.empty() && domain.back() == '.') {
    domain.remove_suffix(1);  // a fully qualified name, as in DNS zone files
  }
  std::string canonical;
  std::string why;
  if (domain.empty() || !campaigns::parseDomain(domain, canonical, why)) {
    yaml.error(node, fmt::format("invalid MX pattern '{}': {}", campaigns::printable(*text),
                                 why.empty() ? "expected \"*.domain\" or \"host.domain\"" : why));
    return std::nullopt;
  }
  return wildcard ? "*." + canonical : canonical;
}

}  // namespace

bool mxPatternMatches(std::string_view pattern, std::string_view host) {
  if (pattern.substr(0, 2) == "*.") {
    const std::string_view base = pattern.substr(2);
    return host == base || (host.size() > base.size() && host.ends_with(base) &&
                            host[host.size() - base.size() - 1] == '.');
  }
  return host == pattern;
}

ProviderTable::ProviderTable() : ProviderTable(defaultDestinationLimits(), defaultProviders()) {}

ProviderTable::ProviderTable(DestinationLimits defaults, std::vector<Provider> providers)
    : providers_(std::move(providers)), other_{std::string(kOtherProvider), {}, defaults} {}

const Provider& ProviderTable::lookup(std::string_view mxHost) const {
  const std::string host = canonicalHost(mxHost);
  for (const Provider& p : providers_) {
    for (const std::string& pattern : p.mxPatterns) {
      if (mxPatternMatches(pattern, host)) {
        return p;
      }
    }
  }
  return other_;
}

const Provider& ProviderTable::lookup(const std::vector<std::string>& mxHosts) const {
  for (const std::string& host : mxHosts) {
    const Provider& p = lookup(host);
    if (&p != &other_) {
      return p;
    }
  }
  return other_;
}

std::vector<std::string> ProviderTable::names() const {
  std::vector<std::string> out;
  for (const Provider& p : providers_) {
    out.push_back(p.name);
  }
  out.emplace_back(kOtherProvider);
  return out;
}

std::optional<ProviderTable> ProviderTable::load(const std::string& path,
                                                 campaigns::Diagnostics& diags) {
  std::string text;
  std::string error;
  if (!campaigns::readWholeFile(path, text, error)) {
    diags.add(path, 0, 0, fmt::format("cannot read: {}", error), campaigns::kExitConfig);
    return std::nullopt;
  }
  return parse(std::move(text), path, diags);
}

std::optional<ProviderTable> ProviderTable::parse(std::string text, const std::string& file,
                                                  campaigns::Diagnostics& diags) {
  campaigns::YamlFile yaml(file, diags, campaigns::kExitConfig);
  const std::size_t before = diags.size();
  auto parsed = yaml.parse(text);
  if (!parsed) {
    return std::nullopt;
  }
  const YAML::Node& root = *parsed;
  if (!root.IsMap()) {
    yaml.error(root, "expected a map with 'defaults' and a 'providers' list");
    return std::nullopt;
  }
  const auto top = yaml.readMap(root, {"defaults", "providers"});
  DestinationLimits defaults = defaultDestinationLimits();
  if (const auto it = top.find("defaults"); it != top.end()) {
    readLimits(yaml, it->second, defaults);
  }
  std::vector<Provider> providers;
  const auto listIt = top.find("providers");
  if (listIt != top.end() && !listIt->second.value.IsSequence()) {
    yaml.error(yaml.valuePosition(listIt->second.key, listIt->second.value),
               "'providers' must be a list of {name, mx, limits}");
  } else if (listIt != top.end()) {
    std::set<std::string, std::less<>> seen;
    for (const YAML::Node& item : listIt->second.value) {
      if (!item.IsMap()) {
        yaml.error(item, "a provider must be a map {name: ..., mx: [...], limits: {...}}");
        continue;
      }
      const auto fields = yaml.readMap(item, {"name", "mx", "limits"});
      Provider p;
      p.limits = defaults;
      if (const auto it = fields.find("name"); it == fields.end()) {
        yaml.error(item, "missing required field 'name'");
      } else if (auto name = yaml.scalar(it->second.value, "'name'")) {
        const auto at = yaml.valuePosition(it->second.key, it->second.value);
        if (!validProviderName(*name)) {
          yaml.error(at, fmt::format("invalid provider name '{}': use 1 to 32 of a-z, 0-9, "
                                     "'-' and '_' (and not \"other\", which is reserved)",
                                     campaigns::printable(*name)));
        } else if (!seen.insert(*name).second) {
          yaml.error(at, fmt::format("provider '{}' is listed twice", *name));
        }
        p.name = std::move(*name);
      }
      if (const auto it = fields.find("mx"); it == fields.end()) {
        yaml.error(item, "missing required field 'mx' (a list of MX host patterns)");
      } else if (it->second.value.IsScalar()) {
        if (auto pattern = readMxPattern(yaml, it->second.value)) {
          p.mxPatterns.push_back(std::move(*pattern));
        }
      } else if (it->second.value.IsSequence() && it->second.value.size() > 0) {
        for (const YAML::Node& node : it->second.value) {
          if (auto pattern = readMxPattern(yaml, node)) {
            p.mxPatterns.push_back(std::move(*pattern));
          }
        }
      } else {
        yaml.error(yaml.valuePosition(it->second.key, it->second.value),
                   "'mx' must be a pattern or a non-empty list like [\"*.google.com\"]");
      }
      if (const auto it = fields.find("limits"); it != fields.end()) {
        readLimits(yaml, it->second, p.limits);
      }
      providers.push_back(std::move(p));
    }
  }
  if (diags.size() != before) {
    return std::nullopt;
  }
  return ProviderTable(defaults, std::move(providers));
}

}  // namespace salvo::engine

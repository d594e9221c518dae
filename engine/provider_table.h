// ProviderTable: which mailbox provider a destination belongs to, judged by its MX host
// names, and the limits that provider gets. Contract: built once (the shipped defaults or
// a providers file), then read-only and thread-safe. Lookup is by MX host name, never by
// recipient domain: every domain Google hosts is "gmail" whatever it is called. A host
// nothing matches is provider "other" with the default limits. Provider names are the
// values of the bounded `provider` metric label, so they are few and fixed by this table.
// The shipped defaults are identical to examples/policy/providers.yaml (a test checks).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campaigns/diagnostics.h"
#include "engine/destination_limits.h"

namespace salvo::engine {

inline constexpr std::string_view kOtherProvider = "other";

struct Provider {
  std::string name;                     // [a-z0-9_-]+, not "other"
  std::vector<std::string> mxPatterns;  // "*.google.com" (subdomains and itself), "mx.x.net"
  DestinationLimits limits;             // the defaults with this provider's overrides

  bool operator==(const Provider&) const = default;
};

class ProviderTable {
 public:
  // The shipped table.
  ProviderTable();
  ProviderTable(DestinationLimits defaults, std::vector<Provider> providers);

  // Reads a providers file (format: examples/policy/providers.yaml); nullopt after adding
  // every problem to `diags` as file:line:column (exit 78).
  static std::optional<ProviderTable> load(const std::string& path, campaigns::Diagnostics& diags);
  static std::optional<ProviderTable> parse(std::string text, const std::string& file,
                                            campaigns::Diagnostics& diags);

  // The provider of one MX host name (any case, trailing dot or not); "other" when no
  // pattern matches. The first provider listed wins when several match.
  const Provider& lookup(std::string_view mxHost) const;
  // The provider of a destination from its MX hosts in preference order: the first host
  // that matches a provider decides.
  const Provider& lookup(const std::vector<std::string>& mxHosts) const;

  const DestinationLimits& defaults() const { return other_.limits; }
  const std::vector<Provider>& providers() const { return providers_; }
  // Every provider name including "other": the complete set of `provider` label values.
  std::vector<std::string> names() const;

 private:
  std::vector<Provider> providers_;
  Provider other_;
};

// True when `host` (lower case, no trailing dot) matches `pattern` ("*.d" matches d and
// its subdomains; anything else matches exactly).
bool mxPatternMatches(std::string_view pattern, std::string_view host);

}  // namespace salvo::engine

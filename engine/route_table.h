// RouteTable: maps a recipient domain to a configured route (smarthost or test sink).
// Contract: patterns are "*" (every domain), "*.example.com" (example.com and its
// subdomains) and "example.com" (exactly); matching is case-insensitive and the first
// matching route wins. Domains with no route are delivered by MX lookup.
#pragma once

#include <string_view>
#include <vector>

#include "campaigns/config.h"

namespace salvo::engine {

class RouteTable {
 public:
  explicit RouteTable(std::vector<campaigns::RouteConfig> routes);
  // The first route matching `domain`, or nullptr.
  const campaigns::RouteConfig* match(std::string_view domain) const;

 private:
  std::vector<campaigns::RouteConfig> routes_;
};

}  // namespace salvo::engine

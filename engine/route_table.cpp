#include "engine/route_table.h"

#include <strings.h>

#include <utility>

namespace salvo::engine {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool matches(std::string_view pattern, std::string_view domain) {
  if (pattern == "*") {
    return true;
  }
  if (pattern.starts_with("*.")) {
    std::string_view base = pattern.substr(2);
    if (iequals(domain, base)) {
      return true;
    }
    return domain.size() > base.size() + 1 && domain[domain.size() - base.size() - 1] == '.' &&
           iequals(domain.substr(domain.size() - base.size()), base);
  }
  return iequals(pattern, domain);
}

}  // namespace

RouteTable::RouteTable(std::vector<campaigns::RouteConfig> routes) : routes_(std::move(routes)) {}

const campaigns::RouteConfig* RouteTable::match(std::string_view domain) const {
  for (const auto& route : routes_) {
    if (matches(route.pattern, domain)) {
      return &route;
    }
  }
  return nullptr;
}

}  // namespace salvo::engine

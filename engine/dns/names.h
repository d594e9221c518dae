// Small helpers shared by the resolvers: name normalisation and IP-literal detection.
// Contract: pure string work, no DNS queries, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/net/address.h"

namespace salvo::dns {

// ASCII lower case, one trailing dot removed: "MX1.Example.COM." -> "mx1.example.com".
// The root name "." becomes "".
std::string normalizeName(std::string_view name);

// The endpoint for an IPv4 or IPv6 literal ("192.0.2.1", "2001:db8::1", "[2001:db8::1]")
// with `port`; nullopt when `host` is a name.
std::optional<net::Endpoint> ipLiteralEndpoint(std::string_view host, std::uint16_t port);

}  // namespace salvo::dns

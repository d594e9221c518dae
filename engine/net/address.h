// Socket addresses: parsing "host:port", "[v6]:port" and IP literals. No DNS here.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace salvo::net {

struct Endpoint {
  sockaddr_storage addr{};

  // An IPv4 or IPv6 literal (no brackets) and a port; nullopt when `ip` is not a literal.
  static std::optional<Endpoint> fromIp(std::string_view ip, std::uint16_t port);
  int family() const { return addr.ss_family; }
  std::uint16_t port() const;
  std::string ip() const;
  std::string str() const;  // "127.0.0.1:25", "[::1]:25"
};

// Splits "host:port" or "[v6]:port" into its parts; false when malformed.
bool splitHostPort(std::string_view text, std::string& host, std::uint16_t& port);

}  // namespace salvo::net

#include "engine/net/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace salvo::net {

std::optional<Endpoint> Endpoint::fromIp(std::string_view ip, std::uint16_t port) {
  // inet_pton needs a NUL-terminated string; an address literal is at most 45 octets.
  char text[INET6_ADDRSTRLEN + 1];
  if (ip.empty() || ip.size() >= sizeof(text)) {
    return std::nullopt;
  }
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';

  Endpoint ep;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.addr);
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return ep;
  }
  ep.addr = {};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
  if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return ep;
  }
  return std::nullopt;
}

std::uint16_t Endpoint::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  return 0;
}

std::string Endpoint::ip() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, text, sizeof(text));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, text,
              sizeof(text));
  }
  return text;
}

std::string Endpoint::str() const {
  // Appends only: GCC 12 -O2 warns (-Wrestrict, a false positive) on "[" + ip() + "]".
  std::string address = ip();
  std::string out;
  out.reserve(address.size() + 8);
  if (family() == AF_INET6) {
    out += '[';
    out += address;
    out += ']';
  } else {
    out += address;
  }
  out += ':';
  out += std::to_string(port());
  return out;
}

bool splitHostPort(std::string_view text, std::string& host, std::uint16_t& port) {
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return false;
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    // A bare IPv6 literal ("::1:25") is ambiguous: it must be bracketed.
    if (h.find(':') != std::string_view::npos) {
      return false;
    }
  }
  if (h.empty() || p.empty() || p.size() > 5) {
    return false;
  }
  for (char c : p) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value > 65535) {
    return false;
  }
  host.assign(h);
  port = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace salvo::net

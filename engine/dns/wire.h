// A minimal reader of raw DNS responses (RFC 1035 section 4), for what c-ares' parsers
// leave out: the response code and the TTLs that decide how long an answer may be cached.
// Contract: pure, bounds-checked parsing of untrusted bytes; no allocation beyond the
// result, no I/O. Malformed input yields nullopt, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace salvo::dns {

struct ResponseTtls {
  int rcode = 0;                           // header RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN)
  std::uint16_t answerCount = 0;           // ANCOUNT
  std::optional<std::uint32_t> answerTtl;  // minimum TTL over the answer section's records
  // RFC 2308 section 5: a negative answer may be cached for min(SOA TTL, SOA MINIMUM),
  // from the SOA record in the authority section; nullopt when there is none.
  std::optional<std::uint32_t> negativeTtl;
};

// Reads the header, skips the questions, and walks the answer and authority sections.
// TTLs with the top bit set count as 0 (RFC 2181 section 8).
std::optional<ResponseTtls> readResponseTtls(const std::uint8_t* data, std::size_t len);

}  // namespace salvo::dns

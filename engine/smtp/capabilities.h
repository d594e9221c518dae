// EHLO capabilities (RFC 5321 §4.1.1.1 and the extensions Salvo uses). Pure code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/smtp/reply.h"

namespace salvo::smtp {

struct Capabilities {
  bool esmtp = false;  // the server answered EHLO (not HELO)
  bool pipelining = false;
  bool startTls = false;
  bool eightBitMime = false;
  bool smtpUtf8 = false;
  bool enhancedStatusCodes = false;
  bool chunking = false;
  bool size = false;                        // SIZE advertised (with or without a limit)
  std::uint64_t maxSize = 0;                // SIZE limit; 0 = none announced
  std::vector<std::string> authMechanisms;  // upper case

  // Parses a positive EHLO reply (first line is the greeting text, the rest keywords).
  // Unknown keywords are ignored; keywords are case-insensitive.
  static Capabilities fromEhlo(const Reply& reply);
};

}  // namespace salvo::smtp

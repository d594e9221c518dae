// Mail addresses (RFC 5321 Mailbox): a real parser, not a regex.
// Contract: accepts dot-atom and quoted-string local parts and a domain of LDH labels
// (or an address literal); refuses CR, LF, NUL, control characters and anything over the
// RFC 5321 length limits, with a message saying why.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace salvo::campaigns {

struct Address {
  std::string local;
  std::string domain;  // lower case
  std::string str() const { return local + "@" + domain; }
};

// nullopt and `error` set (e.g. "missing '@'", "domain label 'a..b' is empty") when bad.
std::optional<Address> parseAddress(std::string_view text, std::string& error);

// A From/Reply-To mailbox: "Display Name <addr>" or a bare address.
struct Mailbox {
  std::string displayName;  // may be empty
  Address address;
  // RFC 5322 form for headers; the display name quoted when needed.
  std::string header() const;
};
std::optional<Mailbox> parseMailbox(std::string_view text, std::string& error);

// True when `value` contains CR, LF or NUL (header injection).
bool hasLineBreakOrNul(std::string_view value);

}  // namespace salvo::campaigns

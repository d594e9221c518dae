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
  std::string local;   // wire form: dot-atom, or a quoted string only when one is needed
  std::string domain;  // lower case
  std::string str() const { return local + "@" + domain; }
};

// nullopt and `error` set (e.g. "missing '@'", "domain 'a..b' has an empty label") when bad.
std::optional<Address> parseAddress(std::string_view text, std::string& error);

// A domain (the part after '@'): dot-separated LDH labels (non-ASCII U-labels allowed),
// or an address literal "[1.2.3.4]" / "[IPv6:...]". On success `canonical` is the
// lower-cased form; otherwise false and `error` says why.
bool parseDomain(std::string_view text, std::string& canonical, std::string& error);

// A From/Reply-To mailbox: "Display Name <addr>" or a bare address.
struct Mailbox {
  std::string displayName;  // may be empty
  Address address;
  // RFC 5322 form for headers; the display name quoted when needed, or RFC 2047 encoded
  // (folded, assuming a field name of up to "Reply-To: ") when it is not ASCII.
  std::string header() const;
};
// Display names are limited to 256 octets so that a From line stays far below 998.
std::optional<Mailbox> parseMailbox(std::string_view text, std::string& error);

// The checks parseMailbox applies to a display name (unquoted form): valid UTF-8, no
// line breaks or other control characters, at most 256 octets.
bool checkDisplayName(std::string_view name, std::string& error);

// True when `value` contains CR, LF or NUL (header injection).
bool hasLineBreakOrNul(std::string_view value);

}  // namespace salvo::campaigns

// Body encoding for the DATA phase (RFC 5321 §4.5.2, §4.5.3.1.6). Pure code.
// Contract: the output has only CRLF line ends, every line starting with "." is
// dot-stuffed, and it ends with "\r\n.\r\n" (a message whose last line has no line end
// gets a CRLF before the dot; an empty message encodes to just ".\r\n"). A bare LF is
// normalised to CRLF; a bare CR or a NUL is refused (never emitted: SMTP smuggling,
// CVE-2023-51764); a line longer than 998 octets is refused. Refusals are message-scope
// permanent failures for the caller.
#pragma once

#include <string>
#include <string_view>

namespace salvo::smtp {

inline constexpr std::size_t kMaxLineLength = 998;  // octets, excluding CRLF

// Appends the encoded form of `message` to `out`. On failure returns false, sets `error`
// (e.g. "line 12 is 1200 octets long; the limit is 998") and leaves `out` as it was.
bool encodeBody(std::string_view message, std::string& out, std::string& error);

}  // namespace salvo::smtp

// Header text encoding: UTF-8 checks, RFC 2047 B-encoded words and RFC 5322 folding for
// header values built from campaign text (display names, the Subject).
// Contract: pure functions over buffers; whatever they write is safe to put on the wire as
// header text — lines end in CRLF only where a fold is intended, stay within 998 octets
// (76 where an encoded word sits, as RFC 2047 asks), and raw CR, LF, NUL or other control
// characters never pass through unencoded. No I/O, no allocation beyond appending to `out`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace salvo::campaigns {

// True when every byte is 7-bit ASCII.
bool isAscii(std::string_view text);

// True when `text` is well-formed UTF-8 (shortest forms, no surrogates, <= U+10FFFF).
bool isValidUtf8(std::string_view text);

// The first control character in `text` (C0, DEL or, for valid UTF-8, C1 U+0080..U+009F)
// as a code point, or -1 when there is none. `allowTab` lets HT through.
long firstControlChar(std::string_view text, bool allowTab);

// Appends standard base64 (with padding) of `data`.
void appendBase64(std::string& out, std::string_view data);

// Appends `text` as RFC 2047 "=?UTF-8?B?...?=" encoded words, split on UTF-8 character
// boundaries, each at most 75 characters, separated by a fold (CRLF SP) so that no line
// exceeds 76 characters. `column` is how many characters the current line already holds.
// Returns the column after the last word. Nothing is written for empty `text`.
std::size_t appendEncodedWords(std::string& out, std::string_view text, std::size_t column);

// Appends a whole unstructured header field ("Subject: value" CRLF). ASCII text is
// folded at white space to keep lines near 78 octets; text with non-ASCII bytes or
// control characters, or that cannot be folded under 998 octets, is B-encoded instead.
void appendUnstructuredHeader(std::string& out, std::string_view name, std::string_view value);

}  // namespace salvo::campaigns

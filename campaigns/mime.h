// MIME body encoding for rendered message bodies (RFC 2045).
// Contract: pure functions over buffers. chooseTransferEncoding() picks the lightest
// encoding that keeps a body legal on the wire: 7bit for ASCII with lines of at most 998
// octets, quoted-printable for mostly-ASCII text with 8-bit bytes or long lines, base64
// otherwise. Every append* writes CRLF line ends only and lines of at most 76 characters
// (7bit: the body's own lines, at most 998 octets).
#pragma once

#include <string>
#include <string_view>

namespace salvo::campaigns {

enum class TransferEncoding { SevenBit, QuotedPrintable, Base64 };

// "7bit", "quoted-printable" or "base64".
std::string_view transferEncodingName(TransferEncoding encoding);

// `body` is the rendered text with any line ends (LF, CRLF or CR).
TransferEncoding chooseTransferEncoding(std::string_view body);

// Appends `body` encoded as `encoding`; line ends (LF, CRLF, lone CR) become CRLF, and the
// result ends with CRLF when it is not empty.
void appendEncodedBody(std::string& out, std::string_view body, TransferEncoding encoding);

}  // namespace salvo::campaigns

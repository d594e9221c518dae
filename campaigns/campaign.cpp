// Campaign: construction (shared by the loader and deserialize), rendering, storage form.
#include "campaigns/campaign.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "campaigns/digest.h"
#include "campaigns/header_encoding.h"
#include "campaigns/mime.h"
#include "campaigns/text.h"
#include "campaigns/yaml_support.h"

namespace salvo::campaigns {

namespace {

constexpr int kFormat = 3;  // 1: the spine's records (id, from, subject, text); 3: retry

// The stored names of a retry override's fields (seconds), for serialize and deserialize.
template <typename Override>
auto retryFields(Override& o) {
  return std::array{std::pair{"first_delay_sec", &o.firstDelaySec},
                    std::pair{"max_delay_sec", &o.maxDelaySec},
                    std::pair{"max_age_sec", &o.maxAgeSec}};
}

// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), proleptic Gregorian.
void civilFromDays(std::int64_t z, std::int64_t& year, unsigned& month, unsigned& day) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
}

// RFC 5322 date-time in UTC: "Sat, 28 Nov 2026 13:04:51 +0000".
void appendDate(std::string& out, std::int64_t nowMs) {
  static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::int64_t seconds = nowMs / 1000;
  if (nowMs % 1000 < 0) {
    --seconds;
  }
  // Thousands of messages share a second: the line is formatted once per second a thread.
  thread_local std::int64_t cachedSecond = 0;
  thread_local std::string cached;
  if (!cached.empty() && cachedSecond == seconds) {
    out += cached;
    return;
  }
  cachedSecond = seconds;
  cached.clear();
  std::int64_t days = seconds / 86400;
  std::int64_t secondOfDay = seconds % 86400;
  if (secondOfDay < 0) {
    secondOfDay += 86400;
    --days;
  }
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civilFromDays(days, year, month, day);
  const std::int64_t weekday = ((days % 7) + 7) % 7;  // 1970-01-01 was a Thursday
  fmt::format_to(std::back_inserter(cached), "{}, {} {} {:04} {:02}:{:02}:{:02} +0000",
                 kDays[weekday], day, kMonths[month - 1], year, secondOfDay / 3600,
                 secondOfDay / 60 % 60, secondOfDay % 60);
  out += cached;
}

// Decimal digits, without fmt's format-string parsing (per message, several times).
void appendDecimal(std::string& out, std::uint64_t value) {
  char digits[20];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void appendHex(std::string& out, const unsigned char* data, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
}

// RFC 3986 percent-encoding of everything but unreserved characters.
void appendPercentEncoded(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
}

// Headers Salvo writes itself, or that would change how the message is read; every
// Content-* header is refused too (customHeaderProblem).
// clang-format off
const std::vector<std::string_view> kStructuralHeaders = {
    "from", "to", "cc", "bcc", "date", "message-id", "mime-version", "subject", "reply-to",
    "sender", "return-path", "received", "dkim-signature", "list-unsubscribe",
    "list-unsubscribe-post"};
// clang-format on

void renderSingleBody(const Template& t, Template::Escape escape, std::string_view type,
                      std::string_view recipient, const std::vector<std::string>& values,
                      std::string& headers, std::string& body) {
  thread_local std::string text;
  text.clear();
  t.render(recipient, values, text, escape);
  const TransferEncoding encoding = chooseTransferEncoding(text);
  headers += "Content-Type: ";
  headers += type;
  headers += "; charset=utf-8\r\nContent-Transfer-Encoding: ";
  headers += transferEncodingName(encoding);
  headers += "\r\n";
  appendEncodedBody(body, text, encoding);
}

}  // namespace

bool isValidCampaignId(std::string_view id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

const std::string Campaign::kEmpty;

std::optional<Rate> parseRate(std::string_view text) {
  text = trimBlanks(text);
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  const auto count = parseInteger(trimBlanks(text.substr(0, slash)));
  const std::string_view unit = trimBlanks(text.substr(slash + 1));
  if (!count || *count < 1 || *count > 1000000000) {
    return std::nullopt;
  }
  std::uint64_t periodMs = 0;
  if (unit == "s") {
    periodMs = 1000;
  } else if (unit == "m") {
    periodMs = 60 * 1000;
  } else if (unit == "h") {
    periodMs = 3600 * 1000;
  } else if (unit == "d") {
    periodMs = 86400 * 1000;
  } else {
    return std::nullopt;
  }
  return Rate{static_cast<std::uint64_t>(*count), periodMs};
}

std::optional<std::int64_t> parseRfc3339Ms(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > text.size()) {
      return std::nullopt;
    }
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') {
        return std::nullopt;
      }
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  auto is = [&](std::size_t at, std::string_view chars) {
    return at < text.size() && chars.find(text[at]) != std::string_view::npos;
  };
  const auto year = digits(0, 4);
  const auto month = digits(5, 2);
  const auto day = digits(8, 2);
  const auto hour = digits(11, 2);
  const auto minute = digits(14, 2);
  const auto second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || !is(4, "-") || !is(7, "-") ||
      !is(10, "Tt ") || !is(13, ":") || !is(16, ":")) {
    return std::nullopt;
  }
  static constexpr int kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
  if (*month < 1 || *month > 12 || *day < 1 || *day > kDaysInMonth[*month - 1] ||
      (*month == 2 && *day == 29 && !leap) || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (is(pos, ".")) {
    ++pos;
    std::size_t n = 0;
    while (is(pos, "0123456789")) {
      if (n < 3) {
        millis = millis * 10 + (text[pos] - '0');
      }
      ++n;
      ++pos;
    }
    if (n == 0) {
      return std::nullopt;
    }
    for (; n < 3; ++n) {
      millis *= 10;
    }
  }
  std::int64_t offsetMinutes = 0;
  if (is(pos, "Zz")) {
    ++pos;
  } else if (is(pos, "+-")) {
    const int sign = text[pos] == '-' ? -1 : 1;
    const auto oh = digits(pos + 1, 2);
    const auto om = digits(pos + 4, 2);
    if (!oh || !om || !is(pos + 3, ":") || *oh > 23 || *om > 59) {
      return std::nullopt;
    }
    offsetMinutes = sign * (*oh * 60 + *om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) {
    return std::nullopt;
  }
  const std::int64_t days =
      daysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  const std::int64_t seconds =
      days * 86400 + *hour * 3600 + *minute * 60 + std::min(*second, 59) - offsetMinutes * 60;
  return seconds * 1000 + millis;
}

std::string customHeaderProblem(std::string_view name) {
  if (name.empty() || name.size() > 76) {
    return "is not a valid header name (1 to 76 characters)";
  }
  for (char c : name) {
    if (c < 33 || c > 126 || c == ':') {
      return "is not a valid header name (printable ASCII without ':' or spaces)";
    }
  }
  for (std::string_view structural : kStructuralHeaders) {
    if (equalsIgnoreCase(name, structural)) {
      return "is set by Salvo and cannot be given in 'headers'";
    }
  }
  if (name.size() >= 8 && equalsIgnoreCase(name.substr(0, 8), "content-")) {
    return "is set by Salvo and cannot be given in 'headers' (Content-* headers follow the "
           "bodies)";
  }
  return {};
}

std::optional<std::string> readSecretFile(const std::string& path, std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = fmt::format("cannot read secret file '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    error = fmt::format(
        "secret file '{}' is readable by group or others (mode {:04o}): run chmod 600 on it", path,
        st.st_mode & 07777);
    return std::nullopt;
  }
  std::string secret;
  if (!readWholeFile(path, secret, error)) {
    error = fmt::format("cannot read secret file '{}': {}", path, error);
    return std::nullopt;
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
    secret.pop_back();
  }
  if (secret.size() < 16) {
    error = fmt::format("secret file '{}' holds {} bytes; use at least 16 random bytes", path,
                        secret.size());
    return std::nullopt;
  }
  return secret;
}

std::shared_ptr<Campaign> Campaign::build(CampaignSpec spec, std::unique_ptr<DkimSigner> signer,
                                          std::optional<std::string> secret, std::string& error) {
  if (!isValidCampaignId(spec.id)) {
    error = fmt::format("invalid campaign id '{}'", spec.id);
    return nullptr;
  }
  std::string why;
  if (!checkDisplayName(spec.from.displayName, why)) {
    error = fmt::format("invalid from display name: {}", why);
    return nullptr;
  }
  if (spec.replyTo && !checkDisplayName(spec.replyTo->displayName, why)) {
    error = fmt::format("invalid reply_to display name: {}", why);
    return nullptr;
  }
  if (hasLineBreakOrNul(spec.subject)) {
    error = "subject contains a line break or NUL byte";
    return nullptr;
  }
  if (!spec.text && !spec.html) {
    error = "the campaign has neither a text nor an html body";
    return nullptr;
  }
  for (const std::optional<std::string>* body : {&spec.text, &spec.html}) {
    if (*body && (!isValidUtf8(**body) || (*body)->find('\0') != std::string::npos)) {
      error = fmt::format("{} is not valid UTF-8 or contains a NUL byte",
                          body == &spec.text ? "text" : "html");
      return nullptr;
    }
  }
  if (!isValidUtf8(spec.subject)) {
    error = "subject is not valid UTF-8";
    return nullptr;
  }
  for (const CustomHeader& h : spec.headers) {
    const std::string problem = customHeaderProblem(h.name);
    if (!problem.empty()) {
      error = fmt::format("header '{}' {}", printable(h.name), problem);
      return nullptr;
    }
    if (hasLineBreakOrNul(h.value) || !isValidUtf8(h.value)) {
      error = fmt::format("header '{}': the value has a line break, a NUL byte or invalid UTF-8",
                          h.name);
      return nullptr;
    }
  }
  for (const std::string& tag : spec.tags) {
    if (tag.empty() || tag.size() > 64 || firstControlChar(tag, false) >= 0 || !isValidUtf8(tag)) {
      error = fmt::format("invalid tag '{}'", printable(tag));
      return nullptr;
    }
  }
  if (!spec.bounceDomain.empty()) {
    std::string canonical;
    if (!parseDomain(spec.bounceDomain, canonical, why) || !isAscii(canonical) ||
        canonical.front() == '[') {
      error = fmt::format("invalid bounce_domain '{}'", printable(spec.bounceDomain));
      return nullptr;
    }
    spec.bounceDomain = canonical;
  }
  const std::vector<std::string>& variables = spec.variables;
  for (std::size_t i = 0; i < variables.size(); ++i) {
    if (variables[i].empty() || !isValidUtf8(variables[i]) || isEmailKey(variables[i])) {
      error = fmt::format("invalid variable name '{}'", variables[i]);
      return nullptr;
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (variables[j] == variables[i]) {
        error = fmt::format("duplicate variable '{}'", variables[i]);
        return nullptr;
      }
    }
  }
  auto campaign = std::make_shared<Campaign>();
  auto compile = [&](const std::string& source,
                     const std::string& what) -> std::optional<Template> {
    std::size_t offset = 0;
    auto t = Template::compile(source, why, offset);
    if (!t) {
      error = fmt::format("{}: {} at offset {}", what, why, offset);
      return std::nullopt;
    }
    const auto unknown = t->bind(variables);
    if (!unknown.empty()) {
      error = fmt::format("{}: unknown merge field '{}'", what, unknown.front()->variable);
      return std::nullopt;
    }
    return t;
  };
  auto subject = compile(spec.subject, "subject");
  if (!subject) {
    return nullptr;
  }
  campaign->subject_ = std::move(*subject);
  if (spec.text) {
    campaign->text_ = compile(*spec.text, "text");
    if (!campaign->text_) {
      return nullptr;
    }
  }
  if (spec.html) {
    campaign->html_ = compile(*spec.html, "html");
    if (!campaign->html_) {
      return nullptr;
    }
  }
  for (const CustomHeader& h : spec.headers) {
    auto t = compile(h.value, "header " + h.name);
    if (!t) {
      return nullptr;
    }
    campaign->headerValues_.push_back(std::move(*t));
  }
  if (spec.unsubscribe) {
    const UnsubscribeSettings& u = *spec.unsubscribe;
    if (u.url.empty() && u.mailto.empty()) {
      error = "unsubscribe needs a url, a mailto or both";
      return nullptr;
    }
    if (!u.url.empty()) {
      if (u.url.rfind("https://", 0) != 0 || u.url.size() > 512 ||
          u.url.find_first_of(" <>\"\r\n\t") != std::string::npos || !isAscii(u.url)) {
        error = fmt::format(
            "unsubscribe url '{}' must be an https:// URL of at most 512 "
            "characters without spaces, quotes or angle brackets",
            printable(u.url));
        return nullptr;
      }
      if (!secret) {
        if (u.secretFile.empty()) {
          error = "unsubscribe url needs a secret_file (the key of its tokens)";
          return nullptr;
        }
        secret = readSecretFile(u.secretFile, why);
        if (!secret) {
          error = why;
          return nullptr;
        }
      }
      campaign->secret_ = std::move(*secret);
    }
    if (!u.mailto.empty()) {
      auto address = parseAddress(u.mailto, why);
      if (!address) {
        error = fmt::format("unsubscribe mailto '{}': {}", printable(u.mailto), why);
        return nullptr;
      }
    }
  }
  if (spec.dkim) {
    if (!signer) {
      signer = DkimSigner::load(*spec.dkim, why);
      if (!signer) {
        error = why;
        return nullptr;
      }
    }
    campaign->signer_ = std::move(signer);
  }
  campaign->fromHeader_ = spec.from.header();
  if (spec.replyTo) {
    campaign->replyToHeader_ = spec.replyTo->header();
  }
  campaign->spec_ = std::move(spec);
  return campaign;
}

std::string Campaign::envelopeFrom(const JobIdentity& job) const {
  if (spec_.bounceDomain.empty()) {
    return spec_.from.address.str();
  }
  std::string out = "bounces+c";
  appendDecimal(out, job.campaignNumber);
  out += '-';
  appendDecimal(out, job.seq);
  out += '@';
  out += spec_.bounceDomain;
  return out;
}

std::string Campaign::unsubscribeToken(std::string_view recipient) const {
  if (secret_.empty()) {
    return {};
  }
  std::string data = spec_.id;
  data += '\n';
  data += recipient;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &length) == nullptr) {
    std::fprintf(stderr, "salvo: HMAC-SHA256 is unavailable\n");
    std::abort();
  }
  std::string token;
  appendBase64(token, std::string_view(reinterpret_cast<const char*>(mac), length));
  for (char& c : token) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  while (!token.empty() && token.back() == '=') {
    token.pop_back();
  }
  return token;
}

void Campaign::appendListUnsubscribe(std::string& out, std::string_view recipient) const {
  const UnsubscribeSettings& u = *spec_.unsubscribe;
  out += "List-Unsubscribe: ";
  if (!u.url.empty()) {
    out += '<';
    out += u.url;
    out += u.url.find('?') == std::string::npos ? '?' : '&';
    out += "c=";
    appendPercentEncoded(out, spec_.id);
    out += "&r=";
    appendPercentEncoded(out, recipient);
    out += "&t=";
    out += unsubscribeToken(recipient);
    out += '>';
  }
  if (!u.mailto.empty()) {
    if (!u.url.empty()) {
      out += ",\r\n ";  // folded: the URL alone can take most of a line
    }
    out += "<mailto:";
    out += u.mailto;
    out += "?subject=unsubscribe>";
  }
  out += "\r\n";
  if (!u.url.empty()) {
    out += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
  }
}

void Campaign::render(const JobIdentity& job, std::string_view recipient,
                      const std::vector<std::string>& values, std::int64_t nowMs,
                      std::string& out) const {
  // Per-thread scratch space: rendering reuses its capacity instead of allocating.
  thread_local std::string scratch;
  thread_local std::string headers;
  thread_local std::string body;
  headers.clear();
  body.clear();

  headers += "From: ";
  headers += fromHeader_;
  headers += "\r\nTo: ";
  headers += recipient;
  headers += "\r\n";
  if (spec_.replyTo) {
    headers += "Reply-To: ";
    headers += replyToHeader_;
    headers += "\r\n";
  }

  scratch.clear();
  subject_.render(recipient, values, scratch);
  appendUnstructuredHeader(headers, "Subject", scratch);

  headers += "Date: ";
  appendDate(headers, nowMs);
  headers += "\r\n";

  // Stable per job (a retry carries the same Message-ID); the hash keeps IDs of different
  // campaigns that reuse a number (a fresh data directory) apart.
  thread_local std::string seed;
  seed.clear();
  seed += spec_.id;
  seed += ':';
  appendDecimal(seed, job.campaignNumber);
  seed += ':';
  appendDecimal(seed, job.seq);
  unsigned char digest[kSha256Bytes];
  if (!sha256(seed, digest)) {
    // Only a broken OpenSSL installation gets here.
    std::fprintf(stderr, "salvo: SHA-256 is unavailable\n");
    std::abort();
  }
  headers += "Message-ID: <c";
  appendDecimal(headers, job.campaignNumber);
  headers += '.';
  appendDecimal(headers, job.seq);
  headers += '.';
  appendHex(headers, digest, 8);
  headers += '@';
  headers += spec_.from.address.domain;
  headers += ">\r\n";

  if (spec_.unsubscribe) {
    appendListUnsubscribe(headers, recipient);
  }
  for (std::size_t i = 0; i < headerValues_.size(); ++i) {
    scratch.clear();
    headerValues_[i].render(recipient, values, scratch);
    appendUnstructuredHeader(headers, spec_.headers[i].name, scratch);
  }

  headers += "MIME-Version: 1.0\r\n";
  if (text_ && html_) {
    // "=_" cannot occur in quoted-printable or base64 text; a 7bit part that happens to
    // contain the boundary is sent as quoted-printable instead.
    std::string boundary = "=_salvo_";
    appendHex(boundary, digest + 8, 12);
    fmt::format_to(std::back_inserter(headers),
                   "Content-Type: multipart/alternative; boundary=\"{}\"\r\n", boundary);
    const std::pair<const Template*, Template::Escape> parts[] = {
        {&*text_, Template::Escape::None}, {&*html_, Template::Escape::Html}};
    for (const auto& [t, escape] : parts) {
      scratch.clear();
      t->render(recipient, values, scratch, escape);
      TransferEncoding encoding = chooseTransferEncoding(scratch);
      if (encoding == TransferEncoding::SevenBit && scratch.find(boundary) != std::string::npos) {
        encoding = TransferEncoding::QuotedPrintable;
      }
      fmt::format_to(std::back_inserter(body),
                     "--{}\r\nContent-Type: {}; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: {}\r\n\r\n",
                     boundary, escape == Template::Escape::Html ? "text/html" : "text/plain",
                     transferEncodingName(encoding));
      appendEncodedBody(body, scratch, encoding);
      // The line break before a boundary belongs to the boundary (RFC 2046 section 5.1.1):
      // one more keeps the part's own final line break.
      body += "\r\n";
    }
    fmt::format_to(std::back_inserter(body), "--{}--\r\n", boundary);
  } else if (text_) {
    renderSingleBody(*text_, Template::Escape::None, "text/plain", recipient, values, headers,
                     body);
  } else {
    renderSingleBody(*html_, Template::Escape::Html, "text/html", recipient, values, headers, body);
  }

  out.reserve(out.size() + headers.size() + body.size() + (signer_ ? 700 : 2));
  if (signer_) {
    std::string error;
    if (!signer_->sign(headers, body, nowMs, out, error)) {
      // The key signed at load time; OpenSSL failing now is a broken invariant.
      std::fprintf(stderr, "salvo: DKIM signing failed: %s\n", error.c_str());
      std::abort();
    }
  }
  out += headers;
  out += "\r\n";
  out += body;
}

std::string Campaign::serialize() const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["id"] = spec_.id;
  j["from"] = {{"name", spec_.from.displayName}, {"address", spec_.from.address.str()}};
  if (spec_.replyTo) {
    j["reply_to"] = {{"name", spec_.replyTo->displayName},
                     {"address", spec_.replyTo->address.str()}};
  }
  j["subject"] = spec_.subject;
  if (spec_.text) {
    j["text"] = *spec_.text;
  }
  if (spec_.html) {
    j["html"] = *spec_.html;
  }
  j["headers"] = nlohmann::json::array();
  for (const CustomHeader& h : spec_.headers) {
    j["headers"].push_back({h.name, h.value});
  }
  j["tags"] = spec_.tags;
  j["start_at_ms"] = spec_.startAtMs;
  if (spec_.rate) {
    j["rate"] = {{"messages", spec_.rate->messages}, {"period_ms", spec_.rate->periodMs}};
  }
  if (!spec_.retry.empty()) {
    nlohmann::json& r = j["retry"] = nlohmann::json::object();
    for (const auto& [key, value] : retryFields(spec_.retry)) {
      if (*value) {
        r[key] = **value;
      }
    }
  }
  if (spec_.unsubscribe) {
    j["unsubscribe"] = {{"url", spec_.unsubscribe->url},
                        {"mailto", spec_.unsubscribe->mailto},
                        {"secret_file", spec_.unsubscribe->secretFile}};
  }
  if (spec_.dkim) {
    j["dkim"] = {{"domain", spec_.dkim->domain},
                 {"selector", spec_.dkim->selector},
                 {"key_file", spec_.dkim->keyFile},
                 {"algorithm", dkimAlgorithmName(spec_.dkim->algorithm)}};
  }
  j["bounce_domain"] = spec_.bounceDomain;
  j["variables"] = spec_.variables;
  // build() checked that every string is valid UTF-8, so dump() cannot throw.
  return j.dump();
}

std::shared_ptr<const Campaign> Campaign::deserialize(std::string_view blob, std::string& error) {
  const nlohmann::json j = nlohmann::json::parse(blob, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = "campaign record is not a JSON object";
    return nullptr;
  }
  const auto format = j.find("format");
  if (format == j.end() || !format->is_number_integer() || format->get<int>() < 1 ||
      format->get<int>() > kFormat) {
    error = fmt::format("unsupported campaign record format (expected 1 to {})", kFormat);
    return nullptr;
  }
  bool ok = true;
  auto fail = [&](std::string message) {
    if (ok) {
      error = "campaign record: " + std::move(message);
    }
    ok = false;
  };
  auto stringField = [&](const nlohmann::json& obj, const char* name, std::string& out,
                         bool required = true) {
    const auto it = obj.find(name);
    if (it == obj.end() && !required) {
      return;
    }
    if (it == obj.end() || !it->is_string()) {
      fail(fmt::format("'{}' is missing or not a string", name));
      return;
    }
    out = it->get<std::string>();
  };
  auto mailboxField = [&](const char* key) -> std::optional<Mailbox> {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_object()) {
      fail(fmt::format("'{}' is missing or not an object", key));
      return std::nullopt;
    }
    std::string name;
    std::string address;
    stringField(*it, "name", name);
    stringField(*it, "address", address);
    if (!ok) {
      return std::nullopt;
    }
    std::string why;
    auto parsed = parseAddress(address, why);
    if (!parsed) {
      fail(fmt::format("{} address '{}': {}", key, address, why));
      return std::nullopt;
    }
    return Mailbox{std::move(name), std::move(*parsed)};
  };
  CampaignSpec spec;
  stringField(j, "id", spec.id);
  stringField(j, "subject", spec.subject);
  if (auto from = mailboxField("from")) {
    spec.from = std::move(*from);
  }
  if (j.contains("reply_to")) {
    spec.replyTo = mailboxField("reply_to");
  }
  for (const char* body : {"text", "html"}) {
    if (j.contains(body)) {
      std::string source;
      stringField(j, body, source);
      (std::string_view(body) == "text" ? spec.text : spec.html) = std::move(source);
    }
  }
  auto stringList = [&](const char* name, std::vector<std::string>& out, bool required) {
    const auto it = j.find(name);
    if (it == j.end() && !required) {
      return;
    }
    if (it == j.end() || !it->is_array()) {
      fail(fmt::format("'{}' is missing or not a list", name));
      return;
    }
    for (const auto& v : *it) {
      if (!v.is_string()) {
        fail(fmt::format("'{}' holds a non-string", name));
        return;
      }
      out.push_back(v.get<std::string>());
    }
  };
  stringList("variables", spec.variables, true);
  stringList("tags", spec.tags, false);
  if (const auto it = j.find("headers"); it != j.end()) {
    if (!it->is_array()) {
      fail("'headers' is not a list");
    } else {
      for (const auto& h : *it) {
        if (!h.is_array() || h.size() != 2 || !h[0].is_string() || !h[1].is_string()) {
          fail("'headers' holds something other than a [name, value] pair");
          break;
        }
        spec.headers.push_back({h[0].get<std::string>(), h[1].get<std::string>()});
      }
    }
  }
  if (const auto it = j.find("start_at_ms"); it != j.end()) {
    if (!it->is_number_integer()) {
      fail("'start_at_ms' is not an integer");
    } else {
      spec.startAtMs = it->get<std::int64_t>();
    }
  }
  if (const auto it = j.find("rate"); it != j.end()) {
    const auto m = it->is_object() ? it->find("messages") : it->end();
    const auto p = it->is_object() ? it->find("period_ms") : it->end();
    if (!it->is_object() || m == it->end() || p == it->end() || !m->is_number_unsigned() ||
        !p->is_number_unsigned()) {
      fail("'rate' is malformed");
    } else {
      spec.rate = Rate{m->get<std::uint64_t>(), p->get<std::uint64_t>()};
    }
  }
  if (const auto it = j.find("retry"); it != j.end()) {
    if (!it->is_object()) {
      fail("'retry' is not an object");
    } else {
      for (const auto& [key, value] : retryFields(spec.retry)) {
        const auto v = it->find(key);
        if (v == it->end()) {
          continue;
        }
        if (!v->is_number_unsigned() || v->get<std::uint64_t>() == 0 ||
            v->get<std::uint64_t>() > UINT32_MAX) {
          fail(fmt::format("'retry.{}' is not a number of seconds", key));
        } else {
          *value = static_cast<std::uint32_t>(v->get<std::uint64_t>());
        }
      }
    }
  }
  if (const auto it = j.find("unsubscribe"); it != j.end()) {
    UnsubscribeSettings u;
    if (!it->is_object()) {
      fail("'unsubscribe' is not an object");
    } else {
      stringField(*it, "url", u.url);
      stringField(*it, "mailto", u.mailto);
      stringField(*it, "secret_file", u.secretFile);
      spec.unsubscribe = std::move(u);
    }
  }
  if (const auto it = j.find("dkim"); it != j.end()) {
    DkimSettings d;
    std::string algorithm;
    if (!it->is_object()) {
      fail("'dkim' is not an object");
    } else {
      stringField(*it, "domain", d.domain);
      stringField(*it, "selector", d.selector);
      stringField(*it, "key_file", d.keyFile);
      stringField(*it, "algorithm", algorithm);
      if (ok && !parseDkimAlgorithm(algorithm, d.algorithm)) {
        fail(fmt::format("unknown DKIM algorithm '{}'", algorithm));
      }
      spec.dkim = std::move(d);
    }
  }
  stringField(j, "bounce_domain", spec.bounceDomain, /*required=*/false);
  if (!ok) {
    return nullptr;
  }
  std::string why;
  auto campaign = build(std::move(spec), nullptr, std::nullopt, why);
  if (!campaign) {
    error = "campaign record: " + why;
    return nullptr;
  }
  return campaign;
}

}  // namespace salvo::campaigns

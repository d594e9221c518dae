// Campaign: construction (shared by the loader and deserialize), rendering, storage form.
#include "campaigns/campaign.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "campaigns/header_encoding.h"
#include "campaigns/text.h"

namespace salvo::campaigns {

namespace {

constexpr int kFormat = 1;

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
  fmt::format_to(std::back_inserter(out), "{}, {} {} {:04} {:02}:{:02}:{:02} +0000", kDays[weekday],
                 day, kMonths[month - 1], year, secondOfDay / 3600, secondOfDay / 60 % 60,
                 secondOfDay % 60);
}

// SHA-256 through a per-thread context and a digest fetched once: the one-shot SHA256()
// looks the algorithm up on every call, which costs more than the hashing here.
void sha256(std::string_view data, unsigned char* digest) {
  struct Hasher {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Hasher() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Hasher hasher;
  unsigned int length = 0;
  if (hasher.md == nullptr || hasher.ctx == nullptr ||
      EVP_DigestInit_ex(hasher.ctx, hasher.md, nullptr) != 1 ||
      EVP_DigestUpdate(hasher.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(hasher.ctx, digest, &length) != 1) {
    // Only a broken OpenSSL installation gets here.
    std::fprintf(stderr, "salvo: SHA-256 is unavailable\n");
    std::abort();
  }
}

// Appends `body` with every line ending (CRLF, LF or a lone CR) written as CRLF, and a
// final CRLF when the body does not end with one.
void appendCrlfBody(std::string& out, std::string_view body) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\r' && c != '\n') {
      continue;
    }
    out.append(body.data() + start, i - start);
    out += "\r\n";
    if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
      ++i;
    }
    start = i + 1;
  }
  out.append(body.data() + start, body.size() - start);
  if (start != body.size()) {
    out += "\r\n";
  }
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

std::shared_ptr<Campaign> Campaign::build(std::string id, Mailbox from, std::string subject,
                                          std::string text, std::vector<std::string> variables,
                                          std::string& error) {
  if (!isValidCampaignId(id)) {
    error = fmt::format("invalid campaign id '{}'", id);
    return nullptr;
  }
  std::string why;
  if (!checkDisplayName(from.displayName, why)) {
    error = fmt::format("invalid from display name: {}", why);
    return nullptr;
  }
  if (hasLineBreakOrNul(subject)) {
    error = "subject contains a line break or NUL byte";
    return nullptr;
  }
  if (!isValidUtf8(subject) || !isValidUtf8(text)) {
    error = "subject or text is not valid UTF-8";
    return nullptr;
  }
  if (text.find('\0') != std::string::npos) {
    error = "text contains a NUL byte";
    return nullptr;
  }
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
  std::size_t offset = 0;
  auto subjectTemplate = Template::compile(subject, why, offset);
  if (!subjectTemplate) {
    error = fmt::format("subject: {} at offset {}", why, offset);
    return nullptr;
  }
  auto textTemplate = Template::compile(text, why, offset);
  if (!textTemplate) {
    error = fmt::format("text: {} at offset {}", why, offset);
    return nullptr;
  }
  for (Template* t : {&*subjectTemplate, &*textTemplate}) {
    const auto unknown = t->bind(variables);
    if (!unknown.empty()) {
      error = fmt::format("{}: unknown merge field '{}'",
                          t == &*subjectTemplate ? "subject" : "text", unknown.front()->variable);
      return nullptr;
    }
  }
  campaign->id_ = std::move(id);
  campaign->from_ = std::move(from);
  campaign->fromHeader_ = campaign->from_.header();
  campaign->subjectSource_ = std::move(subject);
  campaign->textSource_ = std::move(text);
  campaign->subject_ = std::move(*subjectTemplate);
  campaign->text_ = std::move(*textTemplate);
  campaign->variables_ = std::move(variables);
  return campaign;
}

std::string Campaign::envelopeFrom(const JobIdentity& /*job*/) const {
  return from_.address.str();
}

void Campaign::render(const JobIdentity& job, std::string_view recipient,
                      const std::vector<std::string>& values, std::int64_t nowMs,
                      std::string& out) const {
  // Per-thread scratch space: rendering reuses its capacity instead of allocating.
  thread_local std::string scratch;
  out.reserve(out.size() + 400 + fromHeader_.size() + subjectSource_.size() +
              textSource_.size() * 2);

  out += "From: ";
  out += fromHeader_;
  out += "\r\nTo: ";
  out += recipient;
  out += "\r\n";

  scratch.clear();
  subject_.render(recipient, values, scratch);
  appendUnstructuredHeader(out, "Subject", scratch);

  out += "Date: ";
  appendDate(out, nowMs);
  out += "\r\n";

  // Stable per job (a retry carries the same Message-ID); the hash keeps IDs of different
  // campaigns that reuse a number (a fresh data directory) apart.
  thread_local std::string seed;
  seed.clear();
  seed += id_;
  fmt::format_to(std::back_inserter(seed), ":{}:{}", job.campaignNumber, job.seq);
  unsigned char digest[EVP_MAX_MD_SIZE];
  sha256(seed, digest);
  fmt::format_to(std::back_inserter(out), "Message-ID: <c{}.{}.", job.campaignNumber, job.seq);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  out += '@';
  out += from_.address.domain;
  out += ">\r\n";

  out += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n";
  scratch.clear();
  text_.render(recipient, values, scratch);
  out += isAscii(scratch) ? "Content-Transfer-Encoding: 7bit\r\n\r\n"
                          : "Content-Transfer-Encoding: 8bit\r\n\r\n";
  appendCrlfBody(out, scratch);
}

std::string Campaign::serialize() const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["id"] = id_;
  j["from"] = {{"name", from_.displayName}, {"address", from_.address.str()}};
  j["subject"] = subjectSource_;
  j["text"] = textSource_;
  j["variables"] = variables_;
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
  if (format == j.end() || !format->is_number_integer() || format->get<int>() != kFormat) {
    error = fmt::format("unsupported campaign record format (expected {})", kFormat);
    return nullptr;
  }
  auto stringField = [&](const nlohmann::json& obj, const char* name, std::string& out) {
    const auto it = obj.find(name);
    if (it == obj.end() || !it->is_string()) {
      error = fmt::format("campaign record: '{}' is missing or not a string", name);
      return false;
    }
    out = it->get<std::string>();
    return true;
  };
  std::string id;
  std::string subject;
  std::string text;
  std::string name;
  std::string address;
  const auto from = j.find("from");
  if (from == j.end() || !from->is_object()) {
    error = "campaign record: 'from' is missing or not an object";
    return nullptr;
  }
  if (!stringField(j, "id", id) || !stringField(j, "subject", subject) ||
      !stringField(j, "text", text) || !stringField(*from, "name", name) ||
      !stringField(*from, "address", address)) {
    return nullptr;
  }
  const auto vars = j.find("variables");
  if (vars == j.end() || !vars->is_array()) {
    error = "campaign record: 'variables' is missing or not a list";
    return nullptr;
  }
  std::vector<std::string> variables;
  for (const auto& v : *vars) {
    if (!v.is_string()) {
      error = "campaign record: 'variables' holds a non-string";
      return nullptr;
    }
    variables.push_back(v.get<std::string>());
  }
  std::string why;
  auto parsed = parseAddress(address, why);
  if (!parsed) {
    error = fmt::format("campaign record: from address '{}': {}", address, why);
    return nullptr;
  }
  Mailbox mailbox{std::move(name), std::move(*parsed)};
  auto campaign = build(std::move(id), std::move(mailbox), std::move(subject), std::move(text),
                        std::move(variables), why);
  if (!campaign) {
    error = "campaign record: " + why;
    return nullptr;
  }
  return campaign;
}

}  // namespace salvo::campaigns

// Campaigns: the YAML format, validation, recipient streams and message rendering.
// Contract: `loadCampaign` parses and validates a campaign file and reports every error
// with file:line:column (CSV rows with their line). `Campaign` is the compiled, immutable
// form stored once in the queue (serialize/deserialize) and shared read-only by the
// delivery threads; `RecipientReader` streams recipients (inline list or CSV) without
// loading the whole list. Never touches sockets or RocksDB.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campaigns/address.h"
#include "campaigns/config.h"
#include "campaigns/diagnostics.h"
#include "campaigns/dkim.h"
#include "campaigns/template.h"

namespace salvo::campaigns {

struct Recipient {
  std::string email;                // validated bare address
  std::vector<std::string> values;  // merge values in Campaign::variables() order
  int line = 0;                     // source line (YAML or CSV) for messages
};

// Campaign ids: [A-Za-z0-9._-]{1,64} (they appear in keys, file names and Message-IDs).
bool isValidCampaignId(std::string_view id);

// Identity of one job, for stable per-job headers (Message-ID) and VERP.
struct JobIdentity {
  std::uint32_t campaignNumber = 0;
  std::uint64_t seq = 0;
};

// A sending rate: `messages` per `periodMs` ("100/s", "5000/h"). Stored, not enforced here.
struct Rate {
  std::uint64_t messages = 0;
  std::uint64_t periodMs = 0;
};
// "N/s", "N/m", "N/h" or "N/d" with 1 <= N <= 1e9; nullopt otherwise.
std::optional<Rate> parseRate(std::string_view text);
// An RFC 3339 timestamp ("2026-12-01T09:00:00Z", "2026-12-01T10:00:00.5+01:00") in
// milliseconds since the epoch; nullopt when malformed.
std::optional<std::int64_t> parseRfc3339Ms(std::string_view text);

// A custom header: a name that is not structural, and a value template.
struct CustomHeader {
  std::string name;
  std::string value;
};
// Why `name` cannot be a custom header ("is set by Salvo", "is not a valid field name"),
// or empty when it can.
std::string customHeaderProblem(std::string_view name);

struct UnsubscribeSettings {
  std::string url;         // https URL; per-recipient parameters are appended
  std::string mailto;      // bare address
  std::string secretFile;  // HMAC key for the URL's token (required with url)
};

// Everything a campaign is made of, as the loader read it (template sources, file paths).
struct CampaignSpec {
  std::string id;
  Mailbox from;
  std::optional<Mailbox> replyTo;
  std::string subject;
  std::optional<std::string> text;
  std::optional<std::string> html;
  std::vector<CustomHeader> headers;
  std::vector<std::string> tags;
  std::int64_t startAtMs = 0;  // 0: send now
  std::optional<Rate> rate;
  // The campaign's own retry schedule, over the daemon's (salvo.yaml `retry:`); empty: the
  // daemon's as it is.
  RetryOverride retry;
  std::optional<UnsubscribeSettings> unsubscribe;
  std::optional<DkimSettings> dkim;
  std::string bounceDomain;  // VERP domain; empty: the envelope sender is the From address
  std::vector<std::string> variables;
};

class Campaign {
 public:
  const std::string& id() const { return spec_.id; }
  const Mailbox& from() const { return spec_.from; }
  const std::optional<Mailbox>& replyTo() const { return spec_.replyTo; }
  // Merge variable names, in the order recipients carry values; "email" is implicit and
  // not listed.
  const std::vector<std::string>& variables() const { return spec_.variables; }
  const std::vector<std::string>& tags() const { return spec_.tags; }
  const std::vector<CustomHeader>& headers() const { return spec_.headers; }
  // When the campaign's jobs become due (ms since the epoch); 0 when it sends at once.
  std::int64_t startAtMs() const { return spec_.startAtMs; }
  const std::optional<Rate>& rate() const { return spec_.rate; }
  // Retry keys the campaign sets; the daemon's schedule supplies the others.
  const RetryOverride& retry() const { return spec_.retry; }
  const std::optional<UnsubscribeSettings>& unsubscribe() const { return spec_.unsubscribe; }
  const std::optional<DkimSettings>& dkim() const { return spec_.dkim; }
  // Whether render() signs: the one costly part of rendering (an RSA signature).
  bool signs() const { return signer_ != nullptr; }
  const std::string& bounceDomain() const { return spec_.bounceDomain; }

  // The envelope sender (bare address) for a job: bounces+c<campaign>-<seq>@<bounce
  // domain> (VERP) when a bounce domain is set, else the From address.
  std::string envelopeFrom(const JobIdentity& job) const;
  // Renders the full RFC 5322 message for one recipient into `out` (appended): a
  // DKIM-Signature when signing, From, To, Reply-To, Subject, Date (from `nowMs`, UTC),
  // Message-ID (stable per job), List-Unsubscribe(-Post), custom headers, MIME-Version,
  // then a text/plain or text/html body or a multipart/alternative with both, each in
  // 7bit, quoted-printable or base64 as its content needs. CRLF line ends throughout.
  void render(const JobIdentity& job, std::string_view recipient,
              const std::vector<std::string>& values, std::int64_t nowMs, std::string& out) const;

  // The one-click unsubscribe token for a recipient: base64url (no padding) of
  // HMAC-SHA256(secret, campaign id "\n" recipient). Empty without an unsubscribe URL.
  std::string unsubscribeToken(std::string_view recipient) const;

  // The stored form (JSON; key and secret files by path, never their content);
  // deserialize recompiles templates and loads the key and secret. nullptr + error on bad
  // data or an unreadable key.
  std::string serialize() const;
  static std::shared_ptr<const Campaign> deserialize(std::string_view blob, std::string& error);

  // The template sources, as written in the campaign file (or read from its files).
  const std::string& subjectSource() const { return spec_.subject; }
  const std::string& textSource() const { return spec_.text ? *spec_.text : kEmpty; }
  const std::string& htmlSource() const { return spec_.html ? *spec_.html : kEmpty; }

 private:
  friend class CampaignLoader;
  static const std::string kEmpty;
  // The one way a Campaign is made, shared by the loader and deserialize() so both give
  // the same object: checks every field, compiles every template and binds it to the
  // variables, loads the DKIM key and the unsubscribe secret (unless the loader already
  // did: `signer`, `secret`). nullptr and `error` on any problem.
  static std::shared_ptr<Campaign> build(CampaignSpec spec, std::unique_ptr<DkimSigner> signer,
                                         std::optional<std::string> secret, std::string& error);

  void appendListUnsubscribe(std::string& out, std::string_view recipient) const;

  CampaignSpec spec_;
  std::string fromHeader_;     // spec_.from.header(), computed once
  std::string replyToHeader_;  // likewise
  Template subject_;
  std::optional<Template> text_;
  std::optional<Template> html_;
  std::vector<Template> headerValues_;  // parallel to spec_.headers
  std::unique_ptr<DkimSigner> signer_;
  std::string secret_;
};

// Reads an unsubscribe secret file: refused when readable by group or others, or shorter
// than 16 bytes (a final line end is not part of the secret).
std::optional<std::string> readSecretFile(const std::string& path, std::string& error);

// Where recipients come from, resolved to absolute paths.
struct RecipientSource {
  enum class Kind { Inline, Csv } kind = Kind::Inline;
  std::string file;  // the YAML file (inline) or the CSV file
  char delimiter = ',';
  std::string shownAs;  // `file` as messages name it (relative when the YAML path was)
};

// The loader's view of the recipient source that readers need: the inline list as parsed,
// which variables a value may carry a line feed in. Defined in the loader.
struct RecipientSourceState;

class RecipientReader {
 public:
  virtual ~RecipientReader() = default;
  // Next valid recipient; false at the end. Invalid rows are reported to `diags` and
  // skipped, so one pass finds every error.
  virtual bool next(Recipient& out, Diagnostics& diags) = 0;
};

struct LoadedCampaign {
  std::shared_ptr<const Campaign> campaign;
  RecipientSource source;
  std::string yamlFile;
  // Opens a fresh stream over the recipients (call once per pass). nullptr + diagnostic
  // when the source cannot be opened (e.g. a missing CSV file: exit 66).
  std::unique_ptr<RecipientReader> openRecipients(Diagnostics& diags) const;

  std::shared_ptr<const RecipientSourceState> state;  // set by the loader
};

// Parses and validates `path`. On any error `diags` is non-empty and the result empty.
// Recipients are not read here; validateCampaign() does the full check.
std::optional<LoadedCampaign> loadCampaign(const std::string& path, Diagnostics& diags);

// Full validation: loadCampaign plus one pass over every recipient. Returns the count.
std::optional<LoadedCampaign> validateCampaign(const std::string& path, Diagnostics& diags,
                                               std::uint64_t& recipients);

}  // namespace salvo::campaigns

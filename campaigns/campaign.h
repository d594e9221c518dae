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
#include "campaigns/diagnostics.h"
#include "campaigns/template.h"

namespace salvo::campaigns {

struct Recipient {
  std::string email;                // validated bare address
  std::vector<std::string> values;  // merge values in Campaign::variables() order
  int line = 0;                     // source line (YAML or CSV) for messages
};

// Campaign ids: [A-Za-z0-9._-]{1,64} (they appear in keys, file names and Message-IDs).
bool isValidCampaignId(std::string_view id);

// Identity of one job, for stable per-job headers (Message-ID) and VERP later.
struct JobIdentity {
  std::uint32_t campaignNumber = 0;
  std::uint64_t seq = 0;
};

class Campaign {
 public:
  const std::string& id() const { return id_; }
  const Mailbox& from() const { return from_; }
  // Merge variable names, in the order recipients carry values; "email" is implicit and
  // not listed.
  const std::vector<std::string>& variables() const { return variables_; }

  // The envelope sender (bare address) for a job.
  std::string envelopeFrom(const JobIdentity& job) const;
  // Renders the full RFC 5322 message for one recipient into `out` (appended): From, To,
  // Subject, Date (from `nowMs`, UTC), Message-ID (stable per job), MIME-Version,
  // Content-Type/Transfer-Encoding, a blank line, the body. CRLF line ends throughout.
  void render(const JobIdentity& job, std::string_view recipient,
              const std::vector<std::string>& values, std::int64_t nowMs, std::string& out) const;

  // The stored form (JSON); deserialize recompiles templates. nullptr + error on bad data.
  std::string serialize() const;
  static std::shared_ptr<const Campaign> deserialize(std::string_view blob, std::string& error);

  // The template sources, as written in the campaign file.
  const std::string& subjectSource() const { return subjectSource_; }
  const std::string& textSource() const { return textSource_; }

 private:
  friend class CampaignLoader;
  // The one way a Campaign is made, shared by the loader and deserialize() so both give
  // the same object: checks every field, compiles both templates and binds them to
  // `variables`. nullptr and `error` on any problem.
  static std::shared_ptr<Campaign> build(std::string id, Mailbox from, std::string subject,
                                         std::string text, std::vector<std::string> variables,
                                         std::string& error);

  std::string fromHeader_;  // from_.header(), computed once
  std::string id_;
  Mailbox from_;
  std::string subjectSource_;
  std::string textSource_;
  Template subject_;
  Template text_;
  std::vector<std::string> variables_;
};

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

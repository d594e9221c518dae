// Loading a campaign file: the YAML schema, template positions, recipient sources and the
// per-recipient checks shared by the inline and CSV readers.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "campaigns/campaign.h"
#include "campaigns/csv.h"
#include "campaigns/header_encoding.h"
#include "campaigns/text.h"
#include "campaigns/yaml_support.h"

namespace salvo::campaigns {

struct RecipientSourceState {
  std::vector<std::string> variables;
  // Per variable: may a value carry a line feed? Only when it lands in the text body alone.
  std::vector<char> lineFeedAllowed;
  // Inline lists: the parsed 'recipients' sequence and the file it came from.
  YAML::Node list;
  std::string yamlText;
  std::string yamlShown;
};

namespace {

const std::vector<std::string_view> kCampaignKeys = {
    "id",        "from",        "reply_to", "subject",       "text",       "html",
    "text_file", "html_file",   "headers",  "tags",          "start_at",   "rate",
    "retry",     "unsubscribe", "dkim",     "bounce_domain", "recipients", "recipients_csv"};

// Line and column of byte `offset` in `text`.
YamlPosition positionInText(std::string_view text, std::size_t offset) {
  YamlPosition at{1, 1};
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++at.line;
      at.column = 1;
    } else {
      ++at.column;
    }
  }
  return at;
}

// A DKIM selector or similar: dot-separated labels of letters, digits, '-' and '_'.
bool isValidSelector(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '.' || s.back() == '.') {
    return false;
  }
  char previous = 0;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || (c == '.' && previous != '.');
    if (!ok) {
      return false;
    }
    previous = c;
  }
  return true;
}

// Names a recipient in messages: "row 12" (CSV, the spreadsheet row) or "recipient 3"
// (inline, 1-based). Formatted only when there is something to report.
struct RecipientLabel {
  std::string_view kind;
  std::size_t number;
  std::string str() const { return fmt::format("{} {}", kind, number); }
};

// Checks one recipient and reports every problem with it. On success `out.email` is the
// canonical address.
bool checkRecipient(const RecipientSourceState& state, const std::string& file,
                    RecipientLabel label, std::string_view email, YamlPosition emailAt,
                    const std::vector<YamlPosition>& valueAt, Recipient& out, Diagnostics& diags) {
  bool ok = true;
  email = trimBlanks(email);
  std::string why;
  auto address = parseAddress(email, why);
  if (!address) {
    diags.add(file, emailAt.line, emailAt.column,
              fmt::format("recipient '{}': {}", printable(email), why));
    ok = false;
  }
  for (std::size_t i = 0; i < out.values.size(); ++i) {
    const std::string& value = out.values[i];
    const char* problem = nullptr;
    if (value.find('\r') != std::string::npos ||
        (!state.lineFeedAllowed[i] && value.find('\n') != std::string::npos)) {
      problem = "contains a line break";
    } else if (value.find('\0') != std::string::npos) {
      problem = "contains a NUL byte";
    } else if (!isValidUtf8(value)) {
      problem = "is not valid UTF-8 (save the file as UTF-8)";
    }
    if (problem != nullptr) {
      diags.add(file, valueAt[i].line, valueAt[i].column,
                fmt::format("{} ({}): value of '{}' {}", label.str(), printable(email),
                            printable(state.variables[i]), problem));
      ok = false;
    }
  }
  if (ok) {
    out.email = address->str();
  }
  return ok;
}

class InlineRecipientReader final : public RecipientReader {
 public:
  explicit InlineRecipientReader(std::shared_ptr<const RecipientSourceState> state)
      : state_(std::move(state)), it_(state_->list.begin()), end_(state_->list.end()) {
    for (std::size_t i = 0; i < state_->variables.size(); ++i) {
      index_.emplace(state_->variables[i], i);
    }
  }

  bool next(Recipient& out, Diagnostics& diags) override {
    const std::string& file = state_->yamlShown;
    while (it_ != end_) {
      const YAML::Node entry = *it_;
      ++it_;
      ++ordinal_;
      const RecipientLabel label{"recipient", ordinal_};
      const YamlPosition entryAt = positionOf(entry.Mark());
      if (!entry.IsMap()) {
        diags.add(file, entryAt.line, entryAt.column,
                  fmt::format("{}: expected a map like {{email: ann@example.com, name: Ann}}",
                              label.str()));
        continue;
      }
      out.values.assign(state_->variables.size(), std::string());
      positions_.assign(state_->variables.size(), entryAt);
      seen_.assign(state_->variables.size(), 0);
      std::optional<std::string> email;
      YamlPosition emailAt = entryAt;
      bool ok = true;
      for (auto field = entry.begin(); field != entry.end(); ++field) {
        const YAML::Node key = field->first;
        const YAML::Node value = field->second;
        const YamlPosition keyAt = positionOf(key.Mark());
        if (!key.IsScalar()) {
          diags.add(file, keyAt.line, keyAt.column,
                    fmt::format("{}: keys must be plain names", label.str()));
          ok = false;
          continue;
        }
        const std::string& name = key.Scalar();
        auto text = scalarText(value, state_->yamlText);
        const YamlPosition valueAt = valuePosition(key, value, state_->yamlText);
        if (!text) {
          diags.add(file, valueAt.line, valueAt.column,
                    fmt::format("{}: '{}' must be a single value, not a {}", label.str(),
                                printable(name), value.IsMap() ? "map" : "list"));
          ok = false;
          continue;
        }
        bool duplicate = false;
        if (isEmailKey(name)) {
          duplicate = email.has_value();
          if (!duplicate) {
            email = std::move(*text);
            emailAt = valueAt;
          }
        } else {
          // The loader collected every key of every entry, so the lookup succeeds.
          const std::size_t i = index_.at(name);
          duplicate = seen_[i] != 0;
          seen_[i] = 1;
          out.values[i] = std::move(*text);
          positions_[i] = valueAt;
        }
        if (duplicate) {
          diags.add(file, keyAt.line, keyAt.column,
                    fmt::format("{}: duplicate key '{}'", label.str(), printable(name)));
          ok = false;
        }
      }
      if (!email) {
        diags.add(file, entryAt.line, entryAt.column,
                  fmt::format("{}: missing 'email'", label.str()));
        continue;
      }
      if (checkRecipient(*state_, file, label, *email, emailAt, positions_, out, diags) && ok) {
        out.line = entryAt.line;
        return true;
      }
    }
    return false;
  }

 private:
  std::shared_ptr<const RecipientSourceState> state_;
  YAML::const_iterator it_;
  YAML::const_iterator end_;
  std::unordered_map<std::string, std::size_t> index_;
  std::size_t ordinal_ = 0;
  std::vector<YamlPosition> positions_;
  std::vector<char> seen_;
};

class CsvRecipientReader final : public RecipientReader {
 public:
  static constexpr std::size_t kBufferSize = 1 << 16;

  CsvRecipientReader(std::string path, std::string shown, char delimiter)
      : path_(std::move(path)), shown_(std::move(shown)), delimiter_(delimiter) {}

  // Opens the file. false and the system's reason when it cannot be read.
  bool open(std::string& error) {
    std::error_code ec;
    if (std::filesystem::is_directory(path_, ec)) {
      error = std::strerror(EISDIR);
      return false;
    }
    in_.rdbuf()->pubsetbuf(buffer_.get(), kBufferSize);
    errno = 0;
    in_.open(path_, std::ios::binary);
    if (!in_.is_open()) {
      error = errno != 0 ? std::strerror(errno) : "cannot be read";
      return false;
    }
    csv_.emplace(in_, delimiter_);
    return true;
  }

  // Reads and checks the header row; reports its problems. On success `variables` holds
  // the column names other than 'email', in order.
  bool readHeader(std::vector<std::string>& variables, Diagnostics& diags) {
    const CsvReader::Result r = csv_->next(fields_);
    if (r == CsvReader::Result::End) {
      diags.add(shown_, 0, 0,
                "recipients file is empty: the first row must name the columns, one of them "
                "'email'");
      return false;
    }
    if (r == CsvReader::Result::Error) {
      diags.add(shown_, csv_->errorPosition().line, csv_->errorPosition().column, csv_->error());
      return false;
    }
    headerLine_ = csv_->positions().front().line;
    variables.clear();
    columnVariable_.assign(fields_.size(), kNoVariable);
    bool ok = true;
    bool haveEmail = false;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      const std::string name(trimBlanks(fields_[i]));
      const CsvPosition at = csv_->positions()[i];
      names.push_back(printable(name));
      std::string problem;
      if (name.empty()) {
        problem = fmt::format("column {} of the header row has no name", i + 1);
      } else if (!isValidUtf8(name)) {
        problem = "column name is not valid UTF-8 (save the file as UTF-8)";
      } else if (isEmailKey(name)) {
        if (haveEmail) {
          problem = fmt::format("duplicate column '{}' in the header row", name);
        } else {
          haveEmail = true;
          emailColumn_ = i;
        }
      } else if (std::find(variables.begin(), variables.end(), name) != variables.end()) {
        problem = fmt::format("duplicate column '{}' in the header row", printable(name));
      } else {
        columnVariable_[i] = variables.size();
        variables.push_back(name);
      }
      if (!problem.empty()) {
        diags.add(shown_, at.line, at.column, std::move(problem));
        ok = false;
      }
    }
    if (!haveEmail) {
      diags.add(shown_, headerLine_, 1,
                fmt::format("the header row has no 'email' column (columns: {})",
                            fmt::join(names, ", ")));
      ok = false;
    }
    return ok;
  }

  void setState(std::shared_ptr<const RecipientSourceState> state) { state_ = std::move(state); }

  bool next(Recipient& out, Diagnostics& diags) override {
    while (true) {
      const CsvReader::Result r = csv_->next(fields_);
      if (r == CsvReader::Result::End) {
        return false;
      }
      if (r == CsvReader::Result::Error) {
        diags.add(shown_, csv_->errorPosition().line, csv_->errorPosition().column, csv_->error());
        continue;
      }
      const std::vector<CsvPosition>& at = csv_->positions();
      out.values.resize(state_->variables.size());
      valueAt_.resize(state_->variables.size());
      for (std::size_t i = 0; i < fields_.size(); ++i) {
        const std::size_t v = columnVariable_[i];
        if (v != kNoVariable) {
          out.values[v].swap(fields_[i]);
          valueAt_[v] = YamlPosition{at[i].line, at[i].column};
        }
      }
      const YamlPosition emailAt{at[emailColumn_].line, at[emailColumn_].column};
      const RecipientLabel label{"row", csv_->recordNumber()};
      if (checkRecipient(*state_, shown_, label, fields_[emailColumn_], emailAt, valueAt_, out,
                         diags)) {
        out.line = at.front().line;
        return true;
      }
    }
  }

 private:
  static constexpr std::size_t kNoVariable = static_cast<std::size_t>(-1);

  std::string path_;
  std::string shown_;
  char delimiter_;
  std::unique_ptr<char[]> buffer_ = std::make_unique<char[]>(kBufferSize);
  std::ifstream in_;
  std::optional<CsvReader> csv_;
  std::shared_ptr<const RecipientSourceState> state_;
  std::vector<std::string> fields_;
  std::vector<YamlPosition> valueAt_;
  std::vector<std::size_t> columnVariable_;
  std::size_t emailColumn_ = 0;
  int headerLine_ = 1;
};

// Position in the YAML file of the "{{" at byte `offset` of a scalar's value. The value
// and the raw text hold the same sequence of "{{" (escapes that spell braces aside), so
// the n-th one in the value is the n-th one in the raw text from the scalar's start; this
// holds for plain, quoted and block scalars alike, folded lines included.
YamlPosition fieldPosition(const std::string& text, const YAML::Node& node,
                           const std::string& value, std::size_t offset) {
  const YAML::Mark mark = node.Mark();
  const YamlPosition fallback = positionOf(mark);
  if (mark.is_null() || mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text.size()) {
    return fallback;
  }
  std::size_t nth = 0;
  for (std::size_t p = value.find("{{"); p != std::string::npos && p < offset;
       p = value.find("{{", p + 2)) {
    ++nth;
  }
  const auto begin = static_cast<std::size_t>(mark.pos);
  std::size_t start = begin;
  if (text[start] == '|' || text[start] == '>') {
    // A block scalar's content starts on the line after its indicator (which may carry a
    // comment).
    start = text.find('\n', start);
    if (start == std::string::npos) {
      return fallback;
    }
    ++start;
  }
  std::size_t p = text.find("{{", start);
  for (; p != std::string::npos && nth > 0; --nth) {
    p = text.find("{{", p + 2);
  }
  if (p == std::string::npos) {
    return fallback;
  }
  int line = mark.line + 1;
  for (std::size_t i = begin; i < p; ++i) {
    line += text[i] == '\n' ? 1 : 0;
  }
  const std::size_t newline = text.rfind('\n', p);
  const std::size_t lineStart = newline == std::string::npos ? 0 : newline + 1;
  return YamlPosition{line, static_cast<int>(p - lineStart) + 1};
}

}  // namespace

// Reads one campaign file. Reports every problem it can find, and keeps what a recipient
// pass needs even when other parts of the file are wrong, so `salvo validate` lists
// template and recipient errors together.
class CampaignLoader {
 public:
  CampaignLoader(const std::string& path, Diagnostics& diags)
      : path_(path), diags_(diags), yaml_(path, diags, kExitDataErr), before_(diags.size()) {}

  void run();

  bool ok() const { return diags_.size() == before_ && campaign_ != nullptr; }
  std::optional<LoadedCampaign> result() const;
  // A reader over the recipients, when the source could be opened and understood.
  std::unique_ptr<RecipientReader> takeReader();
  // Reports a CSV file with a header and no rows.
  void reportNoRecipients();

 private:
  std::optional<Mailbox> loadMailbox(const YamlFile::Entry& entry, std::string_view what);
  void loadInline(const YamlFile::Entry& entry);
  void loadCsv(const YamlFile::Entry& entry);
  // A body from the YAML (`inlineKey`) or from a file (`fileKey`, relative to the YAML).
  bool loadBody(const std::map<std::string, YamlFile::Entry, std::less<>>& fields,
                const char* inlineKey, const char* fileKey, std::optional<std::string>& source,
                std::optional<Template>& compiled);
  void loadHeaders(const YamlFile::Entry& entry);
  void loadTags(const YamlFile::Entry& entry);
  void loadUnsubscribe(const YamlFile::Entry& entry);
  void loadDkim(const YamlFile::Entry& entry);
  // A path relative to the campaign file's folder.
  std::string resolvePath(const std::string& path) const;
  std::optional<Template> compileTemplate(const YamlFile::Entry& entry, const std::string& source);
  // Reports unknown fields of `compiled` at `positionOf(piece offset)`.
  template <typename PositionOf>
  void reportUnknown(Template& compiled, PositionOf&& positionOf, const std::string& file);

  std::string path_;
  Diagnostics& diags_;
  YamlFile yaml_;
  std::size_t before_;

  std::optional<std::string> id_;
  std::optional<Mailbox> from_;
  CampaignSpec spec_;
  std::unique_ptr<DkimSigner> signer_;
  std::optional<std::string> secret_;
  // Templates whose merge values must stay on one line (subject, headers).
  std::vector<Template> headerTemplates_;
  RecipientSource source_;
  YamlPosition sourceAt_;
  std::optional<std::vector<std::string>> variables_;
  YAML::Node inlineList_;
  std::unique_ptr<CsvRecipientReader> csv_;
  std::shared_ptr<RecipientSourceState> state_;
  std::shared_ptr<const Campaign> campaign_;
};

void CampaignLoader::run() {
  std::string text;
  std::string error;
  if (!readWholeFile(path_, text, error)) {
    diags_.add(path_, 0, 0, fmt::format("cannot open campaign file '{}': {}", path_, error),
               kExitNoInput);
    return;
  }
  const auto root = yaml_.parse(text);
  if (!root) {
    return;
  }
  if (root->IsNull()) {
    yaml_.error(YamlPosition{},
                "campaign file is empty: expected the fields id, from, subject, text and "
                "recipients (or recipients_csv)");
    return;
  }
  if (!root->IsMap()) {
    yaml_.error(*root, "expected a map of campaign fields (id, from, subject, text, recipients)");
    return;
  }
  const YamlPosition docAt = positionOf(root->Mark());
  const auto fields = yaml_.readMap(*root, kCampaignKeys);
  auto required = [&](const char* name) -> const YamlFile::Entry* {
    const auto it = fields.find(name);
    if (it == fields.end()) {
      yaml_.error(docAt, fmt::format("missing required field '{}'", name));
      return nullptr;
    }
    return &it->second;
  };
  auto optionalField = [&](const char* name) -> const YamlFile::Entry* {
    const auto it = fields.find(name);
    return it == fields.end() ? nullptr : &it->second;
  };

  if (const auto* e = required("id")) {
    auto id = yaml_.scalar(e->value, "'id'");
    if (id && !isValidCampaignId(*id)) {
      yaml_.error(yaml_.valuePosition(e->key, e->value),
                  fmt::format("invalid id '{}': use 1 to 64 letters, digits, '.', '_' or '-'",
                              printable(*id)));
    } else if (id) {
      id_ = std::move(*id);
    }
  }
  if (const auto* e = required("from")) {
    from_ = loadMailbox(*e, "from");
  }
  bool replyToOk = true;
  if (const auto* e = optionalField("reply_to")) {
    spec_.replyTo = loadMailbox(*e, "reply_to");
    replyToOk = spec_.replyTo.has_value();
  }
  const auto* subjectEntry = required("subject");
  std::optional<std::string> subject;
  if (subjectEntry != nullptr) {
    subject = yaml_.scalar(subjectEntry->value, "'subject'");
  }

  const auto inlineIt = fields.find("recipients");
  const auto csvIt = fields.find("recipients_csv");
  if (inlineIt == fields.end() && csvIt == fields.end()) {
    yaml_.error(docAt, "missing required field 'recipients' or 'recipients_csv'");
  } else if (inlineIt != fields.end() && csvIt != fields.end()) {
    yaml_.error(csvIt->second.key, "use either 'recipients' or 'recipients_csv', not both");
  } else if (inlineIt != fields.end()) {
    loadInline(inlineIt->second);
  } else {
    loadCsv(csvIt->second);
  }

  std::optional<Template> subjectTemplate;
  if (subject) {
    const YamlPosition at = yaml_.valuePosition(subjectEntry->key, subjectEntry->value);
    if (subject->find_first_of("\r\n") != std::string::npos) {
      yaml_.error(at, "subject contains a line break (a block scalar '|' keeps its final one)");
    } else if (subject->find('\0') != std::string::npos) {
      yaml_.error(at, "subject contains a NUL byte");
    } else if (!isValidUtf8(*subject)) {
      yaml_.error(at, "subject is not valid UTF-8");
    } else {
      subjectTemplate = compileTemplate(*subjectEntry, *subject);
    }
  }
  std::optional<Template> textTemplate;
  std::optional<Template> htmlTemplate;
  const bool textOk = loadBody(fields, "text", "text_file", spec_.text, textTemplate);
  const bool htmlOk = loadBody(fields, "html", "html_file", spec_.html, htmlTemplate);
  const bool bodiesOk = textOk && htmlOk;
  if (bodiesOk && !spec_.text && !spec_.html) {
    yaml_.error(docAt,
                "missing body: give 'text' (or 'text_file'), 'html' (or 'html_file'), "
                "or both");
  }
  if (const auto* e = optionalField("headers")) {
    loadHeaders(*e);
  }
  const bool headersOk = headerTemplates_.size() == spec_.headers.size();
  if (const auto* e = optionalField("tags")) {
    loadTags(*e);
  }
  if (const auto* e = optionalField("start_at")) {
    auto value = yaml_.scalar(e->value, "'start_at'");
    if (value) {
      auto ms = parseRfc3339Ms(*value);
      if (!ms || *ms <= 0) {
        yaml_.error(yaml_.valuePosition(e->key, e->value),
                    fmt::format("start_at '{}' is not an RFC 3339 timestamp like "
                                "2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00",
                                printable(*value)));
      } else {
        spec_.startAtMs = *ms;
      }
    }
  }
  if (const auto* e = optionalField("rate")) {
    auto value = yaml_.scalar(e->value, "'rate'");
    if (value) {
      spec_.rate = parseRate(*value);
      if (!spec_.rate) {
        yaml_.error(yaml_.valuePosition(e->key, e->value),
                    fmt::format("rate '{}' must be a count per unit like \"100/s\", \"600/m\", "
                                "\"5000/h\" or \"100000/d\"",
                                printable(*value)));
      }
    }
  }
  if (const auto* e = optionalField("retry")) {
    // The same keys and checks as salvo.yaml's `retry:`; keys left out keep the daemon's.
    if (auto retry = readRetryOverride(yaml_, e->key, e->value, nullptr)) {
      spec_.retry = *retry;
    }
  }
  if (const auto* e = optionalField("unsubscribe")) {
    loadUnsubscribe(*e);
  }
  if (const auto* e = optionalField("dkim")) {
    loadDkim(*e);
  }
  if (const auto* e = optionalField("bounce_domain")) {
    auto value = yaml_.scalar(e->value, "'bounce_domain'");
    std::string canonical;
    std::string why;
    if (value &&
        (!parseDomain(*value, canonical, why) || !isAscii(canonical) || canonical.front() == '[')) {
      if (why.empty()) {
        why = "use an ASCII (punycode) domain name";
      }
      yaml_.error(yaml_.valuePosition(e->key, e->value),
                  fmt::format("invalid bounce_domain '{}': {}", printable(*value), why));
    } else if (value) {
      spec_.bounceDomain = canonical;
    }
  }

  if (!variables_) {
    return;  // no usable recipient source
  }
  state_ = std::make_shared<RecipientSourceState>();
  state_->variables = *variables_;
  // Which values may hold a line feed: those that land in bodies only. When a template did
  // not compile its use is unknown and line feeds are let through; the next validation
  // (after the template is fixed) checks them.
  // A variable in a header template that compiled is held to one line in any case.
  const bool usageKnown = subjectTemplate && bodiesOk && headersOk;
  state_->lineFeedAllowed.assign(variables_->size(), 0);
  for (std::size_t i = 0; i < variables_->size(); ++i) {
    const std::string& name = (*variables_)[i];
    bool inHeader = subjectTemplate && subjectTemplate->uses(name);
    for (const Template& t : headerTemplates_) {
      inHeader = inHeader || t.uses(name);
    }
    const bool inBody =
        (textTemplate && textTemplate->uses(name)) || (htmlTemplate && htmlTemplate->uses(name));
    state_->lineFeedAllowed[i] = !inHeader && (inBody || !usageKnown);
  }
  state_->list = inlineList_;
  state_->yamlText = yaml_.text();
  state_->yamlShown = path_;
  if (csv_) {
    csv_->setState(state_);
  }

  if (diags_.size() != before_ || !id_ || !from_ || !subject || !replyToOk) {
    return;
  }
  spec_.id = *id_;
  spec_.from = *from_;
  spec_.subject = *subject;
  spec_.variables = *variables_;
  std::string why;
  campaign_ = Campaign::build(spec_, std::move(signer_), std::move(secret_), why);
  if (!campaign_) {
    // Every check build() makes was made above with a position; this is a safety net.
    yaml_.error(docAt, why);
  }
}

std::string CampaignLoader::resolvePath(const std::string& path) const {
  std::filesystem::path full(path);
  if (full.is_relative()) {
    full = std::filesystem::path(path_).parent_path() / full;
  }
  return full.lexically_normal().string();
}

bool CampaignLoader::loadBody(const std::map<std::string, YamlFile::Entry, std::less<>>& fields,
                              const char* inlineKey, const char* fileKey,
                              std::optional<std::string>& source,
                              std::optional<Template>& compiled) {
  const auto inlineIt = fields.find(inlineKey);
  const auto fileIt = fields.find(fileKey);
  if (inlineIt != fields.end() && fileIt != fields.end()) {
    yaml_.error(fileIt->second.key,
                fmt::format("use either '{}' or '{}', not both", inlineKey, fileKey));
    return false;
  }
  std::string shown = path_;
  std::string body;
  const YamlFile::Entry* entry = nullptr;
  if (inlineIt != fields.end()) {
    entry = &inlineIt->second;
    auto value = yaml_.scalar(entry->value, fmt::format("'{}'", inlineKey));
    if (!value) {
      return false;
    }
    body = std::move(*value);
  } else if (fileIt != fields.end()) {
    const YamlFile::Entry& e = fileIt->second;
    auto value = yaml_.scalar(e.value, fmt::format("'{}'", fileKey));
    if (!value) {
      return false;
    }
    const YamlPosition at = yaml_.valuePosition(e.key, e.value);
    if (value->empty()) {
      yaml_.error(at, fmt::format("'{}' is empty: give the path of the body file", fileKey));
      return false;
    }
    shown = resolvePath(*value);
    std::string why;
    if (std::filesystem::is_directory(shown) || !readWholeFile(shown, body, why)) {
      yaml_.error(at,
                  fmt::format("cannot open {} file '{}': {}", inlineKey, printable(*value),
                              why.empty() ? std::strerror(EISDIR) : why),
                  kExitNoInput);
      return false;
    }
    if (body.size() >= 3 && body.compare(0, 3, "\xEF\xBB\xBF") == 0) {
      body.erase(0, 3);
    }
  } else {
    return true;
  }
  const YamlPosition at =
      entry != nullptr ? yaml_.valuePosition(entry->key, entry->value) : YamlPosition{1, 1};
  if (const std::size_t nul = body.find('\0'); nul != std::string::npos) {
    diags_.add(shown, entry ? at.line : positionInText(body, nul).line,
               entry ? at.column : positionInText(body, nul).column,
               fmt::format("{} contains a NUL byte", inlineKey));
    return false;
  }
  if (!isValidUtf8(body)) {
    diags_.add(shown, at.line, at.column,
               fmt::format("{} is not valid UTF-8 (save it as UTF-8)", inlineKey));
    return false;
  }
  if (entry != nullptr) {
    compiled = compileTemplate(*entry, body);
  } else {
    std::string why;
    std::size_t offset = 0;
    compiled = Template::compile(body, why, offset);
    if (!compiled) {
      const YamlPosition p = positionInText(body, offset);
      diags_.add(shown, p.line, p.column, why);
    } else {
      reportUnknown(
          *compiled, [&](std::size_t offset) { return positionInText(body, offset); }, shown);
    }
  }
  source = std::move(body);
  return compiled.has_value();
}

void CampaignLoader::loadHeaders(const YamlFile::Entry& entry) {
  if (!entry.value.IsMap()) {
    yaml_.error(yaml_.valuePosition(entry.key, entry.value),
                "'headers' must be a map of header names to values, e.g. {X-Campaign: spring}");
    return;
  }
  std::vector<std::string> seen;
  for (auto it = entry.value.begin(); it != entry.value.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      yaml_.error(key, "header names must be plain names");
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string problem = customHeaderProblem(name);
    if (!problem.empty()) {
      yaml_.error(key, fmt::format("header '{}' {}", printable(name), problem));
      continue;
    }
    bool duplicate = false;
    for (const std::string& other : seen) {
      duplicate = duplicate || equalsIgnoreCase(other, name);
    }
    if (duplicate) {
      yaml_.error(key, fmt::format("duplicate header '{}'", name));
      continue;
    }
    seen.push_back(name);
    auto text = yaml_.scalar(value, fmt::format("header '{}'", name));
    if (!text) {
      continue;
    }
    const YamlPosition at = yaml_.valuePosition(key, value);
    if (hasLineBreakOrNul(*text)) {
      yaml_.error(at, fmt::format("header '{}' contains a line break or NUL byte", name));
      continue;
    }
    if (!isValidUtf8(*text)) {
      yaml_.error(at, fmt::format("header '{}' is not valid UTF-8", name));
      continue;
    }
    auto compiled = compileTemplate(YamlFile::Entry{key, value}, *text);
    if (compiled) {
      headerTemplates_.push_back(std::move(*compiled));
    }
    spec_.headers.push_back(CustomHeader{name, std::move(*text)});
  }
}

void CampaignLoader::loadTags(const YamlFile::Entry& entry) {
  if (!entry.value.IsSequence()) {
    yaml_.error(yaml_.valuePosition(entry.key, entry.value),
                "'tags' must be a list like [newsletter, spring]");
    return;
  }
  for (const YAML::Node& item : entry.value) {
    auto tag = yaml_.scalar(item, "a tag");
    if (!tag) {
      continue;
    }
    if (tag->empty() || tag->size() > 64 || firstControlChar(*tag, false) >= 0 ||
        !isValidUtf8(*tag)) {
      yaml_.error(item, fmt::format("invalid tag '{}': use 1 to 64 characters without control "
                                    "characters",
                                    printable(*tag)));
      continue;
    }
    spec_.tags.push_back(std::move(*tag));
  }
}

void CampaignLoader::loadUnsubscribe(const YamlFile::Entry& entry) {
  if (!entry.value.IsMap()) {
    yaml_.error(yaml_.valuePosition(entry.key, entry.value),
                "'unsubscribe' must be a map like {url: https://example.com/unsubscribe, "
                "secret_file: unsubscribe.key}");
    return;
  }
  const auto fields = yaml_.readMap(entry.value, {"url", "mailto", "secret_file"});
  UnsubscribeSettings u;
  bool ok = true;
  const auto urlIt = fields.find("url");
  if (urlIt != fields.end()) {
    auto url = yaml_.scalar(urlIt->second.value, "'url'");
    if (url && (url->rfind("https://", 0) != 0 || url->size() <= 8 || url->size() > 512 ||
                url->find_first_of(" <>\"\r\n\t") != std::string::npos || !isAscii(*url))) {
      yaml_.error(yaml_.valuePosition(urlIt->second.key, urlIt->second.value),
                  fmt::format("unsubscribe url '{}' must be an https:// URL (RFC 8058) of at most "
                              "512 characters without spaces, quotes or angle brackets",
                              printable(*url)));
      ok = false;
    } else if (url) {
      u.url = std::move(*url);
    } else {
      ok = false;
    }
  }
  const auto mailtoIt = fields.find("mailto");
  if (mailtoIt != fields.end()) {
    auto mailto = yaml_.scalar(mailtoIt->second.value, "'mailto'");
    std::string why;
    if (mailto && mailto->rfind("mailto:", 0) == 0) {
      mailto->erase(0, 7);
    }
    std::optional<Address> address;
    if (mailto) {
      address = parseAddress(*mailto, why);
    }
    if (mailto && !address) {
      yaml_.error(yaml_.valuePosition(mailtoIt->second.key, mailtoIt->second.value),
                  fmt::format("invalid unsubscribe mailto '{}': {}", printable(*mailto), why));
    }
    if (!address || !isAscii(address->str()) ||
        address->str().find_first_of("?&%\"") != std::string::npos) {
      if (address) {
        yaml_.error(yaml_.valuePosition(mailtoIt->second.key, mailtoIt->second.value),
                    fmt::format("unsubscribe mailto '{}' must be a plain ASCII address",
                                printable(*mailto)));
      }
      ok = false;
    } else {
      u.mailto = address->str();
    }
  }
  const auto secretIt = fields.find("secret_file");
  if (secretIt != fields.end()) {
    auto file = yaml_.scalar(secretIt->second.value, "'secret_file'");
    if (file) {
      u.secretFile = std::filesystem::absolute(resolvePath(*file)).lexically_normal().string();
      std::string why;
      secret_ = readSecretFile(u.secretFile, why);
      if (!secret_) {
        yaml_.error(yaml_.valuePosition(secretIt->second.key, secretIt->second.value), why,
                    why.rfind("cannot read", 0) == 0 ? kExitNoInput : kExitDataErr);
        ok = false;
      }
    } else {
      ok = false;
    }
  }
  if (urlIt == fields.end() && mailtoIt == fields.end()) {
    yaml_.error(entry.value, "'unsubscribe' needs a 'url', a 'mailto' or both");
    return;
  }
  if (urlIt != fields.end() && secretIt == fields.end()) {
    yaml_.error(entry.value,
                "'unsubscribe' has a 'url' but no 'secret_file' (the key of its per-recipient "
                "tokens)");
    return;
  }
  if (ok) {
    spec_.unsubscribe = std::move(u);
  }
}

void CampaignLoader::loadDkim(const YamlFile::Entry& entry) {
  if (!entry.value.IsMap()) {
    yaml_.error(yaml_.valuePosition(entry.key, entry.value),
                "'dkim' must be a map like {domain: example.com, selector: s1, key_file: "
                "dkim.pem}");
    return;
  }
  const auto fields = yaml_.readMap(entry.value, {"domain", "selector", "key_file", "algorithm"});
  DkimSettings d;
  bool ok = true;
  for (const char* name : {"domain", "selector", "key_file"}) {
    if (fields.find(name) == fields.end()) {
      yaml_.error(entry.value, fmt::format("'dkim' is missing '{}'", name));
      ok = false;
    }
  }
  if (const auto it = fields.find("domain"); it != fields.end()) {
    auto domain = yaml_.scalar(it->second.value, "'domain'");
    std::string why;
    if (domain &&
        (!parseDomain(*domain, d.domain, why) || !isAscii(d.domain) || d.domain.front() == '[')) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                  fmt::format("invalid DKIM domain '{}': {}", printable(*domain),
                              why.empty() ? "use an ASCII (punycode) domain name" : why));
      ok = false;
    }
    ok = ok && domain.has_value();
  }
  if (const auto it = fields.find("selector"); it != fields.end()) {
    auto selector = yaml_.scalar(it->second.value, "'selector'");
    if (selector && !isValidSelector(*selector)) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                  fmt::format("invalid DKIM selector '{}': use letters, digits, '-', '_' and dots",
                              printable(*selector)));
      ok = false;
    } else if (selector) {
      d.selector = std::move(*selector);
    } else {
      ok = false;
    }
  }
  if (const auto it = fields.find("algorithm"); it != fields.end()) {
    auto algorithm = yaml_.scalar(it->second.value, "'algorithm'");
    if (algorithm && !parseDkimAlgorithm(*algorithm, d.algorithm)) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value),
                  fmt::format("unknown DKIM algorithm '{}' (use rsa-sha256 or ed25519-sha256)",
                              printable(*algorithm)));
      ok = false;
    }
    ok = ok && algorithm.has_value();
  }
  if (const auto it = fields.find("key_file"); it != fields.end() && ok) {
    auto file = yaml_.scalar(it->second.value, "'key_file'");
    if (!file) {
      return;
    }
    d.keyFile = std::filesystem::absolute(resolvePath(*file)).lexically_normal().string();
    std::string why;
    signer_ = DkimSigner::load(d, why);
    if (!signer_) {
      yaml_.error(yaml_.valuePosition(it->second.key, it->second.value), why,
                  why.rfind("cannot read", 0) == 0 ? kExitNoInput : kExitDataErr);
      return;
    }
    spec_.dkim = std::move(d);
  }
}

std::optional<Mailbox> CampaignLoader::loadMailbox(const YamlFile::Entry& entry,
                                                   std::string_view what) {
  std::string why;
  const YAML::Node& value = entry.value;
  if (value.IsMap()) {
    const auto fields = yaml_.readMap(value, {"name", "address"});
    const auto addressIt = fields.find("address");
    if (addressIt == fields.end()) {
      yaml_.error(value, "missing required field 'address'");
      return std::nullopt;
    }
    Mailbox mailbox;
    bool ok = true;
    const auto nameIt = fields.find("name");
    if (nameIt != fields.end()) {
      auto name = yaml_.scalar(nameIt->second.value, "'name'");
      if (name && !checkDisplayName(*name, why)) {
        yaml_.error(yaml_.valuePosition(nameIt->second.key, nameIt->second.value),
                    fmt::format("invalid {} name: {}", what, why));
        ok = false;
      } else if (name) {
        mailbox.displayName = std::move(*name);
      } else {
        ok = false;
      }
    }
    auto address = yaml_.scalar(addressIt->second.value, "'address'");
    if (!address) {
      return std::nullopt;
    }
    auto parsed = parseAddress(*address, why);
    if (!parsed) {
      yaml_.error(yaml_.valuePosition(addressIt->second.key, addressIt->second.value),
                  fmt::format("invalid {} address '{}': {}", what, printable(*address), why));
      return std::nullopt;
    }
    mailbox.address = std::move(*parsed);
    if (!ok) {
      return std::nullopt;
    }
    return mailbox;
  }
  if (value.IsSequence()) {
    yaml_.error(value, fmt::format("'{}' must be an address like \"Name <news@example.com>\" or a "
                                   "map {{name: ..., address: ...}}",
                                   what));
    return std::nullopt;
  }
  auto text = yaml_.scalar(value, fmt::format("'{}'", what));
  auto mailbox = parseMailbox(*text, why);
  if (!mailbox) {
    yaml_.error(yaml_.valuePosition(entry.key, value),
                fmt::format("invalid {} address '{}': {}", what, printable(*text), why));
    return std::nullopt;
  }
  return mailbox;
}

void CampaignLoader::loadInline(const YamlFile::Entry& entry) {
  source_.kind = RecipientSource::Kind::Inline;
  source_.file = std::filesystem::absolute(path_).lexically_normal().string();
  source_.shownAs = path_;
  sourceAt_ = yaml_.valuePosition(entry.key, entry.value);
  if (!entry.value.IsSequence()) {
    yaml_.error(sourceAt_,
                "'recipients' must be a list of entries like {email: ann@example.com, name: "
                "Ann}");
    return;
  }
  if (entry.value.size() == 0) {
    yaml_.error(sourceAt_, "'recipients' is empty: add at least one recipient");
    return;
  }
  // Variables: every key of every entry but 'email', in first-seen order. Malformed
  // entries are skipped here and reported by the recipient pass.
  std::vector<std::string> variables;
  std::unordered_map<std::string, std::size_t> seen;
  for (const YAML::Node& item : entry.value) {
    if (!item.IsMap()) {
      continue;
    }
    for (auto it = item.begin(); it != item.end(); ++it) {
      if (!it->first.IsScalar()) {
        continue;
      }
      const std::string& name = it->first.Scalar();
      if (!isEmailKey(name) && seen.emplace(name, variables.size()).second) {
        variables.push_back(name);
      }
    }
  }
  inlineList_ = entry.value;
  variables_ = std::move(variables);
}

void CampaignLoader::loadCsv(const YamlFile::Entry& entry) {
  source_.kind = RecipientSource::Kind::Csv;
  std::optional<std::string> path;
  YamlPosition pathAt = yaml_.valuePosition(entry.key, entry.value);
  if (entry.value.IsMap()) {
    const auto fields = yaml_.readMap(entry.value, {"path", "delimiter"});
    const auto pathIt = fields.find("path");
    if (pathIt == fields.end()) {
      yaml_.error(entry.value, "missing required field 'path'");
      return;
    }
    path = yaml_.scalar(pathIt->second.value, "'path'");
    pathAt = yaml_.valuePosition(pathIt->second.key, pathIt->second.value);
    const auto delimiterIt = fields.find("delimiter");
    if (delimiterIt != fields.end()) {
      auto delimiter = yaml_.scalar(delimiterIt->second.value, "'delimiter'");
      if (!delimiter) {
        return;
      }
      if (delimiter->size() != 1 || (*delimiter)[0] == '"' || (*delimiter)[0] == '\r' ||
          (*delimiter)[0] == '\n') {
        yaml_.error(yaml_.valuePosition(delimiterIt->second.key, delimiterIt->second.value),
                    fmt::format("delimiter '{}' must be one character other than '\"' or a line "
                                "break (e.g. \";\" or \"\\t\")",
                                printable(*delimiter)));
        return;
      }
      source_.delimiter = (*delimiter)[0];
    }
  } else {
    path = yaml_.scalar(entry.value, "'recipients_csv'");
  }
  if (!path) {
    return;
  }
  sourceAt_ = pathAt;
  if (path->empty()) {
    yaml_.error(pathAt, "the recipients file path is empty");
    return;
  }
  // Relative to the campaign file's folder, so a campaign works from any directory.
  std::filesystem::path full(*path);
  if (full.is_relative()) {
    full = std::filesystem::path(path_).parent_path() / full;
  }
  source_.shownAs = full.lexically_normal().string();
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(full, ec);
  source_.file = (ec ? full : absolute).lexically_normal().string();

  csv_ = std::make_unique<CsvRecipientReader>(source_.file, source_.shownAs, source_.delimiter);
  std::string why;
  if (!csv_->open(why)) {
    yaml_.error(pathAt, fmt::format("cannot open recipients file '{}': {}", printable(*path), why),
                kExitNoInput);
    csv_.reset();
    return;
  }
  std::vector<std::string> variables;
  if (!csv_->readHeader(variables, diags_)) {
    csv_.reset();
    return;
  }
  variables_ = std::move(variables);
}

std::optional<Template> CampaignLoader::compileTemplate(const YamlFile::Entry& entry,
                                                        const std::string& source) {
  std::string why;
  std::size_t offset = 0;
  auto compiled = Template::compile(source, why, offset);
  if (!compiled) {
    yaml_.error(fieldPosition(yaml_.text(), entry.value, source, offset), why);
    return std::nullopt;
  }
  reportUnknown(
      *compiled,
      [&](std::size_t at) { return fieldPosition(yaml_.text(), entry.value, source, at); }, path_);
  return compiled;
}

template <typename PositionOf>
void CampaignLoader::reportUnknown(Template& compiled, PositionOf&& positionOf,
                                   const std::string& file) {
  if (!variables_) {
    return;
  }
  Template bound = compiled;
  for (const Template::Piece* piece : bound.bind(*variables_)) {
    std::vector<std::string> known{"email"};
    for (const std::string& v : *variables_) {
      known.push_back(printable(v));
    }
    const YamlPosition at = positionOf(piece->offset);
    diags_.add(file, at.line, at.column,
               fmt::format("unknown merge field '{}' (known: {})", piece->variable,
                           fmt::join(known, ", ")));
  }
}

std::optional<LoadedCampaign> CampaignLoader::result() const {
  if (!ok()) {
    return std::nullopt;
  }
  LoadedCampaign loaded;
  loaded.campaign = campaign_;
  loaded.source = source_;
  loaded.yamlFile = path_;
  loaded.state = state_;
  return loaded;
}

std::unique_ptr<RecipientReader> CampaignLoader::takeReader() {
  if (!state_) {
    return nullptr;
  }
  if (csv_) {
    return std::move(csv_);
  }
  return std::make_unique<InlineRecipientReader>(state_);
}

void CampaignLoader::reportNoRecipients() {
  yaml_.error(sourceAt_, fmt::format("recipients file '{}' has a header row but no recipients",
                                     source_.shownAs));
}

std::unique_ptr<RecipientReader> LoadedCampaign::openRecipients(Diagnostics& diags) const {
  if (!state) {
    diags.add(yamlFile, 0, 0, "campaign was not produced by loadCampaign()");
    return nullptr;
  }
  if (source.kind == RecipientSource::Kind::Inline) {
    return std::make_unique<InlineRecipientReader>(state);
  }
  auto reader = std::make_unique<CsvRecipientReader>(source.file, source.shownAs, source.delimiter);
  std::string why;
  if (!reader->open(why)) {
    diags.add(source.shownAs, 0, 0,
              fmt::format("cannot open recipients file '{}': {}", source.shownAs, why),
              kExitNoInput);
    return nullptr;
  }
  std::vector<std::string> variables;
  if (!reader->readHeader(variables, diags)) {
    return nullptr;
  }
  if (variables != state->variables) {
    diags.add(source.shownAs, 1, 1,
              "the header row changed since the campaign was loaded: validate it again");
    return nullptr;
  }
  reader->setState(state);
  return reader;
}

std::optional<LoadedCampaign> loadCampaign(const std::string& path, Diagnostics& diags) {
  const std::size_t firstItem = diags.items().size();
  CampaignLoader loader(path, diags);
  loader.run();
  diags.sortFrom(firstItem);
  return loader.result();
}

std::optional<LoadedCampaign> validateCampaign(const std::string& path, Diagnostics& diags,
                                               std::uint64_t& recipients) {
  const std::size_t before = diags.size();
  const std::size_t firstItem = diags.items().size();
  CampaignLoader loader(path, diags);
  loader.run();
  recipients = 0;
  std::unique_ptr<RecipientReader> reader = loader.takeReader();
  if (reader) {
    Recipient recipient;
    while (reader->next(recipient, diags)) {
      ++recipients;
    }
  }
  if (loader.ok() && recipients == 0 && diags.size() == before) {
    loader.reportNoRecipients();
  }
  diags.sortFrom(firstItem);
  if (diags.size() != before) {
    return std::nullopt;
  }
  return loader.result();
}

}  // namespace salvo::campaigns

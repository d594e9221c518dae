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

const std::vector<std::string_view> kCampaignKeys = {"id",   "from",       "subject",
                                                     "text", "recipients", "recipients_csv"};

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
  void loadFrom(const YamlFile::Entry& entry);
  void loadInline(const YamlFile::Entry& entry);
  void loadCsv(const YamlFile::Entry& entry);
  std::optional<Template> compileTemplate(const YamlFile::Entry& entry, const std::string& source);

  std::string path_;
  Diagnostics& diags_;
  YamlFile yaml_;
  std::size_t before_;

  std::optional<std::string> id_;
  std::optional<Mailbox> from_;
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
    loadFrom(*e);
  }
  const auto* subjectEntry = required("subject");
  const auto* textEntry = required("text");
  std::optional<std::string> subject;
  std::optional<std::string> textBody;
  if (subjectEntry != nullptr) {
    subject = yaml_.scalar(subjectEntry->value, "'subject'");
  }
  if (textEntry != nullptr) {
    textBody = yaml_.scalar(textEntry->value, "'text'");
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
  std::optional<Template> textTemplate;
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
  if (textBody) {
    const YamlPosition at = yaml_.valuePosition(textEntry->key, textEntry->value);
    if (textBody->find('\0') != std::string::npos) {
      yaml_.error(at, "text contains a NUL byte");
    } else if (!isValidUtf8(*textBody)) {
      yaml_.error(at, "text is not valid UTF-8");
    } else {
      textTemplate = compileTemplate(*textEntry, *textBody);
    }
  }

  if (!variables_) {
    return;  // no usable recipient source
  }
  state_ = std::make_shared<RecipientSourceState>();
  state_->variables = *variables_;
  // Which values may hold a line feed: those that land in the text body only. When a
  // template did not compile its use is unknown and line feeds are let through; the
  // next validation (after the template is fixed) checks them.
  const bool usageKnown = subjectTemplate && textTemplate;
  state_->lineFeedAllowed.assign(variables_->size(), usageKnown ? 0 : 1);
  if (usageKnown) {
    auto uses = [](const Template& t, const std::string& name) {
      for (const Template::Piece& piece : t.pieces()) {
        if (piece.variable == name) {
          return true;
        }
      }
      return false;
    };
    for (std::size_t i = 0; i < variables_->size(); ++i) {
      state_->lineFeedAllowed[i] =
          uses(*textTemplate, (*variables_)[i]) && !uses(*subjectTemplate, (*variables_)[i]);
    }
  }
  state_->list = inlineList_;
  state_->yamlText = yaml_.text();
  state_->yamlShown = path_;
  if (csv_) {
    csv_->setState(state_);
  }

  if (diags_.size() != before_ || !id_ || !from_ || !subject || !textBody) {
    return;
  }
  std::string why;
  campaign_ = Campaign::build(*id_, *from_, *subject, *textBody, *variables_, why);
  if (!campaign_) {
    // Every check build() makes was made above with a position; this is a safety net.
    yaml_.error(docAt, why);
  }
}

void CampaignLoader::loadFrom(const YamlFile::Entry& entry) {
  std::string why;
  const YAML::Node& value = entry.value;
  if (value.IsMap()) {
    const auto fields = yaml_.readMap(value, {"name", "address"});
    const auto addressIt = fields.find("address");
    if (addressIt == fields.end()) {
      yaml_.error(value, "missing required field 'address'");
      return;
    }
    Mailbox mailbox;
    bool ok = true;
    const auto nameIt = fields.find("name");
    if (nameIt != fields.end()) {
      auto name = yaml_.scalar(nameIt->second.value, "'name'");
      if (name && !checkDisplayName(*name, why)) {
        yaml_.error(yaml_.valuePosition(nameIt->second.key, nameIt->second.value),
                    fmt::format("invalid from name: {}", why));
        ok = false;
      } else if (name) {
        mailbox.displayName = std::move(*name);
      } else {
        ok = false;
      }
    }
    auto address = yaml_.scalar(addressIt->second.value, "'address'");
    if (!address) {
      return;
    }
    auto parsed = parseAddress(*address, why);
    if (!parsed) {
      yaml_.error(yaml_.valuePosition(addressIt->second.key, addressIt->second.value),
                  fmt::format("invalid from address '{}': {}", printable(*address), why));
      return;
    }
    mailbox.address = std::move(*parsed);
    if (ok) {
      from_ = std::move(mailbox);
    }
    return;
  }
  if (value.IsSequence()) {
    yaml_.error(value,
                "'from' must be an address like \"Name <news@example.com>\" or a map "
                "{name: ..., address: ...}");
    return;
  }
  auto text = yaml_.scalar(value, "'from'");
  auto mailbox = parseMailbox(*text, why);
  if (!mailbox) {
    yaml_.error(yaml_.valuePosition(entry.key, value),
                fmt::format("invalid from address '{}': {}", printable(*text), why));
    return;
  }
  from_ = std::move(*mailbox);
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
  if (variables_) {
    Template bound = *compiled;
    for (const Template::Piece* piece : bound.bind(*variables_)) {
      std::vector<std::string> known{"email"};
      for (const std::string& v : *variables_) {
        known.push_back(printable(v));
      }
      yaml_.error(fieldPosition(yaml_.text(), entry.value, source, piece->offset),
                  fmt::format("unknown merge field '{}' (known: {})", piece->variable,
                              fmt::join(known, ", ")));
    }
  }
  return compiled;
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

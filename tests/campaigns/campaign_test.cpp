#include "campaigns/campaign.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/campaigns/test_files.h"

namespace salvo::campaigns {
namespace {

using testing::messages;
using testing::TempDir;
using Messages = std::vector<std::string>;

constexpr std::int64_t kNowMs = 1795871091000;  // Sat, 28 Nov 2026 13:04:51 UTC

class CampaignTest : public ::testing::Test {
 protected:
  void SetUp() override { yamlPath_ = dir_.file("campaign.yaml"); }

  // Writes campaign.yaml and validates it; returns every message.
  Messages validate(const std::string& yaml) {
    yamlPath_ = dir_.write("campaign.yaml", yaml);
    diags_ = Diagnostics();
    loaded_ = validateCampaign(yamlPath_, diags_, count_);
    EXPECT_EQ(loaded_.has_value(), diags_.empty());
    return messages(diags_);
  }

  // Every recipient of a loaded campaign, read through openRecipients().
  std::vector<Recipient> readRecipients() {
    std::vector<Recipient> out;
    Diagnostics diags;
    auto reader = loaded_->openRecipients(diags);
    EXPECT_NE(reader, nullptr) << (diags.empty() ? "" : diags.items()[0].str());
    if (!reader) {
      return out;
    }
    Recipient r;
    while (reader->next(r, diags)) {
      out.push_back(r);
    }
    EXPECT_TRUE(diags.empty());
    return out;
  }

  std::string y(const std::string& rest) const { return yamlPath_ + rest; }
  std::string csv(const std::string& name, const std::string& rest) const {
    return dir_.file(name) + rest;
  }

  TempDir dir_;
  std::string yamlPath_;
  Diagnostics diags_;
  std::optional<LoadedCampaign> loaded_;
  std::uint64_t count_ = 0;
};

const char kInline[] = R"(id: spring-sale
from: "Salvo Demo <news@example.com>"
subject: "Hello {{name}}"
text: |
  Hi {{name}},
  your code is {{code}}.
recipients:
  - email: ann@example.com
    name: Ann
    code: A1
  - email: Bob@Example.COM
    name: Bob
)";

TEST_F(CampaignTest, InlineCampaignLoadsAndRendersExactly) {
  EXPECT_EQ(validate(kInline), Messages{});
  ASSERT_TRUE(loaded_.has_value());
  EXPECT_EQ(count_, 2u);
  const Campaign& c = *loaded_->campaign;
  EXPECT_EQ(c.id(), "spring-sale");
  EXPECT_EQ(c.from().displayName, "Salvo Demo");
  EXPECT_EQ(c.variables(), (std::vector<std::string>{"name", "code"}));
  EXPECT_EQ(loaded_->source.kind, RecipientSource::Kind::Inline);

  const auto recipients = readRecipients();
  ASSERT_EQ(recipients.size(), 2u);
  EXPECT_EQ(recipients[0].email, "ann@example.com");
  EXPECT_EQ(recipients[0].values, (std::vector<std::string>{"Ann", "A1"}));
  EXPECT_EQ(recipients[0].line, 8);
  EXPECT_EQ(recipients[1].email, "Bob@example.com");
  EXPECT_EQ(recipients[1].values, (std::vector<std::string>{"Bob", ""}));
  EXPECT_EQ(recipients[1].line, 11);

  EXPECT_EQ(c.envelopeFrom(JobIdentity{7, 42}), "news@example.com");
  std::string out = "kept|";
  c.render(JobIdentity{7, 42}, recipients[0].email, recipients[0].values, kNowMs, out);
  EXPECT_EQ(out,
            "kept|"
            "From: Salvo Demo <news@example.com>\r\n"
            "To: ann@example.com\r\n"
            "Subject: Hello Ann\r\n"
            "Date: Sat, 28 Nov 2026 13:04:51 +0000\r\n"
            "Message-ID: <c7.42.0968414c4e73dfb1@example.com>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
            "Hi Ann,\r\n"
            "your code is A1.\r\n");
}

TEST_F(CampaignTest, DateHeaderFollowsTheClockSecondBySecond) {
  EXPECT_EQ(validate(R"(id: dated
from: news@example.com
subject: "Hi"
text: "Hello"
recipients:
  - {email: ann@x.com}
)"),
            Messages{});
  ASSERT_TRUE(loaded_.has_value());
  const auto dateAt = [&](std::int64_t nowMs) {
    std::string out;
    loaded_->campaign->render(JobIdentity{1, 0}, "ann@x.com", {}, nowMs, out);
    const auto at = out.find("Date: ");
    return out.substr(at, out.find("\r\n", at) - at);
  };
  // The line is cached per second and thread: every change of second must show.
  EXPECT_EQ(dateAt(kNowMs), "Date: Sat, 28 Nov 2026 13:04:51 +0000");
  EXPECT_EQ(dateAt(kNowMs + 999), "Date: Sat, 28 Nov 2026 13:04:51 +0000");
  EXPECT_EQ(dateAt(kNowMs + 1000), "Date: Sat, 28 Nov 2026 13:04:52 +0000");
  EXPECT_EQ(dateAt(0), "Date: Thu, 1 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(dateAt(-1), "Date: Wed, 31 Dec 1969 23:59:59 +0000");
  EXPECT_EQ(dateAt(kNowMs + 500), "Date: Sat, 28 Nov 2026 13:04:51 +0000");
}

TEST_F(CampaignTest, NonAsciiSubjectIsEncodedAndBodyIsQuotedPrintable) {
  EXPECT_EQ(validate(R"(id: gruss
from: {name: Zoë, address: z@Example.com}
subject: "Grüße {{name}}"
text: "Liebe {{name}},\nbis bald. Grüße"
recipients:
  - {email: ann@x.com, name: Ann}
)"),
            Messages{});
  ASSERT_TRUE(loaded_.has_value());
  std::string out;
  loaded_->campaign->render(JobIdentity{1, 0}, "ann@x.com", {"Ann"}, 0, out);
  EXPECT_EQ(out,
            "From: =?UTF-8?B?Wm/Dqw==?= <z@example.com>\r\n"
            "To: ann@x.com\r\n"
            "Subject: =?UTF-8?B?R3LDvMOfZSBBbm4=?=\r\n"
            "Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"
            "Message-ID: <c1.0." +
                out.substr(out.find("<c1.0.") + 6, 16) +
                "@example.com>\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n"
                "\r\n"
                "Liebe Ann,\r\n"
                "bis bald. Gr=C3=BC=C3=9Fe\r\n");
}

TEST_F(CampaignTest, CsvWithBomCrlfAndDelimiter) {
  std::filesystem::create_directory(dir_.path() / "data");
  dir_.write("data/list.csv",
             "\xEF\xBB\xBF"
             "Email;Name;Note\r\n"
             "ann@X.com;Ann;\"multi\r\nline\"\r\n"
             "\r\n"
             "bob@x.com;\"Lee; Bob\";\r\n");
  EXPECT_EQ(validate(R"(id: csv-1
from: news@example.com
subject: "Hi {{Name}}"
text: "{{Note}}"
recipients_csv: {path: data/list.csv, delimiter: ";"}
)"),
            Messages{});
  ASSERT_TRUE(loaded_.has_value());
  EXPECT_EQ(count_, 2u);
  EXPECT_EQ(loaded_->source.kind, RecipientSource::Kind::Csv);
  EXPECT_EQ(loaded_->source.delimiter, ';');
  EXPECT_EQ(loaded_->source.file, dir_.file("data/list.csv"));
  EXPECT_EQ(loaded_->source.shownAs, dir_.file("data/list.csv"));
  EXPECT_EQ(loaded_->campaign->variables(), (std::vector<std::string>{"Name", "Note"}));
  const auto recipients = readRecipients();
  ASSERT_EQ(recipients.size(), 2u);
  EXPECT_EQ(recipients[0].email, "ann@x.com");
  EXPECT_EQ(recipients[0].values, (std::vector<std::string>{"Ann", "multi\nline"}));
  EXPECT_EQ(recipients[0].line, 2);
  EXPECT_EQ(recipients[1].values, (std::vector<std::string>{"Lee; Bob", ""}));
  EXPECT_EQ(recipients[1].line, 5);
  std::string out;
  loaded_->campaign->render(JobIdentity{}, recipients[0].email, recipients[0].values, kNowMs, out);
  EXPECT_EQ(out.substr(out.find("\r\n\r\n")), "\r\n\r\nmulti\r\nline\r\n");
  // A second pass reads the same recipients.
  EXPECT_EQ(readRecipients().size(), 2u);
}

TEST_F(CampaignTest, YamlSyntaxError) {
  EXPECT_EQ(validate("id: x\n subject: y\n"), Messages{y(":2:9: illegal map value")});
  EXPECT_EQ(diags_.exitCode(), kExitDataErr);
}

TEST_F(CampaignTest, MissingRequiredField) {
  EXPECT_EQ(validate(R"(id: x
subject: s
text: t
recipients:
  - email: a@x.com
)"),
            Messages{y(":1:1: missing required field 'from'")});
}

TEST_F(CampaignTest, InvalidFromAddress) {
  EXPECT_EQ(validate(R"(id: x
from: "Demo <news@@example.com>"
subject: s
text: t
recipients:
  - email: a@x.com
)"),
            Messages{y(":2:7: invalid from address 'Demo <news@@example.com>': more than one '@' "
                       "(quote the local part if it contains one)")});
  EXPECT_EQ(validate(R"(id: x
from: {name: Demo}
subject: s
text: t
recipients:
  - email: a@x.com
)"),
            Messages{y(":2:7: missing required field 'address'")});
}

TEST_F(CampaignTest, InvalidInlineRecipient) {
  const char yaml[] = R"(id: x
from: news@example.com
subject: s
text: t
recipients:
  - email: ann@x.com
  - email: bob@@x.com
    name: Bob
)";
  EXPECT_EQ(validate(yaml), Messages{y(":7:12: recipient 'bob@@x.com': more than one '@' (quote "
                                       "the local part if it contains one)")});
  EXPECT_EQ(count_, 1u);
  // loadCampaign alone does not read recipients.
  Diagnostics diags;
  EXPECT_TRUE(loadCampaign(yamlPath_, diags).has_value());
  EXPECT_TRUE(diags.empty());
}

TEST_F(CampaignTest, InvalidCsvRecipientNamesRowAndColumn) {
  dir_.write("r.csv", "name,email\nAnn,ann@x.com\n\"Bob\",bob@@x.com\n");
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: "Hi {{name}}"
text: t
recipients_csv: r.csv
)"),
            Messages{csv("r.csv",
                         ":3:7: recipient 'bob@@x.com': more than one '@' (quote the "
                         "local part if it contains one)")});
  EXPECT_EQ(count_, 1u);
}

TEST_F(CampaignTest, UnknownMergeFieldInQuotedSubject) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: "Hello {{nmae}}"
text: t
recipients:
  - {email: a@x.com, name: A}
)"),
            Messages{y(":3:17: unknown merge field 'nmae' (known: email, name)")});
}

TEST_F(CampaignTest, UnknownMergeFieldInBlockScalarText) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: "Hello {{name}}"
text: |
  Hi {{name}},
  code {{cdoe}}
recipients:
  - {email: a@x.com, name: A}
)"),
            Messages{y(":6:8: unknown merge field 'cdoe' (known: email, name)")});
}

TEST_F(CampaignTest, MergeFieldPositionsInEveryScalarStyle) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: 'It''s {{a}}'
text: >
  first line
  and {{b}} here

  {{c}} {{name}} {{d}}
recipients:
  - {email: a@x.com, name: A}
)"),
            (Messages{y(":3:17: unknown merge field 'a' (known: email, name)"),
                      y(":6:7: unknown merge field 'b' (known: email, name)"),
                      y(":8:3: unknown merge field 'c' (known: email, name)"),
                      y(":8:18: unknown merge field 'd' (known: email, name)")}));
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: plain {{e}}
text: one
  two {{f}}
recipients:
  - {email: a@x.com, name: A}
)"),
            (Messages{y(":3:16: unknown merge field 'e' (known: email, name)"),
                      y(":5:7: unknown merge field 'f' (known: email, name)")}));
}

TEST_F(CampaignTest, CrlfYamlWithByteOrderMark) {
  EXPECT_EQ(validate("\xEF\xBB\xBFid: x\r\n"
                     "from: news@example.com\r\n"
                     "subject: \"Hi {{name}}\"\r\n"
                     "text: |\r\n"
                     "  line one\r\n"
                     "  {{name}} and {{nmae}}\r\n"
                     "recipients:\r\n"
                     "  - {email: a@x.com, name: A}\r\n"),
            Messages{y(":6:16: unknown merge field 'nmae' (known: email, name)")});
  ASSERT_EQ(validate("\xEF\xBB\xBFid: x\r\n"
                     "from: news@example.com\r\n"
                     "subject: \"Hi {{name}}\"\r\n"
                     "text: |\r\n"
                     "  line one\r\n"
                     "  {{name}}\r\n"
                     "recipients:\r\n"
                     "  - {email: a@x.com, name: A}\r\n"),
            Messages{});
  EXPECT_EQ(loaded_->campaign->textSource(), "line one\n{{name}}\n");
}

TEST_F(CampaignTest, TemplateSyntaxErrors) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: "Hi {{name"
text: |
  ok {{name}}
  then {{ }}
recipients:
  - {email: a@x.com, name: A}
)"),
            (Messages{y(":3:14: unclosed '{{'"), y(":6:8: empty merge field")}));
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: "{{1x}}"
text: t
recipients:
  - {email: a@x.com}
)"),
            (Messages{y(":3:11: invalid merge field name '1x' (use a letter or '_', then "
                        "letters, digits, '_', '.', '-')")}));
}

TEST_F(CampaignTest, SubjectWithLineBreak) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: |
  Hi
text: t
recipients:
  - {email: a@x.com}
)"),
            Messages{y(":3:10: subject contains a line break (a block scalar '|' keeps its final "
                       "one)")});
}

TEST_F(CampaignTest, MissingCsvFileExits66) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
recipients_csv: missing.csv
)"),
            Messages{y(":5:17: cannot open recipients file 'missing.csv': No such file or "
                       "directory")});
  EXPECT_EQ(diags_.exitCode(), kExitNoInput);
}

TEST_F(CampaignTest, MissingCampaignFileExits66) {
  Diagnostics diags;
  const std::string path = dir_.file("nope.yaml");
  EXPECT_FALSE(loadCampaign(path, diags).has_value());
  EXPECT_EQ(messages(diags), Messages{path + ": cannot open campaign file '" + path +
                                      "': No such file or directory"});
  EXPECT_EQ(diags.exitCode(), kExitNoInput);
}

TEST_F(CampaignTest, EveryErrorIsReportedTogether) {
  EXPECT_EQ(validate(R"(id: spring sale
from: "Demo <news@@example.com>"
subject: "Hi {{name}}"
reply_too: x@example.com
text: |
  Hi {{nmae}}
recipients:
  - email: ann@x.com
    name: Ann
  - email: bob@@x.com
    name: Bob
  - email: "carl@x.com"
    name: "Carl\nX"
)"),
            (Messages{
                y(":1:5: invalid id 'spring sale': use 1 to 64 letters, digits, '.', '_' or '-'"),
                y(":2:7: invalid from address 'Demo <news@@example.com>': more than one '@' "
                  "(quote the local part if it contains one)"),
                y(":4:1: unknown key 'reply_too' (did you mean 'reply_to'?)"),
                y(":6:6: unknown merge field 'nmae' (known: email, name)"),
                y(":10:12: recipient 'bob@@x.com': more than one '@' (quote the local part if "
                  "it contains one)"),
                y(":13:11: recipient 3 (carl@x.com): value of 'name' contains a line break"),
            }));
  EXPECT_EQ(count_, 1u);
  EXPECT_EQ(diags_.exitCode(), kExitDataErr);
}

TEST_F(CampaignTest, UnknownKeySuggestsTheClosestOne) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subjekt: s
text: t
recipients:
  - {email: a@x.com}
)"),
            (Messages{y(":1:1: missing required field 'subject'"),
                      y(":3:1: unknown key 'subjekt' (did you mean 'subject'?)")}));
}

TEST_F(CampaignTest, CsvMergeValueRules) {
  // 'name' lands in the Subject: no line breaks. 'note' is in the body only: LF is fine,
  // CR is not. Values must be UTF-8.
  dir_.write("r.csv",
             "email,name,note\n"
             "ann@x.com,Ann,\"two\nlines\"\n"
             "bob@x.com,\"Bob\nSmith\",ok\n"
             "carl@x.com,Carl,\"bad\rcr\"\n"
             "dan@x.com,Jos\xe9,x\n");
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: "Hi {{name}}"
text: "{{name}}: {{note}}"
recipients_csv: r.csv
)"),
            (Messages{
                csv("r.csv", ":4:11: row 3 (bob@x.com): value of 'name' contains a line break"),
                csv("r.csv", ":6:17: row 4 (carl@x.com): value of 'note' contains a line break"),
                csv("r.csv",
                    ":7:11: row 5 (dan@x.com): value of 'name' is not valid UTF-8 (save "
                    "the file as UTF-8)"),
            }));
  EXPECT_EQ(count_, 1u);
}

TEST_F(CampaignTest, CsvStructureErrors) {
  const char yaml[] = R"(id: x
from: news@example.com
subject: s
text: t
recipients_csv: r.csv
)";
  dir_.write("r.csv", "name,mail\nAnn,a@x.com\n");
  EXPECT_EQ(validate(yaml),
            Messages{csv("r.csv",
                         ":1:1: the header row has no 'email' column (columns: name, "
                         "mail)")});
  dir_.write("r.csv", "email,name,EMAIL,name\n");
  EXPECT_EQ(validate(yaml),
            (Messages{csv("r.csv", ":1:12: duplicate column 'EMAIL' in the header row"),
                      csv("r.csv", ":1:18: duplicate column 'name' in the header row")}));
  dir_.write("r.csv", "");
  EXPECT_EQ(validate(yaml), Messages{csv("r.csv",
                                         ": recipients file is empty: the first row must name the "
                                         "columns, one of them 'email'")});
  dir_.write("r.csv", "email,name\n");
  EXPECT_EQ(validate(yaml), Messages{y(":5:17: recipients file '" + dir_.file("r.csv") +
                                       "' has a header row but no recipients")});
  dir_.write("r.csv", "email,name\na@x.com,A\nb@x.com\n\"c@x.com,C\n");
  EXPECT_EQ(validate(yaml),
            (Messages{csv("r.csv", ":3:1: row has 1 field, expected 2 like the first row"),
                      csv("r.csv",
                          ":4:1: unterminated quoted field (no closing '\"' before the "
                          "end of the file)")}));
  EXPECT_EQ(count_, 1u);
}

TEST_F(CampaignTest, RecipientSourceChoice) {
  dir_.write("r.csv", "email\na@x.com\n");
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
recipients:
  - {email: a@x.com}
recipients_csv: r.csv
)"),
            Messages{y(":7:1: use either 'recipients' or 'recipients_csv', not both")});
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
)"),
            Messages{y(":1:1: missing required field 'recipients' or 'recipients_csv'")});
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
recipients: []
)"),
            Messages{y(":5:13: 'recipients' is empty: add at least one recipient")});
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
recipients_csv: {path: r.csv, delimiter: ";;"}
)"),
            Messages{y(":5:42: delimiter ';;' must be one character other than '\"' or a line "
                       "break (e.g. \";\" or \"\\t\")")});
}

TEST_F(CampaignTest, MalformedInlineEntries) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
recipients:
  - ann@x.com
  - name: NoMail
  - email: c@x.com
    name: [a, b]
  - email: d@x.com
    email: e@x.com
  - email: f@x.com
    name: Null
  - email: g@x.com
    name:
)"),
            (Messages{
                y(":6:5: recipient 1: expected a map like {email: ann@example.com, name: Ann}"),
                y(":7:5: recipient 2: missing 'email'"),
                y(":9:11: recipient 3: 'name' must be a single value, not a list"),
                y(":11:5: recipient 4: duplicate key 'email'"),
            }));
  EXPECT_EQ(count_, 2u);
}

TEST_F(CampaignTest, PlainNullLikeValuesAreText) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: "{{name}}"
recipients:
  - email: f@x.com
    name: Null
  - email: g@x.com
    name:
)"),
            Messages{});
  const auto recipients = readRecipients();
  ASSERT_EQ(recipients.size(), 2u);
  EXPECT_EQ(recipients[0].values, std::vector<std::string>{"Null"});
  EXPECT_EQ(recipients[1].values, std::vector<std::string>{""});
}

TEST_F(CampaignTest, StructuralErrors) {
  EXPECT_EQ(validate(R"(id: x
from: news@example.com
subject: s
subject: t
text: [t]
recipients:
  - {email: a@x.com}
)"),
            (Messages{y(":4:1: duplicate key 'subject' (first set on line 3)"),
                      y(":5:7: 'text' must be a single value, not a list")}));
  EXPECT_EQ(validate(""), Messages{y(": campaign file is empty: expected the fields id, from, "
                                     "subject, text and recipients (or recipients_csv)")});
  EXPECT_EQ(validate("- a\n- b\n"),
            Messages{y(":1:1: expected a map of campaign fields (id, from, subject, text, "
                       "recipients)")});
}

TEST_F(CampaignTest, SerializeRoundTripRendersIdentically) {
  ASSERT_EQ(validate(kInline), Messages{});
  const Campaign& original = *loaded_->campaign;
  const std::string blob = original.serialize();
  const auto json = nlohmann::json::parse(blob);
  EXPECT_EQ(json["format"], 3);
  EXPECT_EQ(json["id"], "spring-sale");
  EXPECT_EQ(json["from"]["name"], "Salvo Demo");
  EXPECT_EQ(json["from"]["address"], "news@example.com");
  EXPECT_EQ(json["subject"], "Hello {{name}}");
  EXPECT_EQ(json["text"], "Hi {{name}},\nyour code is {{code}}.\n");
  EXPECT_EQ(json["variables"], nlohmann::json::array({"name", "code"}));

  std::string error;
  const auto copy = Campaign::deserialize(blob, error);
  ASSERT_NE(copy, nullptr) << error;
  EXPECT_EQ(copy->serialize(), blob);
  EXPECT_EQ(copy->variables(), original.variables());
  EXPECT_EQ(copy->from().header(), original.from().header());
  for (const auto& values :
       {std::vector<std::string>{"Ann", "A1"}, std::vector<std::string>{"Zoë", "ß"}}) {
    std::string a;
    std::string b;
    original.render(JobIdentity{3, 9}, "x@y.org", values, kNowMs, a);
    copy->render(JobIdentity{3, 9}, "x@y.org", values, kNowMs, b);
    EXPECT_EQ(a, b);
  }
}

TEST_F(CampaignTest, DeserializeRejectsBadRecords) {
  ASSERT_EQ(validate(kInline), Messages{});
  auto json = nlohmann::json::parse(loaded_->campaign->serialize());
  std::string error;
  EXPECT_EQ(Campaign::deserialize("not json", error), nullptr);
  EXPECT_EQ(error, "campaign record is not a JSON object");

  auto bad = json;
  bad["format"] = 4;
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error, "unsupported campaign record format (expected 1 to 3)");

  bad = json;
  bad["subject"] = "Hi {{zzz}}";
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error, "campaign record: subject: unknown merge field 'zzz'");

  bad = json;
  bad["from"]["address"] = "a@@b";
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error,
            "campaign record: from address 'a@@b': more than one '@' (quote the local part if it "
            "contains one)");

  bad = json;
  bad.erase("text");
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error, "campaign record: the campaign has neither a text nor an html body");

  bad = json;
  bad["text"] = 5;
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error, "campaign record: 'text' is missing or not a string");

  bad = json;
  bad["subject"] = "a\r\nBcc: x@y.z";
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error, "campaign record: subject contains a line break or NUL byte");
}

TEST_F(CampaignTest, CsvPathIsRelativeToTheCampaignFolderAsGiven) {
  // Run from the temp folder with a relative campaign path: messages name files the way
  // the user would.
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir_.path());
  std::filesystem::create_directory("sub");
  dir_.write("sub/c.yaml", R"(id: x
from: news@example.com
subject: s
text: t
recipients_csv: r.csv
)");
  dir_.write("sub/r.csv", "email\nbad@\n");
  Diagnostics diags;
  std::uint64_t count = 0;
  EXPECT_FALSE(validateCampaign("sub/c.yaml", diags, count).has_value());
  std::filesystem::current_path(previous);
  EXPECT_EQ(messages(diags), Messages{"sub/r.csv:2:1: recipient 'bad@': missing domain after '@'"});
}

TEST_F(CampaignTest, OpenRecipientsReportsAVanishedCsv) {
  dir_.write("r.csv", "email\na@x.com\n");
  ASSERT_EQ(validate(R"(id: x
from: news@example.com
subject: s
text: t
recipients_csv: r.csv
)"),
            Messages{});
  std::filesystem::remove(dir_.file("r.csv"));
  Diagnostics diags;
  EXPECT_EQ(loaded_->openRecipients(diags), nullptr);
  EXPECT_EQ(messages(diags), Messages{dir_.file("r.csv") + ": cannot open recipients file '" +
                                      dir_.file("r.csv") + "': No such file or directory"});
  EXPECT_EQ(diags.exitCode(), kExitNoInput);
}

}  // namespace
}  // namespace salvo::campaigns

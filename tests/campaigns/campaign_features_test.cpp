// The campaign format beyond the basics: reply_to, html bodies and body files, custom
// headers, tags, start_at, rate, unsubscribe, DKIM, VERP, and the injection checks that
// go with them. Each error is checked with its exact message.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>

#include "campaigns/campaign.h"
#include "campaigns/header_encoding.h"
#include "tests/campaigns/test_files.h"

namespace salvo::campaigns {
namespace {

using testing::messages;
using testing::TempDir;
using Messages = std::vector<std::string>;

constexpr std::int64_t kNowMs = 1795871091000;  // Sat, 28 Nov 2026 13:04:51 UTC

class CampaignFeaturesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    yamlPath_ = dir_.file("campaign.yaml");
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    ASSERT_NE(key, nullptr);
    std::FILE* f = std::fopen(dir_.file("dkim.pem").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    EVP_PKEY_free(key);
    ::chmod(dir_.file("dkim.pem").c_str(), 0600);
    dir_.write("unsub.key", "0123456789abcdef0123456789abcdef\n");
    ::chmod(dir_.file("unsub.key").c_str(), 0600);
  }

  Messages validate(const std::string& yaml) {
    yamlPath_ = dir_.write("campaign.yaml", yaml);
    diags_ = Diagnostics();
    loaded_ = validateCampaign(yamlPath_, diags_, count_);
    EXPECT_EQ(loaded_.has_value(), diags_.empty());
    return messages(diags_);
  }
  std::string y(const std::string& rest) const { return yamlPath_ + rest; }

  std::string render(const Campaign& c, std::string_view to, const std::vector<std::string>& v) {
    std::string out;
    c.render(JobIdentity{4, 17}, to, v, kNowMs, out);
    return out;
  }

  TempDir dir_;
  std::string yamlPath_;
  Diagnostics diags_;
  std::optional<LoadedCampaign> loaded_;
  std::uint64_t count_ = 0;
};

const char kFull[] = R"(id: autumn
from: "Ünïcode Shop <news@shop.example>"
reply_to: {name: Help Desk, address: help@shop.example}
subject: "Hi {{name | default: \"friend\"}}"
text: "Hello {{name | default: \"friend\"}}, see {{url}}"
html_file: body.html
headers:
  X-Campaign: autumn
  X-Customer: "{{name}} – Ü"
tags: [newsletter, autumn]
start_at: "2026-12-01T10:00:00+01:00"
rate: 5000/h
unsubscribe:
  url: https://shop.example/u
  mailto: unsub@shop.example
  secret_file: unsub.key
dkim: {domain: shop.example, selector: s2026, key_file: dkim.pem, algorithm: ed25519-sha256}
bounce_domain: Bounce.Shop.example
recipients:
  - {email: ann@x.example, name: "Ann <&>", url: "https://x/?a=1&b=2"}
  - {email: bob@x.example, url: ""}
)";

TEST_F(CampaignFeaturesTest, EveryFieldLoadsAndRenders) {
  dir_.write("body.html", "<p>Hello {{name | default: \"friend\"}}</p>\n");
  ASSERT_EQ(validate(kFull), Messages{});
  const Campaign& c = *loaded_->campaign;
  EXPECT_EQ(count_, 2u);
  EXPECT_EQ(c.tags(), (std::vector<std::string>{"newsletter", "autumn"}));
  EXPECT_EQ(c.startAtMs(), 1796115600000);  // 2026-12-01T09:00:00Z
  ASSERT_TRUE(c.rate().has_value());
  EXPECT_EQ(c.rate()->messages, 5000u);
  EXPECT_EQ(c.rate()->periodMs, 3600000u);
  EXPECT_EQ(c.envelopeFrom(JobIdentity{4, 17}), "bounces+c4-17@bounce.shop.example");
  EXPECT_EQ(c.htmlSource(), "<p>Hello {{name | default: \"friend\"}}</p>\n");

  const std::string out = render(c, "ann@x.example", {"Ann <&>", "https://x/?a=1&b=2"});
  EXPECT_EQ(out.rfind("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                      "\td=shop.example; s=s2026; t=1795871091;\r\n",
                      0),
            0u);
  const std::string token = c.unsubscribeToken("ann@x.example");
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(token.find_first_of("+/="), std::string::npos);
  const std::string headers = out.substr(out.find("\r\nFrom: ") + 2);
  EXPECT_EQ(headers.substr(0, headers.find("\r\nDate: ")),
            "From: =?UTF-8?B?w5xuw69jb2RlIFNob3A=?= <news@shop.example>\r\n"
            "To: ann@x.example\r\n"
            "Reply-To: Help Desk <help@shop.example>\r\n"
            "Subject: Hi Ann <&>");
  EXPECT_NE(headers.find("\r\nList-Unsubscribe: <https://shop.example/u?c=autumn&r=ann%40x.example"
                         "&t=" +
                         token +
                         ">,\r\n <mailto:unsub@shop.example?subject=unsubscribe>\r\n"
                         "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                         "X-Campaign: autumn\r\n"
                         "X-Customer: =?UTF-8?B?QW5uIDwmPiDigJMgw5w=?=\r\n"
                         "MIME-Version: 1.0\r\n"
                         "Content-Type: multipart/alternative; boundary=\"=_salvo_"),
            std::string::npos)
      << headers;
  EXPECT_NE(out.find("Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 7bit\r\n\r\n"
                     "Hello Ann <&>, see https://x/?a=1&b=2\r\n"),
            std::string::npos);
  EXPECT_NE(out.find("Content-Type: text/html; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 7bit\r\n\r\n"
                     "<p>Hello Ann &lt;&amp;&gt;</p>\r\n\r\n--=_salvo_"),
            std::string::npos);

  const std::string bob = render(c, "bob@x.example", {"", ""});
  EXPECT_NE(bob.find("\r\nSubject: Hi friend\r\n"), std::string::npos);
  EXPECT_NE(bob.find("<p>Hello friend</p>"), std::string::npos);

  // The stored form names files, never their content, and renders the same bytes.
  const std::string blob = c.serialize();
  EXPECT_EQ(blob.find("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(blob.find("PRIVATE"), std::string::npos);
  std::string error;
  const auto copy = Campaign::deserialize(blob, error);
  ASSERT_NE(copy, nullptr) << error;
  EXPECT_EQ(render(*copy, "ann@x.example", {"Ann <&>", "https://x/?a=1&b=2"}), out);
  EXPECT_EQ(copy->serialize(), blob);
}

TEST_F(CampaignFeaturesTest, UnsubscribeTokenIsHmacSha256OfCampaignAndRecipient) {
  dir_.write("body.html", "<p>x</p>");
  ASSERT_EQ(validate(kFull), Messages{});
  const std::string key = "0123456789abcdef0123456789abcdef";
  const std::string data = "autumn\nann@x.example";
  unsigned char mac[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &length);
  std::string expected;
  appendBase64(expected, std::string_view(reinterpret_cast<const char*>(mac), length));
  for (char& ch : expected) {
    ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
  }
  expected.resize(43);  // no padding
  EXPECT_EQ(loaded_->campaign->unsubscribeToken("ann@x.example"), expected);
  EXPECT_NE(loaded_->campaign->unsubscribeToken("bob@x.example"), expected);
}

TEST_F(CampaignFeaturesTest, HtmlOnlyNonAsciiIsBase64AndLongLinesAreQuotedPrintable) {
  ASSERT_EQ(validate(R"(id: h
from: news@shop.example
subject: s
html: "<p>Привет, {{name}}</p>"
recipients:
  - {email: a@x.example, name: Иван}
)"),
            Messages{});
  std::string out = render(*loaded_->campaign, "a@x.example", {"Иван"});
  EXPECT_NE(out.find("Content-Type: text/html; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n"),
            std::string::npos);
  ASSERT_EQ(validate(R"(id: t
from: news@shop.example
subject: s
text: "{{long}}"
recipients:
  - {email: a@x.example, long: x}
)"),
            Messages{});
  out = render(*loaded_->campaign, "a@x.example", {std::string(2000, 'y')});
  EXPECT_NE(out.find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos);
  for (std::size_t start = 0, end; (end = out.find("\r\n", start)) != std::string::npos;
       start = end + 2) {
    EXPECT_LE(end - start, 76u);
  }
}

TEST_F(CampaignFeaturesTest, FieldErrorsCarryPositionsAndExactMessages) {
  ::chmod(dir_.file("dkim.pem").c_str(), 0640);
  dir_.write("short.key", "tooshort");
  ::chmod(dir_.file("short.key").c_str(), 0600);
  EXPECT_EQ(validate(R"(id: x
from: news@shop.example
reply_to: "a@@b"
subject: s
text: t
text_file: t.txt
headers:
  From: evil@x.example
  Content-Type: text/html
  X-Ok: "a {{nope}}"
  "Bad Name": x
tags: [ok, ""]
start_at: tomorrow
rate: fast
unsubscribe: {url: "http://shop.example/u", secret_file: short.key}
dkim: {domain: shop.example, selector: s1, key_file: dkim.pem}
bounce_domain: "bad..domain"
recipients:
  - {email: a@x.example}
)"),
            (Messages{
                y(":3:11: invalid reply_to address 'a@@b': more than one '@' (quote the local "
                  "part if it contains one)"),
                y(":6:1: use either 'text' or 'text_file', not both"),
                y(":8:3: header 'From' is set by Salvo and cannot be given in 'headers'"),
                y(":9:3: header 'Content-Type' is set by Salvo and cannot be given in 'headers' "
                  "(Content-* headers follow the bodies)"),
                y(":10:12: unknown merge field 'nope' (known: email)"),
                y(":11:3: header 'Bad Name' is not a valid header name (printable ASCII without "
                  "':' or spaces)"),
                y(":12:12: invalid tag '': use 1 to 64 characters without control characters"),
                y(":13:11: start_at 'tomorrow' is not an RFC 3339 timestamp like "
                  "2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00"),
                y(":14:7: rate 'fast' must be a count per unit like \"100/s\", \"600/m\", "
                  "\"5000/h\" or \"100000/d\""),
                y(":15:20: unsubscribe url 'http://shop.example/u' must be an https:// URL (RFC "
                  "8058) of at most 512 characters without spaces, quotes or angle brackets"),
                y(":15:58: secret file '" + dir_.file("short.key") +
                  "' holds 8 bytes; use at least 16 random bytes"),
                y(":16:54: DKIM key file '" + dir_.file("dkim.pem") +
                  "' is readable by group or others (mode 0640): run chmod 600 on it"),
                y(":17:16: invalid bounce_domain 'bad..domain': domain 'bad..domain' has an empty "
                  "label"),
            }));
}

TEST_F(CampaignFeaturesTest, BodyFileErrorsPointIntoTheFile) {
  dir_.write("body.html", "<p>\n  Hi {{nmae}}</p>\n<p>{{name | upcase}}</p>\n");
  EXPECT_EQ(validate(R"(id: x
from: news@shop.example
subject: s
html_file: body.html
recipients:
  - {email: a@x.example, name: A}
)"),
            Messages{dir_.file("body.html") +
                     ":3:4: unknown filter 'upcase' in 'name' (only 'default: \"text\"' is "
                     "supported)"});
  dir_.write("body.html", "<p>\n  Hi {{nmae}}</p>\n");
  EXPECT_EQ(
      validate(R"(id: x
from: news@shop.example
subject: s
html_file: body.html
recipients:
  - {email: a@x.example, name: A}
)"),
      Messages{dir_.file("body.html") + ":2:6: unknown merge field 'nmae' (known: email, name)"});
  EXPECT_EQ(validate(R"(id: x
from: news@shop.example
subject: s
text_file: missing.txt
recipients:
  - {email: a@x.example}
)"),
            Messages{y(":4:12: cannot open text file 'missing.txt': No such file or directory")});
  EXPECT_EQ(diags_.exitCode(), kExitNoInput);
  EXPECT_EQ(validate(R"(id: x
from: news@shop.example
subject: s
recipients:
  - {email: a@x.example}
)"),
            Messages{y(":1:1: missing body: give 'text' (or 'text_file'), 'html' (or "
                       "'html_file'), or both")});
}

TEST_F(CampaignFeaturesTest, HeaderInjectionInMergeValuesNamesTheRow) {
  // 'id' lands in a custom header, so no line break may pass; 'note' is in the html body,
  // where a line feed is text; CR and NUL never pass.
  const std::string rows = std::string(
                               "\xEF\xBB\xBF"
                               "email,id,note\n"
                               "ann@x.example,\"A1\r\nBcc: all@x.example\",ok\n"
                               "bob@x.example,B2,\"two\nlines, \"\"quoted\"\"\"\n"
                               "carl@x.example,C\x01,x\n"
                               "dan@x.example,D4,\"nul") +
                           '\0' +
                           "here\"\n"
                           "\"eve@@x.example\",E5,x\n"
                           "\"\"\"frank smith\"\"@x.example\",F6,x\n";
  dir_.write("r.csv", rows);
  EXPECT_EQ(
      validate(R"(id: inj
from: news@shop.example
subject: s
headers: {X-Customer-Id: "{{id}}"}
html: "<p>{{note}}</p>"
recipients_csv: r.csv
)"),
      (Messages{
          dir_.file("r.csv") + ":2:15: row 2 (ann@x.example): value of 'id' contains a line break",
          dir_.file("r.csv") + ":7:18: row 5 (dan@x.example): value of 'note' contains a "
                               "NUL byte",
          dir_.file("r.csv") + ":8:1: recipient 'eve@@x.example': more than one '@' (quote "
                               "the local part if it contains one)",
      }));
  EXPECT_EQ(count_, 3u);
}

TEST_F(CampaignFeaturesTest, HeaderInjectionInAddressesAndHeadersIsRefused) {
  EXPECT_EQ(validate(R"(id: x
from: "News <news@shop.example>"
reply_to: "Help\r\nBcc: all@x.example <help@shop.example>"
subject: s
text: t
headers: {X-A: "a\nBcc: all@x.example", X-B: "ok\0"}
unsubscribe: {mailto: "u@shop.example\r\nBcc: x@y.example"}
recipients:
  - {email: "ann@x.example\r\nBcc: b@x.example"}
  - {email: "bob@x.example", x: "\0"}
)"),
            (Messages{
                y(":3:11: invalid reply_to address 'Help\\r\\nBcc: all@x.example "
                  "<help@shop.example>': address contains a line break"),
                y(":6:16: header 'X-A' contains a line break or NUL byte"),
                y(":6:46: header 'X-B' contains a line break or NUL byte"),
                y(":7:23: invalid unsubscribe mailto 'u@shop.example\\r\\nBcc: x@y.example': "
                  "address contains a line break"),
                y(":9:13: recipient 'ann@x.example\\r\\nBcc: b@x.example': address contains a "
                  "line break"),
                y(":10:33: recipient 2 (bob@x.example): value of 'x' contains a NUL byte"),
            }));
}

TEST_F(CampaignFeaturesTest, Rfc3339AndRateParsing) {
  EXPECT_EQ(parseRfc3339Ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339Ms("2026-11-28T13:04:51.250Z"), kNowMs + 250);
  EXPECT_EQ(parseRfc3339Ms("2026-11-28t14:04:51+01:00"), kNowMs);
  EXPECT_EQ(parseRfc3339Ms("2026-11-28T08:04:51-05:00"), kNowMs);
  EXPECT_EQ(parseRfc3339Ms("2024-02-29T00:00:00Z"), 1709164800000);
  for (std::string_view bad :
       {"2026-11-28", "2026-11-28T13:04:51", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-11-28T13:04:51.Z", "2026-11-28T13:04:51+0100", "2026-11-28T13:04:51Zx"}) {
    EXPECT_FALSE(parseRfc3339Ms(bad).has_value()) << bad;
  }
  EXPECT_EQ(parseRate("100/s")->periodMs, 1000u);
  EXPECT_EQ(parseRate(" 600 / m ")->messages, 600u);
  EXPECT_EQ(parseRate("1/d")->periodMs, 86400000u);
  for (std::string_view bad : {"0/s", "100", "100/w", "-1/s", "x/s", "1000000001/s"}) {
    EXPECT_FALSE(parseRate(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace salvo::campaigns

#include "campaigns/address.h"

#include <gtest/gtest.h>

#include <string>

namespace salvo::campaigns {
namespace {

struct ValidCase {
  std::string input;
  std::string local;
  std::string domain;
};

void PrintTo(const ValidCase& c, std::ostream* os) {
  *os << c.input;
}

class ValidAddressTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ValidAddressTest, Parses) {
  const ValidCase& c = GetParam();
  std::string error;
  const auto addr = parseAddress(c.input, error);
  ASSERT_TRUE(addr.has_value()) << c.input << ": " << error;
  EXPECT_EQ(addr->local, c.local);
  EXPECT_EQ(addr->domain, c.domain);
  EXPECT_EQ(addr->str(), c.local + "@" + c.domain);
  // The canonical form parses to itself.
  const auto again = parseAddress(addr->str(), error);
  ASSERT_TRUE(again.has_value()) << addr->str() << ": " << error;
  EXPECT_EQ(again->str(), addr->str());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidAddressTest,
    ::testing::Values(
        ValidCase{"ann@example.com", "ann", "example.com"},
        ValidCase{"Ann.Lee+tag@Example.COM", "Ann.Lee+tag", "example.com"},
        ValidCase{"!#$%&'*+-/=?^_`{|}~@x.org", "!#$%&'*+-/=?^_`{|}~", "x.org"},
        ValidCase{"user@localhost", "user", "localhost"}, ValidCase{"a@b-c.d1", "a", "b-c.d1"},
        ValidCase{"\"john doe\"@x.com", "\"john doe\"", "x.com"},
        ValidCase{"\"john\"@x.com", "john", "x.com"},  // needless quotes dropped
        ValidCase{"\"a\\\"b\"@x.com", "\"a\\\"b\"", "x.com"},
        ValidCase{"\"a\\b\"@x.com", "ab", "x.com"},  // a needless escape dropped
        ValidCase{"\"a@b\"@x.com", "\"a@b\"", "x.com"},
        ValidCase{"\"a..b\"@x.com", "\"a..b\"", "x.com"}, ValidCase{"\"\"@x.com", "\"\"", "x.com"},
        ValidCase{"user@[192.0.2.1]", "user", "[192.0.2.1]"},
        ValidCase{"user@[IPv6:2001:DB8::1]", "user", "[IPv6:2001:db8::1]"},
        ValidCase{"üser@exämple.com", "üser", "exämple.com"},
        ValidCase{"用户@例子.广告", "用户", "例子.广告"},
        ValidCase{std::string(64, 'a') + "@x.com", std::string(64, 'a'), "x.com"},
        ValidCase{"a@" + std::string(63, 'b') + ".com", "a", std::string(63, 'b') + ".com"}));

struct InvalidCase {
  std::string input;
  std::string error;
};

void PrintTo(const InvalidCase& c, std::ostream* os) {
  *os << c.input;
}

class InvalidAddressTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidAddressTest, RejectsWithReason) {
  const InvalidCase& c = GetParam();
  std::string error;
  EXPECT_FALSE(parseAddress(c.input, error).has_value()) << c.input;
  EXPECT_EQ(error, c.error) << c.input;
}

INSTANTIATE_TEST_SUITE_P(
    Table, InvalidAddressTest,
    ::testing::Values(
        InvalidCase{"", "address is empty"}, InvalidCase{"annexample.com", "missing '@'"},
        InvalidCase{"bob@@x.com", "more than one '@' (quote the local part if it contains one)"},
        InvalidCase{"a@b@x.com", "more than one '@' (quote the local part if it contains one)"},
        InvalidCase{"@x.com", "local part is empty"}, InvalidCase{"a@", "missing domain after '@'"},
        InvalidCase{".a@x.com", "local part starts with '.'"},
        InvalidCase{"a.@x.com", "local part ends with '.'"},
        InvalidCase{"a..b@x.com", "local part contains '..'"},
        InvalidCase{"a b@x.com", "local part contains a space"},
        InvalidCase{"a(b)@x.com", "local part contains '('"},
        InvalidCase{"<a@x.com>", "local part contains '<'"},
        InvalidCase{"a@x..com", "domain 'x..com' has an empty label"},
        InvalidCase{"a@x.com.", "domain 'x.com.' has an empty label"},
        InvalidCase{"a@.x.com", "domain '.x.com' has an empty label"},
        InvalidCase{"a@-x.com", "domain label '-x' starts with '-'"},
        InvalidCase{"a@x-.com", "domain label 'x-' ends with '-'"},
        InvalidCase{"a@x_y.com", "domain contains '_'"},
        InvalidCase{"a@x y.com", "domain contains a space"},
        InvalidCase{"a@" + std::string(64, 'b') + ".com",
                    "domain label '" + std::string(64, 'b') + "' is longer than 63 octets"},
        InvalidCase{std::string(65, 'a') + "@x.com", "local part is longer than 64 octets"},
        InvalidCase{"\"" + std::string(63, 'a') + " \"@x.com",
                    "local part is longer than 64 octets"},
        InvalidCase{std::string(60, 'a') + "@" + std::string(63, 'b') + "." + std::string(63, 'c') +
                        "." + std::string(63, 'd') + ".com",
                    "address is longer than 254 octets"},
        // Header and SMTP injection.
        InvalidCase{"a@x.com\r\nBcc: evil@x.com", "address contains a line break"},
        InvalidCase{"a@x.com\nRCPT TO:<evil@x.com>", "address contains a line break"},
        InvalidCase{"a@x.com\r", "address contains a line break"},
        InvalidCase{std::string("a\0@x.com", 8), "address contains a NUL byte"},
        InvalidCase{"a\t@x.com", "address contains a control character (U+0009)"},
        InvalidCase{"a\x7f@x.com", "address contains a control character (U+007F)"},
        InvalidCase{"a\xc2\x85@x.com", "address contains a control character (U+0085)"},
        InvalidCase{"\xff@x.com", "address is not valid UTF-8"},
        InvalidCase{"\xc3@x.com", "address is not valid UTF-8"},
        // Quoted local parts.
        InvalidCase{"\"unterminated@x.com", "quoted local part is missing its closing '\"'"},
        InvalidCase{"\"a\"b@x.com", "missing '@' after the quoted local part"},
        InvalidCase{"\"a\"", "missing '@' after the quoted local part"},
        InvalidCase{"\"a\\\xc3\xa9\"@x.com",
                    "invalid escape of byte 0xC3 in the quoted local part"},
        // Address literals.
        InvalidCase{"a@[1.2.3]",
                    "invalid address literal '[1.2.3]' (expected [1.2.3.4] or [IPv6:...])"},
        InvalidCase{"a@[1.2.3.256]",
                    "invalid address literal '[1.2.3.256]' (expected [1.2.3.4] or [IPv6:...])"},
        InvalidCase{"a@[1.2.3.4", "address literal is missing ']'"},
        InvalidCase{"a@[IPv6:zz::1]", "invalid IPv6 address literal '[IPv6:zz::1]'"}));

TEST(ParseDomainTest, LowerCasesAndChecks) {
  std::string canonical;
  std::string error;
  EXPECT_TRUE(parseDomain("MX.Example.COM", canonical, error));
  EXPECT_EQ(canonical, "mx.example.com");
  EXPECT_FALSE(parseDomain("", canonical, error));
  EXPECT_EQ(error, "domain is empty");
  EXPECT_FALSE(parseDomain(std::string(256, 'a'), canonical, error));
  EXPECT_EQ(error, "domain is longer than 255 octets");
}

TEST(MailboxTest, DisplayNameForms) {
  std::string error;
  auto m = parseMailbox("Salvo Demo <news@example.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "Salvo Demo");
  EXPECT_EQ(m->address.str(), "news@example.com");
  EXPECT_EQ(m->header(), "Salvo Demo <news@example.com>");

  m = parseMailbox("\"Quoted, Name\" <a@X.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "Quoted, Name");
  EXPECT_EQ(m->header(), "\"Quoted, Name\" <a@x.com>");

  m = parseMailbox("  a@x.com ", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "");
  EXPECT_EQ(m->header(), "a@x.com");

  m = parseMailbox("<a@x.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "");
  EXPECT_EQ(m->header(), "a@x.com");

  m = parseMailbox("\"Say \\\"hi\\\" \\\\o/\" <a@x.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "Say \"hi\" \\o/");
  EXPECT_EQ(m->header(), "\"Say \\\"hi\\\" \\\\o/\" <a@x.com>");

  m = parseMailbox("John Q. Public <j@x.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->header(), "\"John Q. Public\" <j@x.com>");

  m = parseMailbox("\"<Tricky>\" <\"a b\"@x.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "<Tricky>");
  EXPECT_EQ(m->header(), "\"<Tricky>\" <\"a b\"@x.com>");
}

TEST(MailboxTest, NonAsciiDisplayNameIsEncoded) {
  std::string error;
  auto m = parseMailbox("Zoë <z@x.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  EXPECT_EQ(m->displayName, "Zoë");
  EXPECT_EQ(m->header(), "=?UTF-8?B?Wm/Dqw==?= <z@x.com>");

  // A long name becomes several encoded words, folded, each line within 76 characters.
  std::string longName;
  for (int i = 0; i < 20; ++i) {
    longName += "Grüße ";
  }
  m = parseMailbox(longName + "<z@x.com>", error);
  ASSERT_TRUE(m.has_value()) << error;
  const std::string header = "Reply-To: " + m->header();
  std::size_t start = 0;
  while (start < header.size()) {
    std::size_t end = header.find("\r\n", start);
    if (end == std::string::npos) {
      end = header.size();
    }
    EXPECT_LE(end - start, 76u) << header;
    start = end + 2;
  }
  EXPECT_NE(header.find("\r\n "), std::string::npos);
  EXPECT_EQ(header.substr(header.size() - 9), "<z@x.com>");
}

TEST(MailboxTest, Rejects) {
  const std::pair<std::string, std::string> cases[] = {
      {"Name <a@x.com", "missing '>' after the address"},
      {"Name <a@x.com> x", "text after the '>' that closes the address"},
      {"Name a@x.com>", "'>' without a matching '<'"},
      {"\"Unclosed <a@x.com>", "quoted display name is missing its closing '\"'"},
      {"\"Quoted\" tail <a@x.com>",
       "text after the quoted display name (put the whole name in quotes)"},
      {"Na\"me <a@x.com>",
       "display name contains '\"' (put the whole name in quotes and escape it as \\\")"},
      {"Name\r\nBcc: evil@x.com <a@x.com>", "address contains a line break"},
      {"Name <a@@x.com>", "more than one '@' (quote the local part if it contains one)"},
      {"Name <>", "address is empty"},
      {"", "address is empty"},
      {"\"Bell\x07\" <a@x.com>", "display name contains a control character (U+0007)"},
      {std::string(257, 'n') + " <a@x.com>", "display name is longer than 256 octets"},
  };
  for (const auto& [input, expected] : cases) {
    std::string error;
    EXPECT_FALSE(parseMailbox(input, error).has_value()) << input;
    EXPECT_EQ(error, expected) << input;
  }
}

TEST(HeaderInjectionTest, DetectsLineBreaksAndNul) {
  EXPECT_FALSE(hasLineBreakOrNul("plain value"));
  EXPECT_TRUE(hasLineBreakOrNul("a\rb"));
  EXPECT_TRUE(hasLineBreakOrNul("a\nb"));
  EXPECT_TRUE(hasLineBreakOrNul(std::string("a\0b", 3)));
  EXPECT_FALSE(hasLineBreakOrNul("tab\tis fine"));
}

}  // namespace
}  // namespace salvo::campaigns

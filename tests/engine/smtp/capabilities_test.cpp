#include "engine/smtp/capabilities.h"

#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace salvo::smtp {
namespace {

Reply ehlo(std::vector<std::string> lines) {
  Reply r;
  r.code = 250;
  r.lines = std::move(lines);
  return r;
}

// The reply as it comes off the wire, parsed one byte at a time.
Reply parseOneByteAtATime(std::string_view wire) {
  ReplyParser parser;
  std::vector<Reply> out;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    EXPECT_TRUE(parser.feed(wire.substr(i, 1), out)) << parser.error();
  }
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? Reply{} : out[0];
}

TEST(CapabilitiesTest, PostfixStyleReply) {
  const Reply reply = parseOneByteAtATime(
      "250-mx.example.com\r\n"
      "250-PIPELINING\r\n"
      "250-SIZE 10240000\r\n"
      "250-VRFY\r\n"
      "250-ETRN\r\n"
      "250-STARTTLS\r\n"
      "250-AUTH PLAIN LOGIN\r\n"
      "250-ENHANCEDSTATUSCODES\r\n"
      "250-8BITMIME\r\n"
      "250-DSN\r\n"
      "250-SMTPUTF8\r\n"
      "250 CHUNKING\r\n");
  const Capabilities caps = Capabilities::fromEhlo(reply);
  EXPECT_TRUE(caps.esmtp);
  EXPECT_TRUE(caps.pipelining);
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.maxSize, 10240000u);
  EXPECT_TRUE(caps.startTls);
  EXPECT_TRUE(caps.enhancedStatusCodes);
  EXPECT_TRUE(caps.eightBitMime);
  EXPECT_TRUE(caps.smtpUtf8);
  EXPECT_TRUE(caps.chunking);
  EXPECT_EQ(caps.authMechanisms, (std::vector<std::string>{"PLAIN", "LOGIN"}));
}

TEST(CapabilitiesTest, GreetingOnlyMeansNoExtensions) {
  const Capabilities caps = Capabilities::fromEhlo(ehlo({"mx.example.com Hello PIPELINING"}));
  EXPECT_TRUE(caps.esmtp);
  EXPECT_FALSE(caps.pipelining);  // the first line is the greeting, not a keyword
  EXPECT_FALSE(caps.size);
  EXPECT_EQ(caps.maxSize, 0u);
  EXPECT_TRUE(caps.authMechanisms.empty());
}

TEST(CapabilitiesTest, KeywordsAreCaseInsensitive) {
  const Capabilities caps = Capabilities::fromEhlo(
      ehlo({"mx", "pipelining", "Size 2048", "starttls", "8bitmime", "SmtpUtf8",
            "enhancedStatusCodes", "chunking", "auth plain cram-md5"}));
  EXPECT_TRUE(caps.pipelining);
  EXPECT_EQ(caps.maxSize, 2048u);
  EXPECT_TRUE(caps.startTls);
  EXPECT_TRUE(caps.eightBitMime);
  EXPECT_TRUE(caps.smtpUtf8);
  EXPECT_TRUE(caps.enhancedStatusCodes);
  EXPECT_TRUE(caps.chunking);
  EXPECT_EQ(caps.authMechanisms, (std::vector<std::string>{"PLAIN", "CRAM-MD5"}));
}

TEST(CapabilitiesTest, OldAuthFormAndDuplicates) {
  const Capabilities caps =
      Capabilities::fromEhlo(ehlo({"mx", "AUTH=LOGIN PLAIN", "AUTH PLAIN LOGIN XOAUTH2"}));
  EXPECT_EQ(caps.authMechanisms, (std::vector<std::string>{"LOGIN", "PLAIN", "XOAUTH2"}));

  const Capabilities lower = Capabilities::fromEhlo(ehlo({"mx", "auth=login"}));
  EXPECT_EQ(lower.authMechanisms, std::vector<std::string>{"LOGIN"});

  const Capabilities bare = Capabilities::fromEhlo(ehlo({"mx", "AUTH", "AUTH="}));
  EXPECT_TRUE(bare.authMechanisms.empty());
}

TEST(CapabilitiesTest, SizeVariants) {
  Capabilities caps = Capabilities::fromEhlo(ehlo({"mx", "SIZE"}));
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.maxSize, 0u);

  caps = Capabilities::fromEhlo(ehlo({"mx", "SIZE 0"}));
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.maxSize, 0u);

  caps = Capabilities::fromEhlo(ehlo({"mx", "SIZE 12abc"}));
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.maxSize, 0u);

  caps = Capabilities::fromEhlo(ehlo({"mx", "SIZE 99999999999999999999999"}));
  EXPECT_EQ(caps.maxSize, std::numeric_limits<std::uint64_t>::max());

  caps = Capabilities::fromEhlo(ehlo({"mx", "SIZE\t 52428800"}));
  EXPECT_EQ(caps.maxSize, 52428800u);

  caps = Capabilities::fromEhlo(ehlo({"mx", "SIZES 10"}));
  EXPECT_FALSE(caps.size);
}

TEST(CapabilitiesTest, UnknownKeywordsAndBlankLinesAreIgnored) {
  const Capabilities caps = Capabilities::fromEhlo(
      ehlo({"mx", "", "   ", "X-EXPS GSSAPI", "PIPELININGX", "DSN", "PIPELINING"}));
  EXPECT_TRUE(caps.pipelining);
  EXPECT_FALSE(caps.startTls);
  EXPECT_TRUE(caps.authMechanisms.empty());
}

}  // namespace
}  // namespace salvo::smtp

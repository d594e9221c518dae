#include "engine/dns/names.h"

#include <gtest/gtest.h>

namespace salvo::dns {
namespace {

TEST(NormalizeName, LowerCasesAndDropsOneTrailingDot) {
  EXPECT_EQ(normalizeName("MX1.Example.COM."), "mx1.example.com");
  EXPECT_EQ(normalizeName("mx1.example.com"), "mx1.example.com");
  EXPECT_EQ(normalizeName("."), "");
  EXPECT_EQ(normalizeName(""), "");
  // Only ASCII letters change: DNS compares names ASCII case-insensitively (RFC 4343).
  EXPECT_EQ(normalizeName("xn--BCHER-KVA.Example"), "xn--bcher-kva.example");
  EXPECT_EQ(normalizeName("a_b-9.@Z["), "a_b-9.@z[");
}

TEST(IpLiteralEndpoint, AcceptsIpv4Ipv6AndBracketedIpv6) {
  auto v4 = ipLiteralEndpoint("192.0.2.1", 25);
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->str(), "192.0.2.1:25");
  auto v6 = ipLiteralEndpoint("2001:db8::1", 587);
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->str(), "[2001:db8::1]:587");
  auto bracketed = ipLiteralEndpoint("[::1]", 2525);
  ASSERT_TRUE(bracketed.has_value());
  EXPECT_EQ(bracketed->str(), "[::1]:2525");
}

TEST(IpLiteralEndpoint, RejectsNames) {
  EXPECT_FALSE(ipLiteralEndpoint("mx.example.com", 25).has_value());
  EXPECT_FALSE(ipLiteralEndpoint("", 25).has_value());
  EXPECT_FALSE(ipLiteralEndpoint("[]", 25).has_value());
  EXPECT_FALSE(ipLiteralEndpoint("[::1", 25).has_value());
  EXPECT_FALSE(ipLiteralEndpoint("192.0.2.1:25", 25).has_value());
}

}  // namespace
}  // namespace salvo::dns

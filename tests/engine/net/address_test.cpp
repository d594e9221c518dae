#include "engine/net/address.h"

#include <gtest/gtest.h>

namespace salvo::net {
namespace {

TEST(EndpointTest, ParsesIpv4Literal) {
  auto ep = Endpoint::fromIp("1.2.3.4", 25);
  ASSERT_TRUE(ep.has_value());
  EXPECT_EQ(ep->family(), AF_INET);
  EXPECT_EQ(ep->port(), 25);
  EXPECT_EQ(ep->ip(), "1.2.3.4");
  EXPECT_EQ(ep->str(), "1.2.3.4:25");
}

TEST(EndpointTest, ParsesIpv6Literal) {
  auto ep = Endpoint::fromIp("::1", 2525);
  ASSERT_TRUE(ep.has_value());
  EXPECT_EQ(ep->family(), AF_INET6);
  EXPECT_EQ(ep->port(), 2525);
  EXPECT_EQ(ep->ip(), "::1");
  EXPECT_EQ(ep->str(), "[::1]:2525");
}

TEST(EndpointTest, CanonicalisesIpv6) {
  auto ep = Endpoint::fromIp("2001:0db8:0000:0000:0000:0000:0000:0001", 587);
  ASSERT_TRUE(ep.has_value());
  EXPECT_EQ(ep->str(), "[2001:db8::1]:587");
}

TEST(EndpointTest, RejectsNonLiterals) {
  EXPECT_FALSE(Endpoint::fromIp("", 25).has_value());
  EXPECT_FALSE(Endpoint::fromIp("localhost", 25).has_value());
  EXPECT_FALSE(Endpoint::fromIp("1.2.3", 25).has_value());
  EXPECT_FALSE(Endpoint::fromIp("256.1.1.1", 25).has_value());
  EXPECT_FALSE(Endpoint::fromIp("[::1]", 25).has_value());
  EXPECT_FALSE(Endpoint::fromIp("1.2.3.4 ", 25).has_value());
  EXPECT_FALSE(Endpoint::fromIp(std::string(100, '1'), 25).has_value());
}

TEST(EndpointTest, DefaultIsEmpty) {
  Endpoint ep;
  EXPECT_EQ(ep.port(), 0);
  EXPECT_EQ(ep.ip(), "");
}

TEST(SplitHostPortTest, HostAndPort) {
  std::string host;
  std::uint16_t port = 0;
  ASSERT_TRUE(splitHostPort("127.0.0.1:2525", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 2525);
  ASSERT_TRUE(splitHostPort("mx.example.com:25", host, port));
  EXPECT_EQ(host, "mx.example.com");
  EXPECT_EQ(port, 25);
  ASSERT_TRUE(splitHostPort("127.0.0.1:0", host, port));
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(splitHostPort("h:65535", host, port));
  EXPECT_EQ(port, 65535);
}

TEST(SplitHostPortTest, BracketedIpv6) {
  std::string host;
  std::uint16_t port = 0;
  ASSERT_TRUE(splitHostPort("[::1]:25", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 25);
  ASSERT_TRUE(splitHostPort("[2001:db8::1]:587", host, port));
  EXPECT_EQ(host, "2001:db8::1");
  EXPECT_EQ(port, 587);
}

TEST(SplitHostPortTest, RejectsMalformed) {
  std::string host = "unchanged";
  std::uint16_t port = 7;
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":25", "h:65536", "h:-1", "h:2a", "h:+25",
                          "h:123456", "::1:25", "[::1]", "[::1]25", "[::1:25", "[]:25", "h: 25"}) {
    EXPECT_FALSE(splitHostPort(bad, host, port)) << bad;
  }
  EXPECT_EQ(host, "unchanged");
  EXPECT_EQ(port, 7);
}

}  // namespace
}  // namespace salvo::net

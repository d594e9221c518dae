#include "engine/route_table.h"

#include <gtest/gtest.h>

namespace salvo::engine {
namespace {

RouteTable table() {
  return RouteTable({{"exact.example", "10.0.0.1", 25, {}},
                     {"*.sub.example", "10.0.0.2", 2525, {}},
                     {"*", "10.0.0.3", 587, {}}});
}

TEST(RouteTableTest, ExactMatchIsCaseInsensitive) {
  auto t = table();
  ASSERT_NE(t.match("Exact.EXAMPLE"), nullptr);
  EXPECT_EQ(t.match("Exact.EXAMPLE")->host, "10.0.0.1");
}

TEST(RouteTableTest, WildcardMatchesBaseAndSubdomainsOnly) {
  auto t = table();
  EXPECT_EQ(t.match("sub.example")->host, "10.0.0.2");
  EXPECT_EQ(t.match("a.b.sub.example")->host, "10.0.0.2");
  // "xsub.example" is not a subdomain of sub.example: falls through to "*".
  EXPECT_EQ(t.match("xsub.example")->host, "10.0.0.3");
}

TEST(RouteTableTest, FirstMatchWinsAndNoRouteIsNull) {
  RouteTable t({{"*.example", "a", 1, {}}, {"x.example", "b", 2, {}}});
  EXPECT_EQ(t.match("x.example")->host, "a");
  EXPECT_EQ(t.match("example.org"), nullptr);
  EXPECT_EQ(RouteTable({}).match("x.example"), nullptr);
}

}  // namespace
}  // namespace salvo::engine

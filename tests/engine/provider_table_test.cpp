#include "engine/provider_table.h"

#include <gtest/gtest.h>

#include "tests/engine/policy_files.h"

#include <string>

namespace salvo::engine {
namespace {

TEST(ProviderTableTest, FindsProvidersByMxHost) {
  const ProviderTable t;
  EXPECT_EQ(t.lookup("gmail-smtp-in.l.google.com").name, "gmail");
  EXPECT_EQ(t.lookup("ALT1.ASPMX.L.GOOGLE.COM.").name, "gmail");
  EXPECT_EQ(t.lookup("alt2.gmail-smtp-in.l.googlemail.com").name, "gmail");
  EXPECT_EQ(t.lookup("mta7.am0.yahoodns.net").name, "yahoo");
  EXPECT_EQ(t.lookup("example-com.mail.protection.outlook.com").name, "microsoft");
  EXPECT_EQ(t.lookup("hotmail-com.olc.protection.outlook.com").name, "microsoft");
  EXPECT_EQ(t.lookup("mx01.mail.icloud.com").name, "apple");
  EXPECT_EQ(t.lookup("mx00.emig.gmx.net").name, "gmx");
  EXPECT_EQ(t.lookup("mx1.example.org").name, "other");
  // A look-alike is not the provider: the match is on whole labels.
  EXPECT_EQ(t.lookup("evilgoogle.com").name, "other");
  EXPECT_EQ(t.lookup("google.com.evil.example").name, "other");
}

TEST(ProviderTableTest, TheFirstMatchingMxHostDecides) {
  const ProviderTable t;
  EXPECT_EQ(t.lookup(std::vector<std::string>{"mx.self-hosted.example", "aspmx.l.google.com"}).name,
            "gmail");
  EXPECT_EQ(t.lookup(std::vector<std::string>{}).name, "other");
}

TEST(ProviderTableTest, ProvidersOverrideTheDefaults) {
  const ProviderTable t;
  const DestinationLimits& gmail = t.lookup("aspmx.l.google.com").limits;
  EXPECT_EQ(gmail.maxConnections, 10);
  EXPECT_EQ(gmail.initialConnections, defaultDestinationLimits().initialConnections);
  EXPECT_EQ(t.lookup("mx.example.org").limits, defaultDestinationLimits());
  const auto names = t.names();
  EXPECT_EQ(names.front(), "gmail");
  EXPECT_EQ(names.back(), "other");
}

TEST(ProviderTableTest, PatternMatching) {
  EXPECT_TRUE(mxPatternMatches("*.google.com", "google.com"));
  EXPECT_TRUE(mxPatternMatches("*.google.com", "a.b.google.com"));
  EXPECT_FALSE(mxPatternMatches("*.google.com", "xgoogle.com"));
  EXPECT_TRUE(mxPatternMatches("mx.example.net", "mx.example.net"));
  EXPECT_FALSE(mxPatternMatches("mx.example.net", "a.mx.example.net"));
}

TEST(ProviderTableTest, ShippedFileIsExactlyTheBuiltInTable) {
  campaigns::Diagnostics diags;
  const auto t = ProviderTable::load(testing::shippedPolicyFile("providers.yaml"), diags);
  ASSERT_TRUE(t.has_value()) << (diags.empty() ? "" : diags.items().front().str());
  const ProviderTable builtIn;
  EXPECT_EQ(t->defaults(), builtIn.defaults());
  ASSERT_EQ(t->providers().size(), builtIn.providers().size());
  for (std::size_t i = 0; i < builtIn.providers().size(); ++i) {
    EXPECT_EQ(t->providers()[i], builtIn.providers()[i]) << builtIn.providers()[i].name;
  }
}

TEST(ProviderTableTest, ParsesDefaultsAndOverrides) {
  campaigns::Diagnostics diags;
  const auto t = ProviderTable::parse(R"(defaults: { max_connections: 3, probe_delay: 30s }
providers:
  - name: corp
    mx: "*.Corp.Example."
    limits: { messages_per_second: 2.5 }
)",
                                      "p.yaml", diags);
  ASSERT_TRUE(t.has_value()) << ::testing::PrintToString(diags.items().front().str());
  const Provider& corp = t->lookup("mx1.corp.example");
  EXPECT_EQ(corp.name, "corp");
  EXPECT_EQ(corp.mxPatterns, std::vector<std::string>{"*.corp.example"});
  EXPECT_EQ(corp.limits.maxConnections, 3);
  EXPECT_EQ(corp.limits.probeDelayMs, 30'000);
  EXPECT_DOUBLE_EQ(corp.limits.messagesPerSecond, 2.5);
  EXPECT_EQ(t->lookup("aspmx.l.google.com").name, "other");  // the file replaces the table
  EXPECT_EQ(t->defaults().maxConnections, 3);
}

TEST(ProviderTableTest, ReportsEveryErrorWithItsPosition) {
  campaigns::Diagnostics diags;
  EXPECT_FALSE(ProviderTable::parse(R"(defaults: { max_conections: 3 }
providers:
  - name: Other
    mx: ["*.a.example"]
  - name: b
    mx: []
  - name: c
    mx: ["*.bad domain"]
    limits: { max_connections: 0, messages_per_second: fast, probe_delay: 0s }
  - name: c
    mx: c.example
)",
                                    "p.yaml", diags)
                   .has_value());
  std::vector<std::string> errors;
  for (const auto& d : diags.items()) {
    EXPECT_EQ(d.exitCode, campaigns::kExitConfig);
    errors.push_back(d.str());
  }
  ASSERT_EQ(errors.size(), 8u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0].find("p.yaml:1:13: unknown key 'max_conections' (did you mean "
                           "'max_connections'?)"),
            0u)
      << errors[0];
  EXPECT_EQ(errors[1].find("p.yaml:3:11: invalid provider name 'Other'"), 0u) << errors[1];
  EXPECT_EQ(errors[2].find("p.yaml:6:9: 'mx' must be a pattern or a non-empty list"), 0u)
      << errors[2];
  EXPECT_EQ(errors[3].find("p.yaml:8:10: invalid MX pattern '*.bad domain'"), 0u) << errors[3];
  EXPECT_EQ(errors[4],
            "p.yaml:9:32: 'max_connections' must be a whole number from 1 to 100000, "
            "not '0'");
  EXPECT_EQ(errors[5],
            "p.yaml:9:56: 'messages_per_second' must be a number from 0 to 1000000, "
            "not 'fast'");
  EXPECT_EQ(errors[6],
            "p.yaml:9:75: 'probe_delay' must be a duration from 1s to 1d (like 30s, "
            "5m), not '0s'");
  EXPECT_EQ(errors[7], "p.yaml:10:11: provider 'c' is listed twice");
}

}  // namespace
}  // namespace salvo::engine

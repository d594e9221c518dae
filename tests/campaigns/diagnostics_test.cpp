#include "campaigns/diagnostics.h"

#include <gtest/gtest.h>

namespace salvo::campaigns {
namespace {

TEST(DiagnosticTest, FormatsTheKnownParts) {
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 7, "boom"}.str()), "a.yaml:3:7: boom");
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 0, "boom"}.str()), "a.yaml:3: boom");
  EXPECT_EQ((Diagnostic{"a.yaml", 0, 0, "boom"}.str()), "a.yaml: boom");
  EXPECT_EQ((Diagnostic{"", 0, 0, "boom"}.str()), "boom");
}

TEST(DiagnosticsTest, CapsAndCountsDropped) {
  Diagnostics diags;
  for (std::size_t i = 0; i < Diagnostics::kMaxErrors + 5; ++i) {
    diags.add("f", 1, 1, "e");
  }
  EXPECT_EQ(diags.items().size(), Diagnostics::kMaxErrors);
  EXPECT_EQ(diags.dropped(), 5u);
  EXPECT_EQ(diags.size(), Diagnostics::kMaxErrors + 5);
}

TEST(DiagnosticsTest, ExitCodePrefersMissingInput) {
  Diagnostics diags;
  EXPECT_EQ(diags.exitCode(), 0);
  diags.add("f", 1, 1, "bad", kExitDataErr);
  EXPECT_EQ(diags.exitCode(), kExitDataErr);
  diags.add("g", 0, 0, "missing", kExitNoInput);
  EXPECT_EQ(diags.exitCode(), kExitNoInput);
  Diagnostics config;
  config.add("salvo.yaml", 2, 3, "bad", kExitConfig);
  EXPECT_EQ(config.exitCode(), kExitConfig);
}

TEST(DiagnosticsTest, SortFromOrdersByFileThenPosition) {
  Diagnostics diags;
  diags.add("early", 9, 9, "kept first");
  diags.add("b.yaml", 4, 1, "b4");
  diags.add("a.csv", 2, 5, "a2");
  diags.add("b.yaml", 1, 5, "b1");
  diags.add("a.csv", 1, 1, "a1");
  diags.add("b.yaml", 1, 2, "b1c2");
  diags.sortFrom(1);
  std::vector<std::string> order;
  for (const Diagnostic& d : diags.items()) {
    order.push_back(d.message);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"kept first", "b1c2", "b1", "b4", "a1", "a2"}));
  diags.sortFrom(100);  // past the end: nothing to do
  EXPECT_EQ(diags.items().size(), 6u);
}

}  // namespace
}  // namespace salvo::campaigns

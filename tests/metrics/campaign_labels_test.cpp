#include "metrics/campaign_labels.h"

#include <gtest/gtest.h>

namespace salvo::metrics {
namespace {

TEST(CampaignLabelsTest, GivesSlotsUpToTheCapThenOther) {
  CampaignLabels labels(2, 1000);
  EXPECT_EQ(labels.label("a", 0).label, "a");
  EXPECT_EQ(labels.label("b", 0).label, "b");
  const auto c = labels.label("c", 10);  // a and b are active: no slot
  EXPECT_EQ(c.label, "other");
  EXPECT_FALSE(c.evicted.has_value());
  EXPECT_EQ(labels.label("a", 20).label, "a");
  EXPECT_EQ(labels.size(), 2u);
}

TEST(CampaignLabelsTest, AnIdleCampaignGivesUpItsSlot) {
  CampaignLabels labels(2, 1000);
  labels.label("a", 0);
  labels.label("b", 500);
  labels.label("a", 900);  // a is recent; b is the least recently counted
  EXPECT_EQ(labels.label("c", 1400).label, "other");  // b idle only 900 ms
  const auto c = labels.label("c", 1500);
  EXPECT_EQ(c.label, "c");
  ASSERT_TRUE(c.evicted.has_value());
  EXPECT_EQ(*c.evicted, "b");
  EXPECT_EQ(labels.label("a", 1600).label, "a");
  EXPECT_EQ(labels.label("b", 1600).label, "other");  // a and c are active now
}

TEST(CampaignLabelsTest, ZeroCapacityCountsEverythingAsOther) {
  CampaignLabels labels(0, 0);
  EXPECT_EQ(labels.label("a", 0).label, "other");
  EXPECT_EQ(labels.size(), 0u);
}

}  // namespace
}  // namespace salvo::metrics

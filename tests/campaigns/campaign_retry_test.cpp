// A campaign's own retry schedule (`retry:`): the same keys and checks as salvo.yaml's
// section (one parser), errors with file:line:column and exit 65, keys left out taken from
// the daemon's schedule, and the override kept through the stored form.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "campaigns/campaign.h"
#include "tests/campaigns/test_files.h"

namespace salvo::campaigns {
namespace {

using testing::messages;
using testing::TempDir;
using Messages = std::vector<std::string>;

constexpr const char* kHead = R"(id: retried
from: sender@example.com
subject: Hi
text: Hello
recipients:
  - email: a@example.com
)";

class CampaignRetryTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.file("campaign.yaml"); }

  Messages validate(const std::string& retryLines) {
    path_ = dir_.write("campaign.yaml", std::string(kHead) + retryLines);
    diags_ = Diagnostics();
    std::uint64_t count = 0;
    loaded_ = validateCampaign(path_, diags_, count);
    EXPECT_EQ(loaded_.has_value(), diags_.empty());
    return messages(diags_);
  }
  std::string y(const std::string& rest) const { return path_ + rest; }

  TempDir dir_;
  std::string path_;
  Diagnostics diags_;
  std::optional<LoadedCampaign> loaded_;
};

TEST_F(CampaignRetryTest, NoRetryKeyMeansTheDaemonsSchedule) {
  ASSERT_EQ(validate(""), Messages{});
  EXPECT_TRUE(loaded_->campaign->retry().empty());
  const RetryConfig daemon{60, 600, 7200};
  EXPECT_EQ(loaded_->campaign->retry().over(daemon), daemon);
  EXPECT_FALSE(nlohmann::json::parse(loaded_->campaign->serialize()).contains("retry"));
}

TEST_F(CampaignRetryTest, EveryKeyLoads) {
  ASSERT_EQ(validate("retry: {first_delay: 5s, max_delay: 1m, max_age: 2h}\n"), Messages{});
  const RetryOverride& r = loaded_->campaign->retry();
  EXPECT_EQ(r.firstDelaySec, 5u);
  EXPECT_EQ(r.maxDelaySec, 60u);
  EXPECT_EQ(r.maxAgeSec, 7200u);
  EXPECT_EQ(r.over(RetryConfig{}), (RetryConfig{5, 60, 7200}));
}

TEST_F(CampaignRetryTest, KeysLeftOutComeFromTheDaemon) {
  ASSERT_EQ(validate("retry:\n  max_age: 30m\n"), Messages{});
  const RetryOverride& r = loaded_->campaign->retry();
  EXPECT_FALSE(r.firstDelaySec.has_value());
  EXPECT_FALSE(r.maxDelaySec.has_value());
  EXPECT_EQ(r.over(RetryConfig{120, 3600, 86400}), (RetryConfig{120, 3600, 1800}));
  // A first delay above the daemon's maximum is not an error here: the daemon's cap
  // applies at delivery, whatever salvo.yaml says then.
  ASSERT_EQ(validate("retry: {first_delay: 6h}\n"), Messages{});
  EXPECT_EQ(loaded_->campaign->retry().firstDelaySec, 6u * 3600);
}

TEST_F(CampaignRetryTest, ErrorsCarryPositionsAndExactMessages) {
  EXPECT_EQ(validate("retry: {first_delay: soon, max_delay: 500ms, max_age: 0}\n"),
            (Messages{y(":7:22: 'first_delay' has an invalid duration 'soon' (use e.g. 500ms, "
                        "30s, 5m, 4h, 3d or a number of seconds)"),
                      y(":7:39: 'max_delay' must be a whole number of seconds (got '500ms')"),
                      y(":7:55: 'max_age' must be greater than zero")}));
  EXPECT_EQ(diags_.exitCode(), kExitDataErr);
  EXPECT_EQ(validate("retry: {first_delay: 1h, max_delay: 5m}\n"),
            Messages{y(":7:37: 'max_delay' (300s) is shorter than 'first_delay' (3600s)")});
  EXPECT_EQ(validate("retry: {frist_delay: 5m}\n"),
            Messages{y(":7:9: unknown key 'frist_delay' (did you mean 'first_delay'?)")});
  EXPECT_EQ(validate("retry: 5m\n"),
            Messages{y(":7:8: 'retry' must be a map like {first_delay: 5m, max_delay: 4h, "
                       "max_age: 3d}")});
  EXPECT_EQ(validate("retry: {max_age: [1d]}\n"),
            Messages{y(":7:18: 'max_age' must be a single value, not a list")});
  EXPECT_EQ(validate("retry: {max_age: 200000d}\n"),
            Messages{y(":7:18: 'max_age' is too long ('200000d')")});
  EXPECT_EQ(diags_.exitCode(), kExitDataErr);
}

TEST_F(CampaignRetryTest, StoredFormKeepsTheOverride) {
  ASSERT_EQ(validate("retry: {first_delay: 2s, max_age: 10s}\n"), Messages{});
  const std::string blob = loaded_->campaign->serialize();
  const auto json = nlohmann::json::parse(blob);
  EXPECT_EQ(json["retry"], nlohmann::json({{"first_delay_sec", 2}, {"max_age_sec", 10}}));
  std::string error;
  const auto copy = Campaign::deserialize(blob, error);
  ASSERT_NE(copy, nullptr) << error;
  EXPECT_EQ(copy->retry(), loaded_->campaign->retry());
  EXPECT_EQ(copy->serialize(), blob);
}

TEST_F(CampaignRetryTest, DeserializeRejectsABadOverride) {
  ASSERT_EQ(validate("retry: {first_delay: 2s}\n"), Messages{});
  auto json = nlohmann::json::parse(loaded_->campaign->serialize());
  std::string error;
  auto bad = json;
  bad["retry"] = "soon";
  EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr);
  EXPECT_EQ(error, "campaign record: 'retry' is not an object");
  for (const nlohmann::json& value : {nlohmann::json(0), nlohmann::json(-5), nlohmann::json("5"),
                                      nlohmann::json(5'000'000'000ULL)}) {
    bad = json;
    bad["retry"]["max_age_sec"] = value;
    EXPECT_EQ(Campaign::deserialize(bad.dump(), error), nullptr) << value;
    EXPECT_EQ(error, "campaign record: 'retry.max_age_sec' is not a number of seconds");
  }
}

}  // namespace
}  // namespace salvo::campaigns

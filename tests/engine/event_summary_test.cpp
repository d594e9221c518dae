#include "engine/event_summary.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace salvo::engine {
namespace {

class EventSummaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("salvo-event-summary-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "events.jsonl").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write(const std::vector<DeliveryEvent>& events, const std::string& tail = "") {
    std::ofstream out(path_, std::ios::app);
    for (const auto& e : events) {
      out << eventToJson(e) << '\n';
    }
    out << tail;
  }

  static DeliveryEvent event(EventType type, const char* campaign, const char* recipient,
                             const char* mx, const char* reply = "") {
    DeliveryEvent e;
    e.type = type;
    e.timeMs = 1'000;
    e.campaign.assign(campaign);
    e.recipient.assign(recipient);
    e.destination.assign("d");
    e.mxHost.assign(mx);
    e.reply.assign(reply);
    return e;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(EventSummaryTest, LatestEventPerRecipientByProviderAndTopDeferrals) {
  write(
      {
          event(EventType::Deferred, "a", "x@g.com", "alt1.gmail-smtp-in.l.google.com",
                "451 4.7.28 <x@g.com> rate limited"),
          event(EventType::Delivered, "a", "x@g.com", "alt1.gmail-smtp-in.l.google.com"),
          event(EventType::Deferred, "a", "y@g.com", "gmail-smtp-in.l.google.com",
                "451 4.7.28 <y@g.com> rate limited"),
          event(EventType::Deferred, "a", "z@g.com", "gmail-smtp-in.l.google.com",
                "451 4.7.28 <z@g.com> rate limited"),
          event(EventType::Deferred, "a", "w@o.net", "mx.o.net", "421 busy"),
          event(EventType::Bounced, "b", "v@o.net", ""),
      },
      "{\"torn\": ");
  std::map<std::string, CampaignEventSummary> out;
  std::string error;
  ASSERT_TRUE(summarizeEvents(path_, 5, ProviderTable(), 1, out, error)) << error;
  ASSERT_EQ(out.size(), 2U);
  const auto& a = out["a"];
  ASSERT_TRUE(a.providers.count("gmail"));
  EXPECT_EQ(a.providers.at("gmail").at("delivered"), 1U);
  EXPECT_EQ(a.providers.at("gmail").at("deferred"), 2U);
  EXPECT_EQ(a.providers.at("other").at("deferred"), 1U);
  ASSERT_EQ(a.topDeferrals.size(), 1U);  // topN = 1
  EXPECT_EQ(a.topDeferrals[0].first, "451 4.7.28 <> rate limited");
  EXPECT_EQ(a.topDeferrals[0].second, 2U);
  EXPECT_EQ(out["b"].providers.at("other").at("bounced"), 1U);
  EXPECT_TRUE(out["b"].topDeferrals.empty());
}

TEST_F(EventSummaryTest, MissingLogIsEmpty) {
  std::map<std::string, CampaignEventSummary> out;
  std::string error;
  EXPECT_TRUE(summarizeEvents(path_, 5, ProviderTable(), 5, out, error));
  EXPECT_TRUE(out.empty());
}

TEST(DeferralReasonTest, ElidesAddressesAndCaps) {
  EXPECT_EQ(deferralReason("451 4.3.0 <a@b.c>: later <x>"), "451 4.3.0 <>: later <>");
  EXPECT_EQ(deferralReason("open <never closed"), "open <never closed");
  EXPECT_EQ(deferralReason(std::string(500, 'x')).size(), 120U);
}

}  // namespace
}  // namespace salvo::engine

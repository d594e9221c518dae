// SubmitEvents: a submit's own events file (recipients suppressed at submit), published by
// a rename only when the submit completes, and read before the daemon's log by the export
// and the status summary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/event_log.h"
#include "engine/event_summary.h"

namespace salvo::engine {
namespace {

namespace fs = std::filesystem;

class SubmitEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/salvo-submit-events-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    log_ = eventLogPathIn(dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  static DeliveryEvent suppressed(const std::string& campaign, const std::string& recipient) {
    DeliveryEvent e;
    e.type = EventType::Suppressed;
    e.timeMs = 1'795'000'000'000;
    e.campaign = campaign;
    e.recipient = recipient;
    e.reply = "suppressed: manual (skipped at submit)";
    return e;
  }

  std::vector<std::string> exported(const std::string& campaign) {
    std::ostringstream out;
    ExportStats stats;
    std::string error;
    EXPECT_TRUE(exportCampaignEvents(log_, 5, campaign, ExportFormat::JsonLines, out, stats, error))
        << error;
    std::vector<std::string> recipients;
    std::istringstream in(out.str());
    std::string line;
    while (std::getline(in, line)) {
      auto e = eventFromJson(line, error);
      EXPECT_TRUE(e.has_value()) << error;
      if (e) {
        recipients.push_back(std::string(eventTypeName(e->type)) + " " + e->recipient);
      }
    }
    return recipients;
  }

  fs::path dir_;
  std::string log_;
};

TEST_F(SubmitEventsTest, PathsLiveBesideTheLog) {
  EXPECT_EQ(log_, (dir_ / "events" / "events.jsonl").string());
  EXPECT_EQ(submitEventsPath(log_, "spring"),
            (dir_ / "events" / "submitted" / "spring.jsonl").string());
}

TEST_F(SubmitEventsTest, PublishedOnlyOnCommit) {
  const std::string published = submitEventsPath(log_, "spring");
  std::string error;
  SubmitEvents events(log_, "spring");
  ASSERT_TRUE(events.append(suppressed("spring", "a@x.example"), error)) << error;
  ASSERT_TRUE(events.append(suppressed("spring", "b@x.example"), error)) << error;
  EXPECT_FALSE(fs::exists(published));
  EXPECT_TRUE(exported("spring").empty());  // the temporary file is not read
  ASSERT_TRUE(events.commit(error)) << error;
  EXPECT_TRUE(fs::exists(published));
  EXPECT_FALSE(fs::exists(published + ".tmp"));
  EXPECT_EQ(exported("spring"),
            (std::vector<std::string>{"suppressed a@x.example", "suppressed b@x.example"}));
}

TEST_F(SubmitEventsTest, AFailedSubmitLeavesNothing) {
  const std::string published = submitEventsPath(log_, "spring");
  std::string error;
  {
    SubmitEvents events(log_, "spring");
    ASSERT_TRUE(events.append(suppressed("spring", "a@x.example"), error)) << error;
  }  // destroyed without commit
  EXPECT_FALSE(fs::exists(published));
  EXPECT_FALSE(fs::exists(published + ".tmp"));
  SubmitEvents events(log_, "spring");
  ASSERT_TRUE(events.append(suppressed("spring", "a@x.example"), error)) << error;
  ASSERT_TRUE(events.commit(error)) << error;
  events.discard();  // the queue write after it failed
  EXPECT_FALSE(fs::exists(published));
}

TEST_F(SubmitEventsTest, ARerunReplacesAnEarlierFile) {
  std::string error;
  for (int run = 0; run < 2; ++run) {
    SubmitEvents events(log_, "spring");
    ASSERT_TRUE(events.append(suppressed("spring", "a@x.example"), error)) << error;
    ASSERT_TRUE(events.commit(error)) << error;
  }
  EXPECT_EQ(exported("spring"), std::vector<std::string>{"suppressed a@x.example"});
  // A rerun with nothing suppressed any more removes the earlier run's events.
  SubmitEvents none(log_, "spring");
  ASSERT_TRUE(none.commit(error)) << error;
  EXPECT_TRUE(exported("spring").empty());
}

TEST_F(SubmitEventsTest, DisabledWritesNothing) {
  std::string error;
  SubmitEvents events("", "spring");
  EXPECT_TRUE(events.append(suppressed("spring", "a@x.example"), error));
  EXPECT_TRUE(events.commit(error));
  EXPECT_FALSE(fs::exists(dir_ / "events"));
}

TEST_F(SubmitEventsTest, UnwritableFolderIsAPreciseError) {
  fs::create_directories(dir_ / "events");
  std::ofstream(dir_ / "events" / "submitted") << "a file where the folder goes";
  std::string error;
  SubmitEvents events(log_, "spring");
  EXPECT_FALSE(events.append(suppressed("spring", "a@x.example"), error));
  EXPECT_EQ(error, "event log " + (dir_ / "events" / "submitted" / "spring.jsonl.tmp").string() +
                       ": cannot open: Not a directory");
}

TEST_F(SubmitEventsTest, ExportAndSummaryReadSubmitsBeforeTheLog) {
  std::string error;
  for (const char* campaign : {"spring", "autumn"}) {
    SubmitEvents events(log_, campaign);
    ASSERT_TRUE(events.append(suppressed(campaign, "s@x.example"), error)) << error;
    ASSERT_TRUE(events.commit(error)) << error;
  }
  // An unfinished submit's temporary file is never read.
  SubmitEvents pending(log_, "winter");
  ASSERT_TRUE(pending.append(suppressed("winter", "w@x.example"), error)) << error;
  {
    auto log = EventLog::open({log_, 1ULL << 30, 5}, error);
    ASSERT_NE(log, nullptr) << error;
    DeliveryEvent delivered = suppressed("spring", "d@x.example");
    delivered.type = EventType::Delivered;
    log->append(delivered);
  }
  EXPECT_EQ(exported("spring"),
            (std::vector<std::string>{"suppressed s@x.example", "delivered d@x.example"}));
  EXPECT_EQ(exported("autumn"), std::vector<std::string>{"suppressed s@x.example"});
  EXPECT_TRUE(exported("winter").empty());

  std::map<std::string, CampaignEventSummary> summary;
  ASSERT_TRUE(summarizeEvents(log_, 5, ProviderTable(), 5, summary, error)) << error;
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary["spring"].providers["other"]["suppressed"], 1u);
  EXPECT_EQ(summary["spring"].providers["other"]["delivered"], 1u);
  EXPECT_EQ(summary["autumn"].providers["other"]["suppressed"], 1u);
}

}  // namespace
}  // namespace salvo::engine

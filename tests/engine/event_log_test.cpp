#include "engine/event_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace salvo::engine {
namespace {

namespace fs = std::filesystem;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/salvo-eventlog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path() const { return (dir_ / "events.jsonl").string(); }

  fs::path dir_;
};

DeliveryEvent event(std::string campaign, int n, EventType type = EventType::Delivered) {
  DeliveryEvent e;
  e.type = type;
  e.timeMs = 1'795'000'000'000 + n;
  e.campaign = std::move(campaign);
  e.recipient = "user" + std::to_string(n) + "@d.example";
  e.destination = "mx.d.example";
  e.mxHost = "mx1.d.example";
  e.tls = n % 2 == 0;
  e.replyCode = 250;
  e.enhanced = "2.0.0";
  e.reply = "250 2.0.0 Ok: queued as ABC";
  e.attempt = 1;
  e.queuedMs = 1'794'999'000'000;
  return e;
}

std::vector<std::string> lines(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(line);
  }
  return out;
}

TEST(EventLogFormatTest, JsonRoundTripsEveryField) {
  DeliveryEvent e = event("spring", 7, EventType::Bounced);
  e.replyCode = 550;
  e.enhanced = "5.1.1";
  e.reply = "550 5.1.1 \"quoted\", comma\tand tab";
  e.category = "bad-mailbox";
  e.hard = true;
  e.attempt = 3;
  const std::string line = eventToJson(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find(R"("time":"2026-11-18T)"), std::string::npos) << line;
  std::string error;
  const auto back = eventFromJson(line, error);
  ASSERT_TRUE(back.has_value()) << error;
  EXPECT_EQ(*back, e);
}

TEST(EventLogFormatTest, InvalidUtf8IsReplacedNotFatal) {
  DeliveryEvent e = event("c", 1, EventType::Deferred);
  e.reply = "451 bad \xff\xfe bytes";
  const std::string line = eventToJson(e);
  std::string error;
  const auto back = eventFromJson(line, error);
  ASSERT_TRUE(back.has_value()) << error;
  EXPECT_EQ(back->reply, "451 bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST(EventLogFormatTest, RejectsIncompleteLines) {
  std::string error;
  EXPECT_FALSE(eventFromJson(R"({"time":"2026-01-01T00:00:00.000Z","type":"delivered")", error));
  EXPECT_EQ(error, "not a JSON object");
  EXPECT_FALSE(eventFromJson(R"({"type":"delivered"})", error));
  EXPECT_EQ(error, "'time' is missing or not a string");
  std::string line = eventToJson(event("c", 1));
  const std::string bad = line.replace(line.find("delivered"), 9, "exploded");
  EXPECT_FALSE(eventFromJson(bad, error));
  EXPECT_EQ(error, "unknown event type 'exploded'");
  EXPECT_EQ(formatEventTime(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(formatEventTime(-1), "1969-12-31T23:59:59.999Z");
}

TEST_F(EventLogTest, AppendsFromManyThreadsAndFlushes) {
  std::string error;
  auto log = EventLog::open({path(), 1ULL << 30, 3}, error);
  ASSERT_NE(log, nullptr) << error;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      // (Not "c" + to_string(t): GCC 12 warns falsely (-Wrestrict) on that in Release.)
      std::string campaign(1, 'c');
      campaign += std::to_string(t);
      for (int i = 0; i < 250; ++i) {
        if (i % 50 == 0) {
          std::vector<DeliveryEvent> batch;
          for (int k = 0; k < 5; ++k) {
            batch.push_back(event(campaign, 10'000 + i * 10 + k));
          }
          log->append(std::move(batch));
        } else {
          log->append(event(campaign, i));
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_TRUE(log->flush());
  EXPECT_EQ(log->eventsWritten(), 4u * (245 + 25));
  const auto all = lines(path());
  ASSERT_EQ(all.size(), 4u * (245 + 25));
  std::string why;
  for (const std::string& l : all) {
    ASSERT_TRUE(eventFromJson(l, why).has_value()) << why << ": " << l;
  }
}

TEST_F(EventLogTest, DestructorWritesWhatIsPending) {
  {
    std::string error;
    auto log = EventLog::open({path(), 1ULL << 30, 3}, error);
    ASSERT_NE(log, nullptr) << error;
    for (int i = 0; i < 100; ++i) {
      log->append(event("c", i));
    }
  }
  EXPECT_EQ(lines(path()).size(), 100u);
  // Reopening appends.
  std::string error;
  auto log = EventLog::open({path(), 1ULL << 30, 3}, error);
  log->append(event("c", 100));
  log->flush();
  EXPECT_EQ(lines(path()).size(), 101u);
}

TEST_F(EventLogTest, RotatesBySizeAndKeepsNFiles) {
  const auto sameSize = [](int i) {
    DeliveryEvent e = event("c", 1000 + i);  // 4-digit numbers
    e.tls = false;
    return e;
  };
  const std::size_t lineSize = eventToJson(sameSize(0)).size() + 1;
  std::string error;
  // Room for 10 lines per file, 2 old files kept.
  auto log = EventLog::open({path(), lineSize * 10, 2}, error);
  ASSERT_NE(log, nullptr) << error;
  for (int i = 0; i < 45; ++i) {
    log->append(sameSize(i));
    log->flush();  // one batch per event, so every file fills exactly
  }
  const auto files = eventLogFiles(path(), 2);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], path() + ".2");
  EXPECT_EQ(files[1], path() + ".1");
  EXPECT_EQ(files[2], path());
  EXPECT_FALSE(fs::exists(path() + ".3"));
  EXPECT_EQ(lines(path()).size(), 5u);
  EXPECT_EQ(lines(path() + ".1").size(), 10u);
  EXPECT_EQ(lines(path() + ".2").size(), 10u);
  for (const auto& f : files) {
    EXPECT_LE(fs::file_size(f), lineSize * 10);
  }
  // Oldest first: the export reads .2, .1, then the current file, in order.
  std::ostringstream out;
  ExportStats stats;
  ASSERT_TRUE(exportCampaignEvents(path(), 2, "c", ExportFormat::JsonLines, out, stats, error))
      << error;
  EXPECT_EQ(stats.events, 25u);
  std::istringstream in(out.str());
  std::string line;
  std::int64_t previous = 0;
  while (std::getline(in, line)) {
    const auto e = eventFromJson(line, error);
    ASSERT_TRUE(e.has_value());
    EXPECT_GT(e->timeMs, previous);
    previous = e->timeMs;
  }
  EXPECT_EQ(previous, event("c", 1044).timeMs);
}

TEST_F(EventLogTest, ExportsOneCampaignAsCsv) {
  std::string error;
  auto log = EventLog::open({path(), 1ULL << 30, 3}, error);
  ASSERT_NE(log, nullptr) << error;
  DeliveryEvent bounced = event("spring", 2, EventType::Bounced);
  bounced.replyCode = 550;
  bounced.enhanced = "5.1.1";
  bounced.reply = "550 5.1.1 \"nope\", gone";
  bounced.category = "bad-mailbox";
  bounced.hard = true;
  log->append({event("spring", 1), event("autumn", 1), bounced});
  log->flush();
  log.reset();
  // A torn last line (a crash mid-write) is skipped, not fatal.
  {
    std::ofstream f(path(), std::ios::app);
    f << R"({"time":"2026-)";
  }
  std::ostringstream out;
  ExportStats stats;
  ASSERT_TRUE(exportCampaignEvents(path(), 3, "spring", ExportFormat::Csv, out, stats, error));
  EXPECT_EQ(stats.events, 2u);
  EXPECT_EQ(stats.skippedLines, 1u);
  EXPECT_EQ(out.str(),
            "time,type,campaign,recipient,destination,mx_host,tls,reply_code,enhanced_code,"
            "reply,category,hard,attempt,queued_at\r\n"
            "2026-11-18T11:06:40.001Z,delivered,spring,user1@d.example,mx.d.example,"
            "mx1.d.example,false,250,2.0.0,250 2.0.0 Ok: queued as ABC,,false,1,"
            "2026-11-18T10:50:00.000Z\r\n"
            "2026-11-18T11:06:40.002Z,bounced,spring,user2@d.example,mx.d.example,"
            "mx1.d.example,true,550,5.1.1,\"550 5.1.1 \"\"nope\"\", gone\",bad-mailbox,true,1,"
            "2026-11-18T10:50:00.000Z\r\n");
}

TEST_F(EventLogTest, OpenFailureNamesTheFile) {
  std::string error;
  auto log = EventLog::open({(dir_ / "missing" / "events.jsonl").string(), 1024, 1}, error);
  EXPECT_EQ(log, nullptr);
  EXPECT_EQ(error, "event log " + (dir_ / "missing" / "events.jsonl").string() +
                       ": cannot open: No such file or directory");
}

}  // namespace
}  // namespace salvo::engine

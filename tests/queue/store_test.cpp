#include "queue/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "queue/counter_merge.h"
#include "queue/keys.h"
#include "tests/queue/test_util.h"

extern char** environ;

namespace salvo::queue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testutil::makeJobs;
using testutil::openStore;
using testutil::submit;
using testutil::TestDir;
using Code = Status::Code;

std::vector<JobId> ids(const std::vector<LeasedJob>& leased) {
  std::vector<JobId> out;
  for (const auto& l : leased) {
    out.push_back(l.id);
  }
  return out;
}

std::vector<JobId> range(std::uint32_t campaign, std::uint64_t first, std::uint64_t last) {
  std::vector<JobId> out;
  for (auto s = first; s <= last; ++s) {
    out.push_back({campaign, s});
  }
  return out;
}

Outcome outcomeFor(const LeasedJob& leased, JobState state, std::int64_t dueMs = 0) {
  Outcome o;
  o.id = leased.id;
  o.previous = leased.record.state;
  o.record = leased.record;
  o.record.state = state;
  o.record.attempts += 1;
  o.record.lastReply = fmt::format("reply for {}", leased.id.str());
  if (state == JobState::Deferred) {
    o.record.dueMs = dueMs;
  }
  return o;
}

void expectCounts(const Counts& c, std::int64_t queued, std::int64_t deferred,
                  std::int64_t delivered, std::int64_t bounced, std::int64_t expired,
                  std::int64_t inFlight, std::int64_t attempts, std::int64_t deferrals) {
  EXPECT_EQ(c.queued, queued);
  EXPECT_EQ(c.deferred, deferred);
  EXPECT_EQ(c.delivered, delivered);
  EXPECT_EQ(c.bounced, bounced);
  EXPECT_EQ(c.expired, expired);
  EXPECT_EQ(c.cancelled, 0);
  EXPECT_EQ(c.inFlight, inFlight);
  EXPECT_EQ(c.attempts, attempts);
  EXPECT_EQ(c.deferrals, deferrals);
}

// ---------------------------------------------------------------------------------------
// The test binary doubles as "another salvo process": SecondProcess.DISABLED_Helper (disabled, so
// ctest never lists it) does its work only when started by HelperProcess with SALVO_QUEUE_HELPER
// set. It answers on fd 3 and takes commands on stdin, so every step is awaited, never slept for.

class HelperProcess {
 public:
  HelperProcess(const std::string& mode, const std::string& dir) {
    int toChild[2];
    int fromChild[2];
    if (pipe2(toChild, O_CLOEXEC) != 0 || pipe2(fromChild, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, toChild[0], 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fromChild[1], 3);

    std::string exe = fs::read_symlink("/proc/self/exe").string();
    std::string filter = "--gtest_filter=SecondProcess.DISABLED_Helper";
    std::string alsoDisabled = "--gtest_also_run_disabled_tests";
    std::vector<char*> argv = {exe.data(), filter.data(), alsoDisabled.data(), nullptr};
    std::vector<std::string> env = {"SALVO_QUEUE_HELPER=" + mode, "SALVO_QUEUE_HELPER_DIR=" + dir};
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) {
      envp.push_back(*e);
    }
    for (auto& e : env) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    int rc = posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(toChild[0]);
    close(fromChild[1]);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn failed: " << rc;
      pid_ = -1;
    }
    toChild_ = fdopen(toChild[1], "w");
    fromChild_ = fdopen(fromChild[0], "r");
  }

  ~HelperProcess() { finish(); }

  // One line the helper wrote to fd 3 ("" at end of stream).
  std::string readLine() {
    char line[4096];
    if (fromChild_ == nullptr || std::fgets(line, sizeof line, fromChild_) == nullptr) {
      return "";
    }
    std::string s(line);
    if (!s.empty() && s.back() == '\n') {
      s.pop_back();
    }
    return s;
  }

  void send(const std::string& line) {
    std::fprintf(toChild_, "%s\n", line.c_str());
    std::fflush(toChild_);
  }

  // Closes the helper's stdin (it then exits) and returns its exit status.
  int finish() {
    if (toChild_ != nullptr) {
      std::fclose(toChild_);
      toChild_ = nullptr;
    }
    int status = 0;
    if (pid_ > 0) {
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (fromChild_ != nullptr) {
      std::fclose(fromChild_);
      fromChild_ = nullptr;
    }
    return status;
  }

 private:
  pid_t pid_ = -1;
  FILE* toChild_ = nullptr;
  FILE* fromChild_ = nullptr;
};

std::string describe(const Status& st) {
  return fmt::format("{} {}", static_cast<int>(st.code()), st.message());
}

TEST(SecondProcess, DISABLED_Helper) {
  const char* mode = std::getenv("SALVO_QUEUE_HELPER");
  const char* dir = std::getenv("SALVO_QUEUE_HELPER_DIR");
  ASSERT_NE(mode, nullptr) << "runs only as the second process of other tests";
  ASSERT_NE(dir, nullptr);
  FILE* out = fdopen(3, "w");
  ASSERT_NE(out, nullptr);
  auto reply = [&](const std::string& line) {
    std::fprintf(out, "%s\n", line.c_str());
    std::fflush(out);
  };
  std::string m = mode;
  if (m == "unprivileged") {
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
      reply("cannot drop privileges");
      return;
    }
    m = "hold";
  }
  if (m == "hold") {
    Status status;
    auto store = JobStore::open(dir, {}, status);
    reply(describe(status));
    char line[256];
    while (store != nullptr && std::fgets(line, sizeof line, stdin) != nullptr) {
      std::string cmd(line);
      if (cmd.rfind("submit ", 0) == 0) {
        auto name = cmd.substr(7, cmd.size() - 8);
        auto number = submit(*store, name, 3, 1000);
        reply(fmt::format("submitted {}", number));
      } else if (cmd.rfind("take ", 0) == 0) {
        std::vector<LeasedJob> out;
        auto st = store->takeDue(INT64_MAX, std::stoul(cmd.substr(5)), out);
        if (st.isOk()) {
          st = store->saveInFlight();
        }
        reply(st.isOk() ? fmt::format("took {}", out.size()) : st.message());
      }
    }
  }
}

// ---------------------------------------------------------------------------------------

class StoreTest : public ::testing::Test {
 protected:
  TestDir dir_;
};

TEST_F(StoreTest, CampaignNumbersStartAtOneAndRecordsReadBack) {
  auto store = openStore(dir_.store());
  std::uint32_t a = 0;
  ASSERT_TRUE(store->beginCampaign("alpha", "spec-a", 111, a).isOk());
  EXPECT_EQ(a, 1u);
  auto rec = store->campaign(a);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->name, "alpha");
  EXPECT_EQ(rec->spec, "spec-a");
  EXPECT_EQ(rec->state, CampaignState::Loading);
  EXPECT_EQ(rec->createdMs, 111);
  auto b = submit(*store, "beta", 4, 100);
  EXPECT_EQ(b, 2u);
  rec = store->campaignByName("beta");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->number, 2u);
  EXPECT_EQ(rec->state, CampaignState::Active);
  EXPECT_EQ(rec->jobs, 4u);
  auto all = store->campaigns();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "alpha");
  EXPECT_EQ(all[1].name, "beta");
  EXPECT_FALSE(store->campaign(3));
  EXPECT_FALSE(store->campaignByName("gamma"));
}

TEST_F(StoreTest, ANewStoreHasEveryFamilyAndOneWithOnlySomeIsCompleted) {
  // A new store creates its families in one call after opening with the default one; a
  // store left with only some of them (a crash in between) gets the rest at the next open.
  {
    auto store = openStore(dir_.store());
    submit(*store, "first", 3, 100);
  }
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir_.store(), &families).ok());
  EXPECT_THAT(families,
              ::testing::UnorderedElementsAre("default", "campaigns", "names", "jobs", "due",
                                              "leases", "counters", "meta", "suppression"));
  {
    auto store = openStore(dir_.store());
    ASSERT_TRUE(store->campaignByName("first"));
    EXPECT_EQ(store->campaignByName("first")->jobs, 3u);
  }

  const std::string partial = dir_.store() + "-partial";
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    ASSERT_TRUE(rocksdb::DB::Open(o, partial, &raw).ok());
    rocksdb::ColumnFamilyHandle* h = nullptr;
    ASSERT_TRUE(raw->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "campaigns", &h).ok());
    ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  {
    auto store = openStore(partial);
    submit(*store, "second", 2, 100);
  }
  auto store = openStore(partial);
  ASSERT_TRUE(store->campaignByName("second"));
  EXPECT_EQ(store->campaignByName("second")->jobs, 2u);
}

TEST_F(StoreTest, DuplicateNameIsRejected) {
  auto store = openStore(dir_.store());
  submit(*store, "spring", 1, 0);
  std::uint32_t n = 0;
  auto st = store->beginCampaign("spring", "", 0, n);
  EXPECT_EQ(st.code(), Code::AlreadyExists);
  EXPECT_EQ(st.message(), "campaign 'spring' already exists");
  st = store->beginCampaign("", "", 0, n);
  EXPECT_EQ(st.code(), Code::InvalidArgument);
}

TEST_F(StoreTest, AddJobsStampsStateAndTimes) {
  auto store = openStore(dir_.store());
  std::uint32_t n = 0;
  ASSERT_TRUE(store->beginCampaign("c", "", 5, n).isOk());
  auto jobs = makeJobs(2);
  jobs[0].state = JobState::Delivered;
  jobs[0].createdMs = 77;
  jobs[0].dueMs = 88;
  jobs[0].lastReply = "kept";
  ASSERT_TRUE(store->addJobs(n, 10, jobs, 4000).isOk());
  auto job = store->job({n, 10});
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::Queued);
  EXPECT_EQ(job->createdMs, 4000);
  EXPECT_EQ(job->dueMs, 4000);
  EXPECT_EQ(job->recipient, "u0@example.com");
  EXPECT_EQ(job->values, (std::vector<std::string>{"name0", "x"}));
  EXPECT_EQ(job->lastReply, "kept");
  EXPECT_TRUE(store->job({n, 11}));
  EXPECT_FALSE(store->job({n, 12}));
  EXPECT_FALSE(store->job({n, 9}));
  EXPECT_EQ(store->counts(n).queued, 2);

  auto st = store->addJobs(99, 0, jobs, 0);
  EXPECT_EQ(st.code(), Code::NotFound);
  EXPECT_EQ(st.message(), "campaign 99 not found");
  st = store->finishCampaign(99, 1);
  EXPECT_EQ(st.code(), Code::NotFound);
  ASSERT_TRUE(store->finishCampaign(n, 2).isOk());
  st = store->finishCampaign(n, 2);
  EXPECT_EQ(st.code(), Code::InvalidArgument);
  EXPECT_EQ(st.message(), "campaign 1 is active, not loading");
}

TEST_F(StoreTest, TakeDueReturnsDueOrderAndHonoursMax) {
  auto store = openStore(dir_.store());
  auto late = submit(*store, "late", 10, 1000);
  auto early = submit(*store, "early", 5, 500);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(2000, 3, out).isOk());
  EXPECT_EQ(ids(out), range(early, 0, 2));
  out.clear();
  ASSERT_TRUE(store->takeDue(2000, 100, out).isOk());
  auto expected = range(early, 3, 4);
  auto rest = range(late, 0, 9);
  expected.insert(expected.end(), rest.begin(), rest.end());
  EXPECT_EQ(ids(out), expected);
  EXPECT_EQ(out[0].record.recipient, "early3@example.com");
  EXPECT_EQ(out[0].record.state, JobState::Queued);
  EXPECT_EQ(out[0].record.dueMs, 500);
  out.clear();
  ASSERT_TRUE(store->takeDue(2000, 100, out).isOk());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(store->counts(early).inFlight, 5);
  EXPECT_EQ(store->counts(late).inFlight, 10);
  // Leased jobs still count as queued until their outcome commits.
  EXPECT_EQ(store->counts(late).queued, 10);
  EXPECT_FALSE(store->nextDueMs());
  EXPECT_EQ(store->danglingDropped(), 0u);
}

TEST_F(StoreTest, TakeDueAppendsToOut) {
  auto store = openStore(dir_.store());
  auto c = submit(*store, "c", 2, 0);
  std::vector<LeasedJob> out(1);
  out[0].id = {42, 42};
  ASSERT_TRUE(store->takeDue(0, 10, out).isOk());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].id, (JobId{42, 42}));
  EXPECT_EQ(out[1].id, (JobId{c, 0}));
  ASSERT_TRUE(store->takeDue(0, 0, out).isOk());
  EXPECT_EQ(out.size(), 3u);
}

TEST_F(StoreTest, FutureJobsAreNotTaken) {
  auto store = openStore(dir_.store());
  auto c = submit(*store, "future", 3, 5000);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(4999, 10, out).isOk());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(store->nextDueMs(), 5000);
  ASSERT_TRUE(store->takeDue(5000, 10, out).isOk());
  EXPECT_EQ(ids(out), range(c, 0, 2));
}

TEST_F(StoreTest, ExtremeTimesAreOrdered) {
  auto store = openStore(dir_.store());
  auto neg = submit(*store, "negative", 1, -10);
  auto max = submit(*store, "max", 1, INT64_MAX);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(-11, 10, out).isOk());
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(store->takeDue(0, 10, out).isOk());
  EXPECT_EQ(ids(out), range(neg, 0, 0));
  EXPECT_EQ(store->nextDueMs(), INT64_MAX);
  out.clear();
  ASSERT_TRUE(store->takeDue(INT64_MAX, 10, out).isOk());
  EXPECT_EQ(ids(out), range(max, 0, 0));
}

TEST_F(StoreTest, LoadingCampaignIsNotTakenAndIsPurgedOnReopen) {
  std::uint32_t loading = 0;
  std::uint32_t active = 0;
  {
    auto store = openStore(dir_.store());
    ASSERT_TRUE(store->beginCampaign("loading", "", 0, loading).isOk());
    ASSERT_TRUE(store->addJobs(loading, 0, makeJobs(4), 100).isOk());
    active = submit(*store, "active", 2, 100);
    // Interleaved at the same due time: the loading campaign (lower number) is skipped.
    std::vector<LeasedJob> out;
    ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
    EXPECT_EQ(ids(out), range(active, 0, 1));
    out.clear();
    ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
    EXPECT_TRUE(out.empty());
    EXPECT_FALSE(store->nextDueMs());
    EXPECT_EQ(store->counts(loading).queued, 4);
  }
  auto store = openStore(dir_.store());
  EXPECT_FALSE(store->campaign(loading));
  EXPECT_FALSE(store->campaignByName("loading"));
  EXPECT_FALSE(store->job({loading, 0}));
  expectCounts(store->counts(loading), 0, 0, 0, 0, 0, 0, 0, 0);
  // The active campaign's leases came back.
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_EQ(ids(out), range(active, 0, 1));
  // The name is free again; numbers are not reused.
  std::uint32_t again = 0;
  ASSERT_TRUE(store->beginCampaign("loading", "", 0, again).isOk());
  EXPECT_EQ(again, 3u);
}

TEST_F(StoreTest, LeasesComeBackOnReopen) {
  std::uint32_t c = 0;
  std::vector<JobId> first;
  {
    auto store = openStore(dir_.store());
    c = submit(*store, "c", 8, 100);
    std::vector<LeasedJob> out;
    ASSERT_TRUE(store->takeDue(200, 5, out).isOk());
    first = ids(out);
    EXPECT_EQ(first, range(c, 0, 4));
    EXPECT_EQ(store->counts(c).inFlight, 5);
  }
  auto store = openStore(dir_.store());
  EXPECT_EQ(store->counts(c).inFlight, 0);
  EXPECT_EQ(store->nextDueMs(), 100);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(200, 100, out).isOk());
  EXPECT_EQ(ids(out), range(c, 0, 7));
  EXPECT_EQ(store->counts(c).queued, 8);
}

TEST_F(StoreTest, CommitOutcomesKeepsCountsExact) {
  auto store = openStore(dir_.store());
  auto c = submit(*store, "c", 5, 100);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(100, 10, out).isOk());
  ASSERT_EQ(out.size(), 5u);
  std::vector<Outcome> outcomes = {
      outcomeFor(out[0], JobState::Delivered),
      outcomeFor(out[1], JobState::Deferred, 900),
      outcomeFor(out[2], JobState::Bounced),
      outcomeFor(out[3], JobState::Expired),
  };
  ASSERT_TRUE(store->commitOutcomes(outcomes, true).isOk());
  // queued 5-4, one still in flight.
  expectCounts(store->counts(c), 1, 1, 1, 1, 1, 1, 4, 1);
  auto job = store->job(out[0].id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::Delivered);
  EXPECT_EQ(job->attempts, 1u);
  EXPECT_EQ(job->lastReply, "reply for " + out[0].id.str());

  // The deferred job is due again at its dueMs, not before.
  std::vector<LeasedJob> again;
  ASSERT_TRUE(store->takeDue(899, 10, again).isOk());
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(store->nextDueMs(), 900);
  ASSERT_TRUE(store->takeDue(900, 10, again).isOk());
  ASSERT_EQ(ids(again), std::vector<JobId>{out[1].id});
  EXPECT_EQ(again[0].record.state, JobState::Deferred);
  EXPECT_EQ(again[0].record.attempts, 1u);
  EXPECT_EQ(again[0].record.dueMs, 900);

  // Deferred again (unsynced commit), then delivered.
  ASSERT_TRUE(store->commitOutcomes({outcomeFor(again[0], JobState::Deferred, 950)}, false).isOk());
  expectCounts(store->counts(c), 1, 1, 1, 1, 1, 1, 5, 2);
  again.clear();
  ASSERT_TRUE(store->takeDue(1000, 10, again).isOk());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].record.attempts, 2u);
  ASSERT_TRUE(store
                  ->commitOutcomes({outcomeFor(again[0], JobState::Delivered),
                                    outcomeFor(out[4], JobState::Delivered)},
                                   true)
                  .isOk());
  expectCounts(store->counts(c), 0, 0, 3, 1, 1, 0, 7, 2);
  EXPECT_FALSE(store->nextDueMs());
}

TEST_F(StoreTest, CountersSurviveReopen) {
  std::uint32_t c = 0;
  {
    auto store = openStore(dir_.store());
    c = submit(*store, "c", 3, 0);
    std::vector<LeasedJob> out;
    ASSERT_TRUE(store->takeDue(0, 10, out).isOk());
    ASSERT_TRUE(store
                    ->commitOutcomes({outcomeFor(out[0], JobState::Delivered),
                                      outcomeFor(out[1], JobState::Bounced)},
                                     true)
                    .isOk());
  }
  auto store = openStore(dir_.store());
  expectCounts(store->counts(c), 1, 0, 1, 1, 0, 0, 2, 0);
}

TEST_F(StoreTest, AbortCampaignLeavesNothing) {
  auto store = openStore(dir_.store());
  auto other = submit(*store, "other", 3, 300);
  auto doomed = submit(*store, "doomed", 6, 100);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(100, 3, out).isOk());
  ASSERT_EQ(ids(out), range(doomed, 0, 2));
  ASSERT_TRUE(store->commitOutcomes({outcomeFor(out[0], JobState::Deferred, 5000)}, true).isOk());

  ASSERT_TRUE(store->abortCampaign(doomed).isOk());
  EXPECT_FALSE(store->campaign(doomed));
  EXPECT_FALSE(store->campaignByName("doomed"));
  for (std::uint64_t s = 0; s < 6; ++s) {
    EXPECT_FALSE(store->job({doomed, s}));
  }
  expectCounts(store->counts(doomed), 0, 0, 0, 0, 0, 0, 0, 0);
  // Only the other campaign is left in the due index.
  EXPECT_EQ(store->nextDueMs(), 300);
  out.clear();
  ASSERT_TRUE(store->takeDue(INT64_MAX, 100, out).isOk());
  EXPECT_EQ(ids(out), range(other, 0, 2));
  EXPECT_EQ(store->counts(other).queued, 3);

  auto st = store->abortCampaign(doomed);
  EXPECT_EQ(st.code(), Code::NotFound);
  std::uint32_t again = 0;
  EXPECT_TRUE(store->beginCampaign("doomed", "", 0, again).isOk());
}

TEST_F(StoreTest, ManyJobsAreTakenExactlyOnceInOrder) {
  auto store = openStore(dir_.store());
  std::uint32_t c = 0;
  ASSERT_TRUE(store->beginCampaign("big", "", 0, c).isOk());
  // Three batches at decreasing due times.
  ASSERT_TRUE(store->addJobs(c, 0, makeJobs(1000), 3000).isOk());
  ASSERT_TRUE(store->addJobs(c, 1000, makeJobs(1000), 2000).isOk());
  ASSERT_TRUE(store->addJobs(c, 2000, makeJobs(1000), 1000).isOk());
  ASSERT_TRUE(store->finishCampaign(c, 3000).isOk());
  std::vector<JobId> taken;
  std::vector<LeasedJob> out;
  for (;;) {
    out.clear();
    ASSERT_TRUE(store->takeDue(10'000, 128, out).isOk());
    if (out.empty()) {
      break;
    }
    EXPECT_LE(out.size(), 128u);
    for (const auto& l : out) {
      taken.push_back(l.id);
    }
  }
  auto expected = range(c, 2000, 2999);
  auto mid = range(c, 1000, 1999);
  auto last = range(c, 0, 999);
  expected.insert(expected.end(), mid.begin(), mid.end());
  expected.insert(expected.end(), last.begin(), last.end());
  EXPECT_EQ(taken, expected);
  EXPECT_EQ(store->counts(c).inFlight, 3000);
}

// takeDue() resumes where the previous scan stopped (to step over the tombstones of taken
// jobs); nothing written behind that point may be missed.
TEST_F(StoreTest, JobsWrittenBehindTheScanAreStillTaken) {
  auto store = openStore(dir_.store());
  auto a = submit(*store, "a", 3, 1000);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  ASSERT_EQ(ids(out), range(a, 0, 2));

  // A campaign due earlier than the last scan's position.
  auto b = submit(*store, "b", 2, 500);
  EXPECT_EQ(store->nextDueMs(), 500);
  std::vector<LeasedJob> more;
  ASSERT_TRUE(store->takeDue(1000, 10, more).isOk());
  EXPECT_EQ(ids(more), range(b, 0, 1));

  // A retry scheduled in the past.
  ASSERT_TRUE(store->commitOutcomes({outcomeFor(out[0], JobState::Deferred, 100)}, true).isOk());
  EXPECT_EQ(store->nextDueMs(), 100);
  more.clear();
  ASSERT_TRUE(store->takeDue(1000, 10, more).isOk());
  EXPECT_EQ(ids(more), std::vector<JobId>{out[0].id});

  // A scan with an earlier clock, then jobs due before it.
  more.clear();
  ASSERT_TRUE(store->takeDue(10, 10, more).isOk());
  EXPECT_TRUE(more.empty());
  auto c = submit(*store, "c", 1, 5);
  ASSERT_TRUE(store->takeDue(10, 10, more).isOk());
  EXPECT_EQ(ids(more), range(c, 0, 0));
}

TEST_F(StoreTest, EntriesSkippedWhileLoadingAreTakenOnceActive) {
  auto store = openStore(dir_.store());
  std::uint32_t slow = 0;
  ASSERT_TRUE(store->beginCampaign("slow", "", 0, slow).isOk());
  ASSERT_TRUE(store->addJobs(slow, 0, makeJobs(2), 100).isOk());
  auto fast = submit(*store, "fast", 2, 200);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_EQ(ids(out), range(fast, 0, 1));
  // More jobs of the loading campaign, behind the scan, then it becomes Active.
  ASSERT_TRUE(store->addJobs(slow, 2, makeJobs(1), 150).isOk());
  out.clear();
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(store->finishCampaign(slow, 3).isOk());
  EXPECT_EQ(store->nextDueMs(), 100);
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_EQ(ids(out), (std::vector<JobId>{{slow, 0}, {slow, 1}, {slow, 2}}));
}

// A private RocksDB handle on a closed store, to plant damage the API cannot produce.
class RawDb {
 public:
  explicit RawDb(const std::string& dir) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name : {"default", "campaigns", "names", "jobs", "due", "leases", "counters",
                             "meta", "suppression"}) {
      rocksdb::ColumnFamilyOptions o;
      if (std::string(name) == "counters") {
        o.merge_operator = newCounterMergeOperator();
      }
      cfs.emplace_back(name, o);
    }
    auto s = rocksdb::DB::Open(rocksdb::DBOptions(), dir, cfs, &handles_, &db_);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~RawDb() {
    for (auto* h : handles_) {
      db_->DestroyColumnFamilyHandle(h);
    }
    delete db_;
  }
  rocksdb::ColumnFamilyHandle* cf(const std::string& name) {
    for (auto* h : handles_) {
      if (h->GetName() == name) {
        return h;
      }
    }
    return nullptr;
  }
  rocksdb::DB* db() { return db_; }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

TEST_F(StoreTest, DanglingDueEntriesAreDroppedNotFatal) {
  std::uint32_t c = 0;
  {
    auto store = openStore(dir_.store());
    c = submit(*store, "c", 4, 100);
  }
  {
    RawDb raw(dir_.store());
    auto k1 = keys::jobKey({c, 1});
    auto k2 = keys::jobKey({c, 2});
    ASSERT_TRUE(raw.db()->Delete({}, raw.cf("jobs"), {k1.data(), k1.size()}).ok());
    ASSERT_TRUE(raw.db()->Put({}, raw.cf("jobs"), {k2.data(), k2.size()}, "garbage").ok());
    ASSERT_TRUE(raw.db()->Put({}, raw.cf("due"), "short-key", "").ok());
  }
  auto store = openStore(dir_.store());
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_EQ(ids(out), (std::vector<JobId>{{c, 0}, {c, 3}}));
  EXPECT_EQ(store->danglingDropped(), 3u);
  out.clear();
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(store->danglingDropped(), 3u);
}

// Leases live in memory: after a crash the job's due entry is still there, and the scan
// drops it when the job record has vanished.
TEST_F(StoreTest, InFlightJobWhoseRecordVanishedIsDroppedByTheScan) {
  std::uint32_t c = 0;
  {
    auto store = openStore(dir_.store());
    c = submit(*store, "c", 2, 100);
    std::vector<LeasedJob> out;
    ASSERT_TRUE(store->takeDue(100, 10, out).isOk());
  }
  {
    RawDb raw(dir_.store());
    auto k0 = keys::jobKey({c, 0});
    ASSERT_TRUE(raw.db()->Delete({}, raw.cf("jobs"), {k0.data(), k0.size()}).ok());
  }
  auto store = openStore(dir_.store());
  EXPECT_EQ(store->counts(c).inFlight, 0);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(100, 10, out).isOk());
  EXPECT_EQ(ids(out), range(c, 1, 1));
  EXPECT_EQ(store->danglingDropped(), 1u);
  EXPECT_EQ(store->counts(c).inFlight, 1);
}

TEST_F(StoreTest, SecondOpenInTheSameProcessIsBusy) {
  auto store = openStore(dir_.store());
  Status status;
  auto second = JobStore::open(dir_.store(), {}, status);
  EXPECT_EQ(second, nullptr);
  EXPECT_EQ(status.code(), Code::Busy);
  EXPECT_EQ(status.message(), dir_.store() + ": already open in this process");
}

TEST_F(StoreTest, SecondOpenFromAnotherProcessIsBusy) {
  HelperProcess helper("hold", dir_.store());
  ASSERT_EQ(helper.readLine(), "0 ");
  Status status;
  auto second = JobStore::open(dir_.store(), {}, status);
  EXPECT_EQ(second, nullptr);
  EXPECT_EQ(status.code(), Code::Busy);
  EXPECT_EQ(status.message(), dir_.store() + ": in use by another salvo process");
  EXPECT_EQ(helper.finish(), 0);
  // Released with the other process.
  auto store = openStore(dir_.store());
  EXPECT_NE(store, nullptr);
}

TEST_F(StoreTest, ReadOnlyOpenSeesDataAndRefusesWrites) {
  std::uint32_t c = 0;
  {
    auto store = openStore(dir_.store());
    c = submit(*store, "c", 3, 100);
    std::vector<LeasedJob> out;
    ASSERT_TRUE(store->takeDue(100, 1, out).isOk());
    ASSERT_TRUE(store->commitOutcomes({outcomeFor(out[0], JobState::Delivered)}, true).isOk());
  }
  auto store = openStore(dir_.store(), OpenOptions{.readOnly = true});
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(store->campaigns().size(), 1u);
  EXPECT_EQ(store->campaignByName("c")->number, c);
  expectCounts(store->counts(c), 2, 0, 1, 0, 0, 0, 1, 0);
  EXPECT_EQ(store->job({c, 0})->state, JobState::Delivered);
  EXPECT_EQ(store->nextDueMs(), 100);
  EXPECT_TRUE(store->refresh().isOk());

  std::uint32_t n = 0;
  std::vector<LeasedJob> out;
  for (const auto& st : {store->beginCampaign("x", "", 0, n), store->addJobs(c, 9, makeJobs(1), 0),
                         store->finishCampaign(c, 1), store->abortCampaign(c),
                         store->takeDue(1000, 10, out), store->commitOutcomes({Outcome{}}, true)}) {
    EXPECT_EQ(st.code(), Code::InvalidArgument);
    EXPECT_EQ(st.message(), "read-only store");
  }
  EXPECT_TRUE(out.empty());
}

TEST_F(StoreTest, ReadOnlyOpenWorksNextToARunningDaemon) {
  HelperProcess daemon("hold", dir_.store());
  ASSERT_EQ(daemon.readLine(), "0 ");
  daemon.send("submit first");
  ASSERT_EQ(daemon.readLine(), "submitted 1");

  auto reader = openStore(dir_.store(), OpenOptions{.readOnly = true});
  ASSERT_NE(reader, nullptr);
  // Written by the live daemon, still only in its WAL and memtable.
  auto first = reader->campaignByName("first");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->jobs, 3u);
  EXPECT_EQ(reader->counts(1).queued, 3);

  daemon.send("submit second");
  ASSERT_EQ(daemon.readLine(), "submitted 2");
  EXPECT_FALSE(reader->campaignByName("second"));
  ASSERT_TRUE(reader->refresh().isOk());
  EXPECT_TRUE(reader->campaignByName("second"));
  EXPECT_EQ(reader->counts(2).queued, 3);

  reader.reset();
  EXPECT_EQ(daemon.finish(), 0);
}

TEST_F(StoreTest, ReadOnlyStoreSeesTheDaemonsJobsInFlight) {
  HelperProcess daemon("hold", dir_.store());
  ASSERT_EQ(daemon.readLine(), "0 ");
  daemon.send("submit c");
  ASSERT_EQ(daemon.readLine(), "submitted 1");
  daemon.send("take 2");
  ASSERT_EQ(daemon.readLine(), "took 2");
  auto reader = openStore(dir_.store(), OpenOptions{.readOnly = true});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->counts(1).inFlight, 2);
  EXPECT_EQ(reader->counts(1).queued, 3);
  reader.reset();
  EXPECT_EQ(daemon.finish(), 0);
  // The daemon is gone without committing: its snapshot is stale, nothing is in flight.
  reader = openStore(dir_.store(), OpenOptions{.readOnly = true});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->counts(1).inFlight, 0);
  EXPECT_EQ(reader->counts(1).queued, 3);
}

// Leasing writes nothing, so a job in flight keeps its due entry: a scan that restarts
// behind it (a deferral due earlier than the scan's resume point) must not hand it out again.
TEST_F(StoreTest, JobInFlightIsNeverHandedOutTwice) {
  auto store = openStore(dir_.store());
  auto c = submit(*store, "c", 6, 100);
  std::vector<LeasedJob> first;
  ASSERT_TRUE(store->takeDue(1000, 3, first).isOk());
  ASSERT_EQ(ids(first), range(c, 0, 2));
  // Deferred to a time before the other leased jobs' entries: the floor drops to 50.
  ASSERT_TRUE(store->commitOutcomes({outcomeFor(first[0], JobState::Deferred, 50)}, true).isOk());
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 100, out).isOk());
  std::vector<JobId> expected = {{c, 0}, {c, 3}, {c, 4}, {c, 5}};
  EXPECT_EQ(ids(out), expected);
  EXPECT_EQ(store->counts(c).inFlight, 6);
  EXPECT_FALSE(store->nextDueMs());
}

TEST_F(StoreTest, HandBackAtTheSameDueTimeIsTakenAgain) {
  auto store = openStore(dir_.store());
  auto c = submit(*store, "c", 2, 100);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  ASSERT_EQ(out.size(), 2u);
  Outcome back;
  back.id = out[1].id;
  back.previous = out[1].record.state;
  back.record = out[1].record;  // unchanged, due again at 100
  back.attempted = false;
  ASSERT_TRUE(store->commitOutcomes({back, outcomeFor(out[0], JobState::Delivered)}, true).isOk());
  EXPECT_EQ(store->nextDueMs(), 100);
  std::vector<LeasedJob> again;
  ASSERT_TRUE(store->takeDue(1000, 10, again).isOk());
  EXPECT_EQ(ids(again), range(c, 1, 1));
  ASSERT_TRUE(store->commitOutcomes({outcomeFor(again[0], JobState::Delivered)}, true).isOk());
  EXPECT_FALSE(store->nextDueMs());
  expectCounts(store->counts(c), 0, 0, 2, 0, 0, 0, 2, 0);
}

// An outcome for a job this store never leased (another process's lease, lost in a crash)
// still removes the job's due entry.
TEST_F(StoreTest, OutcomeForAJobNotLeasedHereRemovesItsDueEntry) {
  auto store = openStore(dir_.store());
  auto c = submit(*store, "c", 2, 100);
  auto record = store->job({c, 1});
  ASSERT_TRUE(record);
  LeasedJob notTaken{{c, 1}, *record};
  ASSERT_TRUE(store->commitOutcomes({outcomeFor(notTaken, JobState::Delivered)}, true).isOk());
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 10, out).isOk());
  EXPECT_EQ(ids(out), range(c, 0, 0));
  EXPECT_EQ(store->danglingDropped(), 0u);
}

TEST_F(StoreTest, RetentionPurgesFinishedCampaignsOnceTheirTimeIsUp) {
  auto store = openStore(dir_.store());
  auto done = submit(*store, "done", 2, 100);
  auto busy = submit(*store, "busy", 2, 100);
  std::vector<LeasedJob> out;
  ASSERT_TRUE(store->takeDue(1000, 3, out).isOk());  // done's two jobs and one of busy's
  ASSERT_TRUE(store
                  ->commitOutcomes({outcomeFor(out[0], JobState::Delivered),
                                    outcomeFor(out[1], JobState::Bounced)},
                                   true)
                  .isOk());
  std::vector<std::string> purged;
  const std::int64_t day = 86'400'000;
  ASSERT_TRUE(store->sweepFinished(10 * day, 7 * day, purged).isOk());  // marks "done"
  EXPECT_TRUE(purged.empty());
  ASSERT_TRUE(store->sweepFinished(16 * day, 7 * day, purged).isOk());  // 6 days later
  EXPECT_TRUE(purged.empty());
  EXPECT_TRUE(store->job({done, 0}));
  ASSERT_TRUE(store->sweepFinished(17 * day, 7 * day, purged).isOk());
  EXPECT_EQ(purged, std::vector<std::string>{"done"});
  EXPECT_FALSE(store->job({done, 0}));
  EXPECT_EQ(store->counts(done).delivered, 1);  // counters and the record stay
  EXPECT_TRUE(store->campaignByName("done"));
  // "busy" has a job in flight and one waiting: never finished, never purged.
  EXPECT_TRUE(store->job({busy, 0}));
  purged.clear();
  ASSERT_TRUE(store->sweepFinished(100 * day, 7 * day, purged).isOk());
  EXPECT_TRUE(purged.empty());  // "done" is purged once; "busy" only marked from now on
  EXPECT_TRUE(store->job({busy, 1}));
}

TEST_F(StoreTest, MissingStoreIsNotFoundUnlessCreating) {
  Status status;
  EXPECT_EQ(JobStore::open(dir_.store(), OpenOptions{.readOnly = true}, status), nullptr);
  EXPECT_EQ(status.code(), Code::NotFound);
  EXPECT_EQ(status.message(), dir_.store() + ": no such directory");
  EXPECT_EQ(JobStore::open(dir_.store(), OpenOptions{.createIfMissing = false}, status), nullptr);
  EXPECT_EQ(status.code(), Code::NotFound);

  fs::create_directories(dir_.store());
  EXPECT_EQ(JobStore::open(dir_.store(), OpenOptions{.readOnly = true}, status), nullptr);
  EXPECT_EQ(status.code(), Code::NotFound);
  EXPECT_EQ(status.message(), dir_.store() + ": no salvo store here (no CURRENT file)");

  std::string file = dir_.path() + "/file";
  std::ofstream(file) << "x";
  EXPECT_EQ(JobStore::open(file, {}, status), nullptr);
  EXPECT_EQ(status.code(), Code::InvalidArgument);
  EXPECT_EQ(status.message(), file + ": not a directory");

  // Created, nested, when asked to.
  auto store = openStore(dir_.path() + "/a/b/c");
  EXPECT_NE(store, nullptr);
}

void overwrite(const fs::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST_F(StoreTest, GarbageCurrentFileIsCorruption) {
  { openStore(dir_.store()); }
  overwrite(fs::path(dir_.store()) / "CURRENT", "not a manifest name");
  Status status;
  EXPECT_EQ(JobStore::open(dir_.store(), {}, status), nullptr);
  EXPECT_EQ(status.code(), Code::Corruption) << status.message();
  EXPECT_THAT(status.message(), StartsWith(dir_.store() + ": corrupt: "));

  overwrite(fs::path(dir_.store()) / "CURRENT", "MANIFEST-999999\n");
  EXPECT_EQ(JobStore::open(dir_.store(), {}, status), nullptr);
  EXPECT_EQ(status.code(), Code::Corruption) << status.message();
  EXPECT_THAT(status.message(),
              StartsWith(dir_.store() + ": corrupt: CURRENT names a missing MANIFEST"));
}

TEST_F(StoreTest, GarbageManifestIsCorruption) {
  {
    auto store = openStore(dir_.store());
    submit(*store, "c", 3, 0);
  }
  int manifests = 0;
  for (const auto& entry : fs::directory_iterator(dir_.store())) {
    if (entry.path().filename().string().rfind("MANIFEST-", 0) == 0) {
      overwrite(entry.path(), std::string(4096, '\x5a'));
      ++manifests;
    }
  }
  ASSERT_GT(manifests, 0);
  Status status;
  EXPECT_EQ(JobStore::open(dir_.store(), {}, status), nullptr);
  EXPECT_EQ(status.code(), Code::Corruption) << status.message();
  EXPECT_THAT(status.message(), StartsWith(dir_.store() + ": corrupt: "));
  EXPECT_EQ(JobStore::open(dir_.store(), OpenOptions{.readOnly = true}, status), nullptr);
  EXPECT_EQ(status.code(), Code::Corruption) << status.message();
}

TEST_F(StoreTest, PermissionDeniedIsAnIoErrorNamingTheCause) {
  { openStore(dir_.store()); }
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod(dir_.store().c_str(), 0700), 0);
  std::string code;
  std::string message;
  if (getuid() == 0) {
    // Root ignores permissions: ask an unprivileged second process.
    HelperProcess helper("unprivileged", dir_.store());
    auto line = helper.readLine();
    ASSERT_NE(line, "cannot drop privileges");
    auto space = line.find(' ');
    ASSERT_NE(space, std::string::npos) << line;
    code = line.substr(0, space);
    message = line.substr(space + 1);
    helper.finish();
  } else {
    Status status;
    EXPECT_EQ(JobStore::open(dir_.store(), {}, status), nullptr);
    code = std::to_string(static_cast<int>(status.code()));
    message = status.message();
  }
  EXPECT_EQ(code, std::to_string(static_cast<int>(Code::IoError)));
  EXPECT_THAT(message, StartsWith(dir_.store() + ": permission denied ("));
  EXPECT_THAT(message, HasSubstr("Permission denied"));
}

}  // namespace
}  // namespace salvo::queue

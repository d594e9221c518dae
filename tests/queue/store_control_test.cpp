// JobStore pause / resume / cancel: what the queue hands out and how jobs are counted.
#include <gtest/gtest.h>

#include "queue/store.h"
#include "tests/queue/test_util.h"

namespace salvo::queue {
namespace {

using testutil::openStore;
using testutil::submit;
using testutil::TestDir;
using Code = Status::Code;

Outcome outcome(const LeasedJob& leased, JobState state, std::int64_t dueMs = 0) {
  Outcome o;
  o.id = leased.id;
  o.previous = leased.record.state;
  o.record = leased.record;
  o.record.state = state;
  o.record.attempts += 1;
  o.record.dueMs = dueMs;
  return o;
}

std::size_t take(JobStore& store, std::int64_t now, std::vector<LeasedJob>* out = nullptr) {
  std::vector<LeasedJob> leased;
  EXPECT_TRUE(store.takeDue(now, 1000, leased).isOk());
  if (out != nullptr) {
    *out = leased;
  }
  return leased.size();
}

TEST(StoreControlTest, PausedCampaignIsNotHandedOutUntilResumed) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto a = submit(*store, "a", 5, 100);
  submit(*store, "b", 3, 100);
  ASSERT_TRUE(store->pauseCampaign("a").isOk());
  ASSERT_TRUE(store->pauseCampaign("a").isOk());  // idempotent
  EXPECT_EQ(store->campaign(a)->state, CampaignState::Paused);
  EXPECT_EQ(take(*store, 200), 3u);  // only b's
  EXPECT_EQ(take(*store, 200), 0u);
  ASSERT_TRUE(store->resumeCampaign("a").isOk());
  ASSERT_TRUE(store->resumeCampaign("a").isOk());
  std::vector<LeasedJob> out;
  EXPECT_EQ(take(*store, 200, &out), 5u);
  for (const auto& l : out) {
    EXPECT_EQ(l.id.campaign, a);
  }
}

TEST(StoreControlTest, PauseSurvivesReopen) {
  TestDir dir;
  {
    auto store = openStore(dir.store());
    submit(*store, "a", 2, 0);
    ASSERT_TRUE(store->pauseCampaign("a").isOk());
  }
  auto store = openStore(dir.store());
  EXPECT_EQ(take(*store, 10), 0u);
  EXPECT_FALSE(store->nextDueMs());
}

TEST(StoreControlTest, UnknownOrWrongStateIsAPreciseError) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto st = store->pauseCampaign("nope");
  EXPECT_EQ(st.code(), Code::NotFound);
  EXPECT_EQ(st.message(), "no campaign 'nope'");
  submit(*store, "a", 1, 0);
  std::uint64_t n = 0;
  ASSERT_TRUE(store->cancelCampaign("a", n).isOk());
  st = store->pauseCampaign("a");
  EXPECT_EQ(st.code(), Code::InvalidArgument);
  EXPECT_EQ(st.message(), "campaign 'a' is cancelled");
  EXPECT_EQ(store->resumeCampaign("a").code(), Code::InvalidArgument);
}

TEST(StoreControlTest, CancelCountsWaitingAndInFlightJobs) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto a = submit(*store, "a", 30'000, 100);  // more than one cancel chunk
  auto b = submit(*store, "b", 2, 100);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(100, 3, leased).isOk());
  ASSERT_EQ(leased.size(), 3u);
  ASSERT_EQ(leased[0].id.campaign, a);
  // One deferred job waits for a retry too.
  ASSERT_TRUE(store->commitOutcomes({outcome(leased[0], JobState::Deferred, 150)}, true).isOk());

  std::uint64_t cancelled = 0;
  ASSERT_TRUE(store->cancelCampaign("a", cancelled).isOk());
  EXPECT_EQ(cancelled, 30'000u - 2);  // two still in flight
  // In flight: one is delivered, the other defers and is cancelled instead.
  ASSERT_TRUE(store
                  ->commitOutcomes({outcome(leased[1], JobState::Delivered),
                                    outcome(leased[2], JobState::Deferred, 200)},
                                   true)
                  .isOk());
  auto n = store->counts(a);
  EXPECT_EQ(n.queued, 0);
  EXPECT_EQ(n.deferred, 0);
  EXPECT_EQ(n.delivered, 1);
  EXPECT_EQ(n.cancelled, 30'000 - 1);
  EXPECT_EQ(n.inFlight, 0);
  EXPECT_EQ(store->job(leased[2].id)->state, JobState::Cancelled);
  std::vector<LeasedJob> rest;
  EXPECT_EQ(take(*store, 1000, &rest), 2u);
  for (const auto& l : rest) {
    EXPECT_EQ(l.id.campaign, b);
  }
  ASSERT_TRUE(store->cancelCampaign("a", cancelled).isOk());
  EXPECT_EQ(cancelled, 0u);
}

TEST(StoreControlTest, LeaseOfACancelledCampaignIsCancelledOnRecovery) {
  TestDir dir;
  std::uint32_t a = 0;
  {
    auto store = openStore(dir.store());
    a = submit(*store, "a", 4, 0);
    std::vector<LeasedJob> leased;
    ASSERT_TRUE(store->takeDue(0, 1, leased).isOk());
    std::uint64_t cancelled = 0;
    ASSERT_TRUE(store->cancelCampaign("a", cancelled).isOk());
    EXPECT_EQ(cancelled, 3u);
  }  // the daemon dies with the job in flight
  auto store = openStore(dir.store());
  auto n = store->counts(a);
  EXPECT_EQ(n.queued, 0);
  EXPECT_EQ(n.cancelled, 4);
  EXPECT_EQ(n.inFlight, 0);
  EXPECT_EQ(take(*store, 10), 0u);
}

TEST(StoreControlTest, PurgeDropsJobsOfAFinishedCampaignAndKeepsCounters) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto a = submit(*store, "a", 3, 0);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 2, leased).isOk());
  auto st = store->purgeCampaign("a");
  EXPECT_EQ(st.code(), Code::InvalidArgument);
  EXPECT_EQ(st.message(),
            "campaign 'a' is not finished (3 waiting, 2 in flight); cancel it first or let it "
            "finish");
  ASSERT_TRUE(store
                  ->commitOutcomes({outcome(leased[0], JobState::Delivered),
                                    outcome(leased[1], JobState::Bounced)},
                                   true)
                  .isOk());
  std::uint64_t cancelled = 0;
  ASSERT_TRUE(store->cancelCampaign("a", cancelled).isOk());
  ASSERT_TRUE(store->purgeCampaign("a").isOk());
  EXPECT_FALSE(store->job(leased[0].id));
  EXPECT_FALSE(store->job(JobId{a, 2}));
  auto n = store->counts(a);
  EXPECT_EQ((std::vector<std::int64_t>{n.delivered, n.bounced, n.cancelled, n.attempts}),
            (std::vector<std::int64_t>{1, 1, 1, 2}));
  EXPECT_EQ(store->campaign(a)->state, CampaignState::Cancelled);
  EXPECT_EQ(store->purgeCampaign("zz").code(), Code::NotFound);
}

TEST(StoreControlTest, SuppressionListAddsRemovesAndIgnoresCase) {
  TestDir dir;
  {
    auto store = openStore(dir.store());
    ASSERT_TRUE(store
                    ->addSuppressions({{"Bob@Example.com", "hard bounce", 5},
                                       {"carol@example.com", "complaint", 6}})
                    .isOk());
    auto bad = store->addSuppressions({{"dave@example.com", "", 7}, {"nobody", "", 7}});
    EXPECT_EQ(bad.code(), Code::InvalidArgument);
    EXPECT_EQ(bad.message(), "'nobody' is not an email address");
    EXPECT_FALSE(store->suppressed("dave@example.com"));  // the batch was refused whole
  }
  auto store = openStore(dir.store());
  auto bob = store->suppressed("BOB@example.COM");
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->address, "bob@example.com");
  EXPECT_EQ(bob->reason, "hard bounce");
  EXPECT_EQ(bob->addedMs, 5);
  ASSERT_EQ(store->suppressions().size(), 2u);
  EXPECT_EQ(store->suppressions()[1].address, "carol@example.com");
  ASSERT_TRUE(store->removeSuppression("carol@EXAMPLE.com").isOk());
  auto st = store->removeSuppression("carol@example.com");
  EXPECT_EQ(st.code(), Code::NotFound);
  EXPECT_EQ(st.message(), "'carol@example.com' is not suppressed");
  EXPECT_EQ(store->suppressions().size(), 1u);
}

TEST(StoreControlTest, SuppressedJobsAndSkippedRecipientsAreCounted) {
  TestDir dir;
  auto store = openStore(dir.store());
  std::uint32_t c = 0;
  ASSERT_TRUE(store->beginCampaign("c", "spec", 0, c).isOk());
  ASSERT_TRUE(store->addJobs(c, 0, testutil::makeJobs(2, "c"), 0).isOk());
  ASSERT_TRUE(store->finishCampaign(c, 5, 3).isOk());  // 3 skipped at submit
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 10, leased).isOk());
  auto o = outcome(leased[0], JobState::Suppressed);
  o.attempted = false;
  ASSERT_TRUE(store->commitOutcomes({o}, true).isOk());
  auto n = store->counts(c);
  EXPECT_EQ(n.suppressed, 4);
  EXPECT_EQ(n.queued, 1);
  EXPECT_EQ(n.attempts, 0);
  EXPECT_EQ(store->job(leased[0].id)->state, JobState::Suppressed);
  EXPECT_EQ(store->campaign(c)->jobs, 5u);
}

}  // namespace
}  // namespace salvo::queue

#include "queue/outcome_writer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "tests/queue/test_util.h"

namespace salvo::queue {
namespace {

using testutil::openStore;
using testutil::submit;
using testutil::TestDir;

Outcome delivered(const LeasedJob& leased) {
  Outcome o;
  o.id = leased.id;
  o.previous = leased.record.state;
  o.record = leased.record;
  o.record.state = JobState::Delivered;
  o.record.attempts += 1;
  o.record.lastReply = "250 2.0.0 ok";
  return o;
}

// Records every committed outcome; lets a test hold the writer inside a callback.
class Committed {
 public:
  void operator()(std::vector<Outcome>&& batch, const Status& status) {
    std::unique_lock lock(mutex_);
    ++callbacks_;
    statuses_.push_back(status);
    batchSizes_.push_back(batch.size());
    for (const auto& o : batch) {
      ++seen_[o.id];
    }
    cv_.notify_all();
    cv_.wait(lock, [this] { return !holding_; });
  }
  void hold() {
    std::lock_guard lock(mutex_);
    holding_ = true;
  }
  void release() {
    std::lock_guard lock(mutex_);
    holding_ = false;
    cv_.notify_all();
  }
  void waitForCallbacks(std::size_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return callbacks_ >= n; });
  }
  std::map<JobId, int> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::vector<Status> statuses() const {
    std::lock_guard lock(mutex_);
    return statuses_;
  }
  std::vector<std::size_t> batchSizes() const {
    std::lock_guard lock(mutex_);
    return batchSizes_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool holding_ = false;
  std::size_t callbacks_ = 0;
  std::map<JobId, int> seen_;
  std::vector<Status> statuses_;
  std::vector<std::size_t> batchSizes_;
};

TEST(OutcomeWriterTest, ManyThreadsEveryOutcomeCommittedExactlyOnce) {
  TestDir dir;
  auto store = openStore(dir.store());
  constexpr std::size_t kThreads = 4;
  constexpr std::size_t kPerThread = 1000;
  constexpr std::size_t kBurst = 10;
  auto c = submit(*store, "c", kThreads * kPerThread, 0);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, kThreads * kPerThread, leased).isOk());
  ASSERT_EQ(leased.size(), kThreads * kPerThread);

  Committed committed;
  OutcomeWriter writer(*store, std::ref(committed));
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = 0; i < kPerThread; i += kBurst) {
        std::vector<Outcome> burst;
        for (std::size_t k = 0; k < kBurst; ++k) {
          burst.push_back(delivered(leased[t * kPerThread + i + k]));
        }
        writer.push(std::move(burst));
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  writer.stop();

  auto seen = committed.seen();
  ASSERT_EQ(seen.size(), kThreads * kPerThread);
  for (const auto& l : leased) {
    EXPECT_EQ(seen[l.id], 1) << l.id.str();
  }
  for (const auto& st : committed.statuses()) {
    EXPECT_TRUE(st.isOk()) << st.message();
  }
  // Each push is a burst of ten, so there are at most a tenth as many batches.
  EXPECT_GE(writer.batches(), 1u);
  EXPECT_LE(writer.batches(), kThreads * kPerThread / kBurst);
  EXPECT_EQ(writer.batches(), committed.batchSizes().size());

  auto counts = store->counts(c);
  EXPECT_EQ(counts.delivered, static_cast<std::int64_t>(kThreads * kPerThread));
  EXPECT_EQ(counts.queued, 0);
  EXPECT_EQ(counts.attempts, static_cast<std::int64_t>(kThreads * kPerThread));
  EXPECT_EQ(counts.inFlight, 0);
}

TEST(OutcomeWriterTest, OutcomesPushedDuringACommitGoOutTogether) {
  TestDir dir;
  auto store = openStore(dir.store());
  submit(*store, "c", 4, 0);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 4, leased).isOk());

  Committed committed;
  committed.hold();
  OutcomeWriter writer(*store, std::ref(committed));
  writer.push({delivered(leased[0])});
  // The writer is now inside the first callback; everything pushed meanwhile waits.
  committed.waitForCallbacks(1);
  writer.push({delivered(leased[1])});
  writer.push({delivered(leased[2])});
  writer.push({delivered(leased[3])});
  committed.release();
  writer.stop();
  EXPECT_EQ(writer.batches(), 2u);
  EXPECT_EQ(committed.batchSizes(), (std::vector<std::size_t>{1, 3}));
  EXPECT_EQ(committed.seen().size(), 4u);
}

TEST(OutcomeWriterTest, StopCommitsWhatIsPendingAndIsIdempotent) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto c = submit(*store, "c", 2, 0);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 2, leased).isOk());
  {
    OutcomeWriter writer(*store, nullptr);
    writer.push({delivered(leased[0]), delivered(leased[1])});
    writer.push({});
    writer.stop();
    writer.stop();
    EXPECT_EQ(writer.batches(), 1u);
  }
  EXPECT_EQ(store->counts(c).delivered, 2);
  { OutcomeWriter idle(*store, nullptr); }  // destroyed without pushes or an explicit stop
}

// With no outcome to commit, the writer thread writes the in-flight snapshot a read-only
// store (`salvo status` beside the daemon) reads.
TEST(OutcomeWriterTest, IdleWriterPublishesJobsInFlight) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto c = submit(*store, "c", 3, 0);
  OutcomeWriter writer(*store, nullptr);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 3, leased).isOk());
  auto reader = openStore(dir.store(), OpenOptions{.readOnly = true});
  ASSERT_NE(reader, nullptr);
  // Awaited by polling the secondary (it has no notification); bounded.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (reader->counts(c).inFlight != 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(OutcomeWriter::kIdleTick / 5);
    ASSERT_TRUE(reader->refresh().isOk());
  }
  EXPECT_EQ(reader->counts(c).inFlight, 3);
  writer.push({delivered(leased[0])});
  writer.stop();
  ASSERT_TRUE(reader->refresh().isOk());
  EXPECT_EQ(reader->counts(c).inFlight, 2);
  EXPECT_EQ(reader->counts(c).delivered, 1);
}

TEST(OutcomeWriterTest, CommitFailureIsReportedWithTheOutcomes) {
  TestDir dir;
  std::vector<LeasedJob> leased;
  {
    auto store = openStore(dir.store());
    submit(*store, "c", 1, 0);
    ASSERT_TRUE(store->takeDue(0, 1, leased).isOk());
  }
  auto readOnly = openStore(dir.store(), OpenOptions{.readOnly = true});
  Committed committed;
  OutcomeWriter writer(*readOnly, std::ref(committed));
  writer.push({delivered(leased[0])});
  writer.stop();
  auto statuses = committed.statuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].code(), Status::Code::InvalidArgument);
  EXPECT_EQ(committed.seen().size(), 1u);
}

TEST(OutcomeWriterTest, GroupsOutcomesUntilTheDelayEnds) {
  TestDir dir;
  auto store = openStore(dir.store());
  submit(*store, "c", 500, 0);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 500, leased).isOk());
  Committed committed;
  // A delay far longer than the test: only the count or stop() can trigger a commit.
  OutcomeWriter writer(*store, std::ref(committed),
                       GroupCommit{.maxBatch = 1000, .maxDelayMs = 600'000});
  for (std::size_t i = 0; i < 500; i += 100) {
    std::vector<Outcome> burst;
    for (std::size_t k = 0; k < 100; ++k) {
      burst.push_back(delivered(leased[i + k]));
    }
    writer.push(std::move(burst));
  }
  writer.stop();
  EXPECT_EQ(writer.batches(), 1u);
  EXPECT_EQ(committed.batchSizes(), (std::vector<std::size_t>{500}));
}

TEST(OutcomeWriterTest, CommitsAsSoonAsTheBatchIsFull) {
  TestDir dir;
  auto store = openStore(dir.store());
  auto c = submit(*store, "c", 200, 0);
  std::vector<LeasedJob> leased;
  ASSERT_TRUE(store->takeDue(0, 200, leased).isOk());
  Committed committed;
  OutcomeWriter writer(*store, std::ref(committed),
                       GroupCommit{.maxBatch = 200, .maxDelayMs = 600'000});
  std::vector<Outcome> all;
  for (const auto& l : leased) {
    all.push_back(delivered(l));
  }
  writer.push(std::move(all));
  // Returns long before the delay: the full batch triggers the commit.
  committed.waitForCallbacks(1);
  EXPECT_EQ(committed.batchSizes(), (std::vector<std::size_t>{200}));
  EXPECT_EQ(store->counts(c).delivered, 200);
  writer.stop();
}

}  // namespace
}  // namespace salvo::queue

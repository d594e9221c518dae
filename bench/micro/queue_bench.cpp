// Micro-benchmarks of the durable queue (queue/store.h, queue/outcome_writer.h):
//   BM_Submit               recipients/s through beginCampaign + addJobs + finishCampaign
//   BM_TakeDueCommit        jobs/s through takeDue + one synced commitOutcomes per batch
//   BM_DueScanAfterDeliveries/N   takeDue cost once N jobs were already delivered
//                           (the due index is then full of tombstones: must not grow with N)
// Each benchmark works in a fresh store under $TMPDIR (default /tmp), removed at the end.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "queue/store.h"

namespace {

using salvo::queue::JobRecord;
using salvo::queue::JobState;
using salvo::queue::JobStore;
using salvo::queue::LeasedJob;
using salvo::queue::Outcome;

class BenchStore {
 public:
  BenchStore() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = fmt::format("{}/salvo-bench-XXXXXX", tmp != nullptr ? tmp : "/tmp");
    if (mkdtemp(pattern.data()) == nullptr) {
      std::abort();
    }
    dir_ = pattern;
    salvo::queue::Status status;
    store_ = JobStore::open(dir_ + "/store", {}, status);
    if (!store_) {
      std::fprintf(stderr, "open: %s\n", status.message().c_str());
      std::abort();
    }
  }
  ~BenchStore() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  JobStore& operator*() { return *store_; }
  JobStore* operator->() { return store_.get(); }

 private:
  std::string dir_;
  std::unique_ptr<JobStore> store_;
};

// A batch like the submitter's: recipient plus two merge values.
std::vector<JobRecord> makeBatch(std::size_t n, std::uint64_t first) {
  std::vector<JobRecord> jobs(n);
  for (std::size_t i = 0; i < n; ++i) {
    jobs[i].recipient =
        "user" + std::to_string(first + i) + "@d" + std::to_string(i % 97) + ".example";
    jobs[i].values = {"Name " + std::to_string(first + i), "tok-" + std::to_string(i * 7919)};
  }
  return jobs;
}

void check(const salvo::queue::Status& st) {
  if (!st.isOk()) {
    std::fprintf(stderr, "queue: %s\n", st.message().c_str());
    std::abort();
  }
}

std::uint32_t submit(JobStore& store, const std::string& name, std::size_t n,
                     const std::vector<JobRecord>& batch) {
  std::uint32_t number = 0;
  check(store.beginCampaign(name, "spec", 0, number));
  std::uint64_t seq = 0;
  while (seq < n) {
    check(store.addJobs(number, seq, batch, 0));
    seq += batch.size();
  }
  check(store.finishCampaign(number, seq));
  return number;
}

void deliveredOutcomes(const std::vector<LeasedJob>& leased, std::vector<Outcome>& out) {
  out.clear();
  for (const auto& l : leased) {
    Outcome& o = out.emplace_back();
    o.id = l.id;
    o.previous = l.record.state;
    o.record = l.record;
    o.record.state = JobState::Delivered;
    o.record.attempts += 1;
    o.record.lastReply = "250 2.0.0 Ok: queued";
  }
}

// Submit: 100,000 recipients per iteration, in the submitter's 10,000-job batches, ending
// with the synced write that acknowledges the campaign.
void BM_Submit(benchmark::State& state) {
  BenchStore store;
  auto batch = makeBatch(10'000, 0);
  int campaign = 0;
  for (auto _ : state) {
    submit(*store, fmt::format("c{}", campaign++), 100'000, batch);
  }
  state.SetItemsProcessed(state.iterations() * 100'000);
}
BENCHMARK(BM_Submit)->Unit(benchmark::kMillisecond)->UseRealTime();

// One engine cycle: lease `batch` due jobs, commit them delivered in one synced batch
// (what the OutcomeWriter's group commit does under load).
void BM_TakeDueCommit(benchmark::State& state) {
  const auto batchSize = static_cast<std::size_t>(state.range(0));
  BenchStore store;
  auto jobs = makeBatch(10'000, 0);
  std::vector<LeasedJob> leased;
  std::vector<Outcome> outcomes;
  int campaign = 0;
  double takeSeconds = 0;
  double commitSeconds = 0;
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    leased.clear();
    auto t0 = Clock::now();
    check(store->takeDue(1, batchSize, leased));
    if (leased.size() < batchSize) {
      state.PauseTiming();
      submit(*store, fmt::format("c{}", campaign++), 500'000, jobs);
      state.ResumeTiming();
      t0 = Clock::now();
      check(store->takeDue(1, batchSize - leased.size(), leased));
    }
    auto t1 = Clock::now();
    deliveredOutcomes(leased, outcomes);
    auto t2 = Clock::now();
    check(store->commitOutcomes(outcomes, true));
    auto t3 = Clock::now();
    takeSeconds += std::chrono::duration<double>(t1 - t0).count();
    commitSeconds += std::chrono::duration<double>(t3 - t2).count();
  }
  auto jobsDone = static_cast<double>(state.iterations()) * static_cast<double>(batchSize);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batchSize));
  // Where the time goes, per job (wall clock; the commit includes its fsync).
  state.counters["take_us"] = takeSeconds * 1e6 / jobsDone;
  state.counters["commit_us"] = commitSeconds * 1e6 / jobsDone;
}
BENCHMARK(BM_TakeDueCommit)->Arg(1000)->Arg(4000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The due scan after N deliveries: the first N jobs of a campaign are taken and delivered
// (leaving N tombstones at the head of the due index), then each iteration takes 1,000
// of the remaining jobs (timed) and commits them (not timed). The time per iteration
// must not grow with N.
void BM_DueScanAfterDeliveries(benchmark::State& state) {
  const auto delivered = static_cast<std::size_t>(state.range(0));
  BenchStore store;
  auto jobs = makeBatch(10'000, 0);
  submit(*store, "c", delivered + 1'000'000, jobs);
  std::vector<LeasedJob> leased;
  std::vector<Outcome> outcomes;
  for (std::size_t done = 0; done < delivered; done += leased.size()) {
    leased.clear();
    check(store->takeDue(1, std::min<std::size_t>(10'000, delivered - done), leased));
    deliveredOutcomes(leased, outcomes);
    check(store->commitOutcomes(outcomes, false));
  }
  for (auto _ : state) {
    leased.clear();
    check(store->takeDue(1, 1000, leased));
    if (leased.empty()) {
      state.SkipWithError("ran out of due jobs");
      break;
    }
    // Only the scan is timed; the commit keeps the index as the engine leaves it.
    state.PauseTiming();
    deliveredOutcomes(leased, outcomes);
    check(store->commitOutcomes(outcomes, false));
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_DueScanAfterDeliveries)
    ->Arg(0)
    ->Arg(1'000'000)
    ->Iterations(500)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

#include "queue/outcome_writer.h"

#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace salvo::queue {

OutcomeWriter::OutcomeWriter(JobStore& store, Committed onCommitted, GroupCommit group,
                             std::function<void()> onTick)
    : store_(store),
      onCommitted_(std::move(onCommitted)),
      group_(group),
      onTick_(std::move(onTick)),
      thread_([this] { loop(); }) {}

void OutcomeWriter::tick() {
  auto now = std::chrono::steady_clock::now();
  if (now - lastTick_ < kIdleTick) {
    return;
  }
  lastTick_ = now;
  // Keep the in-flight snapshot `salvo status` reads current (a no-op after a commit).
  if (auto st = store_.saveInFlight(); !st.isOk()) {
    std::fprintf(stderr, "salvo: queue: %s\n", st.message().c_str());
  }
  if (onTick_) {
    onTick_();
  }
}

OutcomeWriter::~OutcomeWriter() {
  stop();
}

void OutcomeWriter::push(std::vector<Outcome>&& outcomes) {
  if (outcomes.empty()) {
    return;
  }
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      // An outcome pushed after stop() would never be committed: the engine must stop
      // delivering before it stops the writer.
      std::fprintf(stderr, "salvo: OutcomeWriter::push() after stop()\n");
      std::abort();
    }
    if (pending_.empty()) {
      firstPending_ = std::chrono::steady_clock::now();
      pending_.swap(outcomes);
      wake = true;  // the writer may be waiting for a first outcome
    } else {
      pending_.insert(pending_.end(), std::make_move_iterator(outcomes.begin()),
                      std::make_move_iterator(outcomes.end()));
    }
    wake = wake || pending_.size() >= group_.maxBatch;
  }
  if (wake) {
    cv_.notify_one();
  }
}

void OutcomeWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::uint64_t OutcomeWriter::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

void OutcomeWriter::loop() {
  std::vector<Outcome> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (!cv_.wait_for(lock, kIdleTick, [this] { return stopping_ || !pending_.empty(); })) {
        lock.unlock();
        tick();
        continue;
      }
      if (pending_.empty()) {
        return;  // stopping, and everything pushed has been committed
      }
      // Group commit: let more outcomes join until the batch is full or the first one
      // has waited maxDelayMs. Outcomes that arrive during a commit are already late, so
      // they go out as soon as that commit ends if their wait is over.
      auto deadline = firstPending_ + std::chrono::milliseconds(group_.maxDelayMs);
      cv_.wait_until(lock, deadline,
                     [this] { return stopping_ || pending_.size() >= group_.maxBatch; });
      // Swap rather than copy: the pushers' next vector reuses this batch's capacity.
      batch.clear();
      batch.swap(pending_);
    }
    // Everything that queued up during the previous commit goes out in one synced write.
    Status status = store_.commitOutcomes(batch, true);
    {
      std::lock_guard lock(mutex_);
      ++batches_;
    }
    if (onCommitted_) {
      onCommitted_(std::move(batch), status);
    }
    batch.clear();
    tick();
  }
}

}  // namespace salvo::queue

#include "queue/outcome_writer.h"

#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace salvo::queue {

OutcomeWriter::OutcomeWriter(JobStore& store, Committed onCommitted)
    : store_(store), onCommitted_(std::move(onCommitted)), thread_([this] { loop(); }) {}

OutcomeWriter::~OutcomeWriter() {
  stop();
}

void OutcomeWriter::push(std::vector<Outcome>&& outcomes) {
  if (outcomes.empty()) {
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      // An outcome pushed after stop() would never be committed: the engine must stop
      // delivering before it stops the writer.
      std::fprintf(stderr, "salvo: OutcomeWriter::push() after stop()\n");
      std::abort();
    }
    if (pending_.empty()) {
      pending_.swap(outcomes);
    } else {
      pending_.insert(pending_.end(), std::make_move_iterator(outcomes.begin()),
                      std::make_move_iterator(outcomes.end()));
    }
  }
  cv_.notify_one();
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
      cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) {
        return;  // stopping, and everything pushed has been committed
      }
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
  }
}

}  // namespace salvo::queue

// OutcomeWriter: the single writer thread that commits delivery outcomes by group commit.
// Contract: push() never blocks on I/O (a mutex-guarded vector); the thread takes
// everything pushed so far, commits it as one synced batch (so a busy engine makes few
// fsyncs), then calls `onCommitted` with the committed outcomes, on the writer thread.
// No synced write ever runs on an event-loop thread. stop() commits what is pending.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "queue/store.h"

namespace salvo::queue {

class OutcomeWriter {
 public:
  using Committed = std::function<void(std::vector<Outcome>&&, const Status&)>;
  OutcomeWriter(JobStore& store, Committed onCommitted);
  ~OutcomeWriter();  // stop()
  void push(std::vector<Outcome>&& outcomes);
  void stop();
  std::uint64_t batches() const;  // synced batches written so far

 private:
  void loop();
  JobStore& store_;
  Committed onCommitted_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Outcome> pending_;
  bool stopping_ = false;
  std::uint64_t batches_ = 0;
  std::thread thread_;
};

}  // namespace salvo::queue

// OutcomeWriter: the single writer thread that commits delivery outcomes by group commit.
// Contract: push() never blocks on I/O (a mutex-guarded vector). The thread commits
// pending outcomes as one synced batch as soon as `maxBatch` are pending, or `maxDelayMs`
// after the first of them was pushed, whichever comes first (group commit by count or
// time: a busy engine makes few fsyncs, an idle one waits at most maxDelayMs), then
// calls `onCommitted` with the committed outcomes, on the writer thread. No synced write
// ever runs on an event-loop thread. stop() commits what is pending at once. Every
// kIdleTick (busy or idle) it writes the store's in-flight snapshot if it changed
// (JobStore::saveInFlight) and calls `onTick` (the daemon's retention sweep), so every
// routine queue write of a running daemon happens on this thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "queue/store.h"

namespace salvo::queue {

struct GroupCommit {
  std::size_t maxBatch = 2048;    // commit at once when this many outcomes are pending
  std::uint32_t maxDelayMs = 10;  // else this long after the first pending one (0: at once)
};

class OutcomeWriter {
 public:
  static constexpr std::chrono::milliseconds kIdleTick{250};
  using Committed = std::function<void(std::vector<Outcome>&&, const Status&)>;
  OutcomeWriter(JobStore& store, Committed onCommitted, GroupCommit group = {},
                std::function<void()> onTick = nullptr);
  ~OutcomeWriter();  // stop()
  void push(std::vector<Outcome>&& outcomes);
  void stop();
  std::uint64_t batches() const;  // synced batches written so far

 private:
  void loop();
  void tick();
  JobStore& store_;
  Committed onCommitted_;
  GroupCommit group_;
  std::function<void()> onTick_;
  std::chrono::steady_clock::time_point lastTick_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point firstPending_;  // when pending_ became non-empty
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Outcome> pending_;
  bool stopping_ = false;
  std::uint64_t batches_ = 0;
  std::thread thread_;
};

}  // namespace salvo::queue

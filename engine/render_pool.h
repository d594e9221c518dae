// RenderPool: threads for the per-message work too costly for a delivery loop — rendering
// and DKIM-signing a message (an RSA-2048 signature is ~300 µs, a hundred times the rest of
// the message's loop work). Without it a destination's signing runs on its one loop, and a
// campaign sent through one smarthost signs on one core however many there are.
// Contract: post() is thread-safe; tasks run in FIFO order, each on one pool thread, and
// must not throw. A task never touches loop-owned state: it reads what it was given and
// reports back with EventLoop::post(). The destructor finishes the tasks running, drops
// those still queued (never run) and joins: destroy the pool before the loops its tasks
// post to.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace salvo::engine {

class RenderPool {
 public:
  // `threads` ≥ 1 threads named "salvo-render-N".
  explicit RenderPool(int threads);
  ~RenderPool();
  RenderPool(const RenderPool&) = delete;
  RenderPool& operator=(const RenderPool&) = delete;

  void post(std::function<void()> task);
  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  void runThread();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace salvo::engine

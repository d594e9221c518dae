#include "engine/render_pool.h"

#include <pthread.h>

#include <algorithm>
#include <string>

namespace salvo::engine {

RenderPool::RenderPool(int threads) {
  threads_.reserve(static_cast<std::size_t>(std::max(1, threads)));
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this, i] {
      const std::string name = "salvo-render-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      runThread();
    });
  }
}

RenderPool::~RenderPool() {
  std::deque<std::function<void()>> unrun;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    unrun.swap(tasks_);
  }
  wake_.notify_all();
  for (auto& t : threads_) {
    t.join();
  }
  unrun.clear();  // outside the lock: a task's captures may be large
}

void RenderPool::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return;
    }
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void RenderPool::runThread() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (stopping_) {
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace salvo::engine

#include "engine/render_pool.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace salvo::engine {
namespace {

using namespace std::chrono_literals;

TEST(RenderPoolTest, RunsEveryTaskOffTheCallingThread) {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::thread::id> ran;
  {
    RenderPool pool(2);
    EXPECT_EQ(pool.threads(), 2);
    for (int i = 0; i < 200; ++i) {
      pool.post([&] {
        std::lock_guard<std::mutex> lock(m);
        ran.push_back(std::this_thread::get_id());
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return ran.size() == 200; }));
  }
  for (const auto& id : ran) {
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(RenderPoolTest, ItsThreadsRunTasksAtTheSameTime) {
  // Two tasks that each wait for the other: both finish only on two threads at once.
  std::mutex m;
  std::condition_variable cv;
  int arrived = 0;
  int met = 0;
  int finished = 0;
  {
    RenderPool pool(2);
    for (int i = 0; i < 2; ++i) {
      pool.post([&] {
        std::unique_lock<std::mutex> lock(m);
        ++arrived;
        cv.notify_all();
        if (cv.wait_for(lock, 10s, [&] { return arrived == 2; })) {
          ++met;
        }
        ++finished;
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return finished == 2; }));
  }
  EXPECT_EQ(met, 2);
}

TEST(RenderPoolTest, OneThreadRunsTasksInTheOrderPosted) {
  std::mutex m;
  std::condition_variable cv;
  std::vector<int> order;
  {
    RenderPool pool(1);
    for (int i = 0; i < 100; ++i) {
      pool.post([&, i] {
        std::lock_guard<std::mutex> lock(m);
        order.push_back(i);
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return order.size() == 100; }));
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  }
}

TEST(RenderPoolTest, AtLeastOneThread) {
  RenderPool pool(0);
  EXPECT_EQ(pool.threads(), 1);
}

}  // namespace
}  // namespace salvo::engine

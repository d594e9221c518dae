#include "engine/scheduling.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <string>
#include <thread>

namespace salvo::engine {
namespace {

TEST(SchedulingTest, BatchPolicyForTheCallerAndTheThreadsItStarts) {
  int caller = -1;
  int child = -1;
  bool ok = false;
  std::string error;
  std::thread t([&] {
    ok = useBatchScheduling(error);
    caller = sched_getscheduler(0);
    std::thread inner([&] { child = sched_getscheduler(0); });
    inner.join();
  });
  t.join();
  ASSERT_TRUE(ok) << error;
  EXPECT_EQ(caller, SCHED_BATCH);
  EXPECT_EQ(child, SCHED_BATCH);
  // Only the calling thread changed.
  EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
}

}  // namespace
}  // namespace salvo::engine

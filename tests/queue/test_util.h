// Shared helpers of the queue tests: a temporary directory and a submitted campaign.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "queue/store.h"

namespace salvo::queue::testutil {

// A fresh directory under the test temp dir, removed with everything in it.
class TestDir {
 public:
  TestDir() {
    std::string pattern = ::testing::TempDir() + "salvo-queue-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    }
    path_ = pattern;
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;

  const std::string& path() const { return path_; }
  std::string store() const { return path_ + "/store"; }

 private:
  std::string path_;
};

inline std::unique_ptr<JobStore> openStore(const std::string& dir, OpenOptions options = {}) {
  Status status;
  auto store = JobStore::open(dir, options, status);
  EXPECT_TRUE(status.isOk()) << status.message();
  EXPECT_TRUE(store != nullptr);
  return store;
}

inline std::vector<JobRecord> makeJobs(std::size_t n, const std::string& tag = "u") {
  std::vector<JobRecord> jobs(n);
  for (std::size_t i = 0; i < n; ++i) {
    jobs[i].recipient = tag + std::to_string(i) + "@example.com";
    jobs[i].values = {"name" + std::to_string(i), "x"};
  }
  return jobs;
}

// begin + addJobs + finish; returns the campaign number (0 on failure).
inline std::uint32_t submit(JobStore& store, const std::string& name, std::size_t n,
                            std::int64_t dueMs) {
  std::uint32_t number = 0;
  auto st = store.beginCampaign(name, "spec:" + name, dueMs, number);
  EXPECT_TRUE(st.isOk()) << st.message();
  st = store.addJobs(number, 0, makeJobs(n, name), dueMs);
  EXPECT_TRUE(st.isOk()) << st.message();
  st = store.finishCampaign(number, n);
  EXPECT_TRUE(st.isOk()) << st.message();
  return number;
}

}  // namespace salvo::queue::testutil

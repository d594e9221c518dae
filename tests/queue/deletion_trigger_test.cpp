#include "queue/deletion_trigger.h"

#include <gtest/gtest.h>

namespace salvo::queue {
namespace {

void add(DeletionTrigger& t, rocksdb::EntryType type, int n) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(t.AddUserKey("k", "", type, 0, 0).ok());
  }
}

TEST(DeletionTriggerTest, SingleDeletesCountLikeDeletes) {
  DeletionTrigger single(100, 10, 0);
  add(single, rocksdb::kEntryPut, 50);
  add(single, rocksdb::kEntrySingleDelete, 9);
  EXPECT_FALSE(single.NeedCompact());
  add(single, rocksdb::kEntrySingleDelete, 1);
  EXPECT_TRUE(single.NeedCompact());

  DeletionTrigger plain(100, 10, 0);
  add(plain, rocksdb::kEntryDelete, 10);
  EXPECT_TRUE(plain.NeedCompact());
}

TEST(DeletionTriggerTest, OnlyTombstonesWithinTheWindowCount) {
  DeletionTrigger t(10, 5, 0);
  for (int round = 0; round < 20; ++round) {
    add(t, rocksdb::kEntrySingleDelete, 4);
    add(t, rocksdb::kEntryPut, 6);  // the window never holds more than four tombstones
  }
  EXPECT_FALSE(t.NeedCompact());
  add(t, rocksdb::kEntrySingleDelete, 5);
  EXPECT_TRUE(t.NeedCompact());
}

TEST(DeletionTriggerTest, RatioAppliesToTheWholeFileAtFinish) {
  DeletionTrigger t(1000, 0, 0.5);  // window test off
  add(t, rocksdb::kEntryPut, 10);
  add(t, rocksdb::kEntrySingleDelete, 9);
  rocksdb::UserCollectedProperties props;
  ASSERT_TRUE(t.Finish(&props).ok());
  EXPECT_FALSE(t.NeedCompact());

  DeletionTrigger u(1000, 0, 0.5);
  add(u, rocksdb::kEntryPut, 10);
  add(u, rocksdb::kEntryDelete, 10);
  ASSERT_TRUE(u.Finish(&props).ok());
  EXPECT_TRUE(u.NeedCompact());
}

TEST(DeletionTriggerTest, MergesAndPutsNeverTrigger) {
  DeletionTrigger t(10, 1, 0.1);
  add(t, rocksdb::kEntryPut, 100);
  add(t, rocksdb::kEntryMerge, 100);
  rocksdb::UserCollectedProperties props;
  ASSERT_TRUE(t.Finish(&props).ok());
  EXPECT_FALSE(t.NeedCompact());
}

}  // namespace
}  // namespace salvo::queue

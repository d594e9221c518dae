// DeletionTrigger: a RocksDB table-properties collector that marks an SST file for
// compaction when it holds many tombstones, so the queue's scans from the head of the due
// index do not wade through deleted entries.
// Why not RocksDB's NewCompactOnDeletionCollectorFactory: it counts only Delete entries
// (kEntryDelete), and the due index is cleared with SingleDelete, whose tombstones it
// never sees. This one counts Delete and SingleDelete alike.
// Policy: a file needs compaction when any `window` consecutive entries hold at least
// `trigger` tombstones, or when tombstones make up at least `ratio` of the whole file
// (ratio 0 disables that test).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <rocksdb/table_properties.h>

namespace salvo::queue {

class DeletionTrigger : public rocksdb::TablePropertiesCollector {
 public:
  DeletionTrigger(std::size_t window, std::size_t trigger, double ratio);

  rocksdb::Status AddUserKey(const rocksdb::Slice& key, const rocksdb::Slice& value,
                             rocksdb::EntryType type, rocksdb::SequenceNumber seq,
                             std::uint64_t fileSize) override;
  rocksdb::Status Finish(rocksdb::UserCollectedProperties* properties) override;
  rocksdb::UserCollectedProperties GetReadableProperties() const override { return {}; }
  const char* Name() const override { return "salvo.DeletionTrigger"; }
  bool NeedCompact() const override { return needCompact_; }

 private:
  std::size_t window_;
  std::size_t trigger_;
  double ratio_;
  std::vector<bool> ring_;  // whether each of the last `window_` entries was a tombstone
  std::size_t pos_ = 0;
  std::size_t inWindow_ = 0;
  std::uint64_t entries_ = 0;
  std::uint64_t tombstones_ = 0;
  bool needCompact_ = false;
};

std::shared_ptr<rocksdb::TablePropertiesCollectorFactory> newDeletionTriggerFactory(
    std::size_t window, std::size_t trigger, double ratio);

}  // namespace salvo::queue

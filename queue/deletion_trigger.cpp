#include "queue/deletion_trigger.h"

#include <algorithm>

namespace salvo::queue {

namespace {

class DeletionTriggerFactory : public rocksdb::TablePropertiesCollectorFactory {
 public:
  DeletionTriggerFactory(std::size_t window, std::size_t trigger, double ratio)
      : window_(window), trigger_(trigger), ratio_(ratio) {}
  rocksdb::TablePropertiesCollector* CreateTablePropertiesCollector(
      rocksdb::TablePropertiesCollectorFactory::Context /*context*/) override {
    return new DeletionTrigger(window_, trigger_, ratio_);
  }
  const char* Name() const override { return "salvo.DeletionTriggerFactory"; }

 private:
  std::size_t window_;
  std::size_t trigger_;
  double ratio_;
};

}  // namespace

DeletionTrigger::DeletionTrigger(std::size_t window, std::size_t trigger, double ratio)
    : window_(std::max<std::size_t>(window, 1)), trigger_(trigger), ratio_(ratio) {}

rocksdb::Status DeletionTrigger::AddUserKey(const rocksdb::Slice& /*key*/,
                                            const rocksdb::Slice& /*value*/,
                                            rocksdb::EntryType type,
                                            rocksdb::SequenceNumber /*seq*/,
                                            std::uint64_t /*fileSize*/) {
  bool tombstone = type == rocksdb::kEntryDelete || type == rocksdb::kEntrySingleDelete ||
                   type == rocksdb::kEntryDeleteWithTimestamp;
  ++entries_;
  tombstones_ += tombstone ? 1 : 0;
  if (needCompact_ || trigger_ == 0) {
    return rocksdb::Status::OK();
  }
  if (ring_.size() < window_) {
    ring_.push_back(tombstone);
  } else {
    inWindow_ -= ring_[pos_] ? 1 : 0;
    ring_[pos_] = tombstone;
    pos_ = (pos_ + 1) % window_;
  }
  inWindow_ += tombstone ? 1 : 0;
  if (inWindow_ >= trigger_) {
    needCompact_ = true;
  }
  return rocksdb::Status::OK();
}

rocksdb::Status DeletionTrigger::Finish(rocksdb::UserCollectedProperties* /*properties*/) {
  if (!needCompact_ && ratio_ > 0 && entries_ > 0 &&
      static_cast<double>(tombstones_) >= ratio_ * static_cast<double>(entries_)) {
    needCompact_ = true;
  }
  return rocksdb::Status::OK();
}

std::shared_ptr<rocksdb::TablePropertiesCollectorFactory> newDeletionTriggerFactory(
    std::size_t window, std::size_t trigger, double ratio) {
  return std::make_shared<DeletionTriggerFactory>(window, trigger, ratio);
}

}  // namespace salvo::queue

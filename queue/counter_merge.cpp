#include "queue/counter_merge.h"

#include "queue/keys.h"

namespace salvo::queue {

namespace {

class AddInt64 : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* merged,
             rocksdb::Logger* /*logger*/) const override {
    // A malformed value is corruption: returning false makes RocksDB report it.
    std::uint64_t sum = 0;
    if (existing != nullptr) {
      auto base = keys::decodeDelta({existing->data(), existing->size()});
      if (!base) {
        return false;
      }
      sum = static_cast<std::uint64_t>(*base);
    }
    auto delta = keys::decodeDelta({value.data(), value.size()});
    if (!delta) {
      return false;
    }
    // Unsigned arithmetic wraps instead of overflowing (no counter gets near it).
    auto bytes =
        keys::encodeDelta(static_cast<std::int64_t>(sum + static_cast<std::uint64_t>(*delta)));
    merged->assign(bytes.data(), bytes.size());
    return true;
  }
  const char* Name() const override { return "salvo.AddInt64"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> newCounterMergeOperator() {
  return std::make_shared<AddInt64>();
}

}  // namespace salvo::queue

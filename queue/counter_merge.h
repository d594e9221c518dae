// The merge operator of the counters column family: values and operands are signed 64-bit
// little-endian integers (keys::encodeDelta), and a merge adds them. Its name is stored in
// the database's OPTIONS file, so it must not change.
#pragma once

#include <memory>

#include <rocksdb/merge_operator.h>

namespace salvo::queue {

std::shared_ptr<rocksdb::MergeOperator> newCounterMergeOperator();

}  // namespace salvo::queue

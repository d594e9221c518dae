#include "queue/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "queue/counter_merge.h"
#include "queue/deletion_trigger.h"
#include "queue/keys.h"

namespace salvo::queue {

namespace {

namespace fs = std::filesystem;
using Code = Status::Code;

enum Cf : std::size_t {
  kDefaultCf,
  kCampaignsCf,
  kNamesCf,
  kJobsCf,
  kDueCf,
  kLeasesCf,
  kCountersCf,
  kMetaCf,
  kSuppressionCf,
  kCfCount,
};
constexpr std::array<const char*, kCfCount> kCfNames = {
    "default", "campaigns", "names", "jobs", "due", "leases", "counters", "meta", "suppression",
};

constexpr std::string_view kNextCampaignKey = "next_campaign";

rocksdb::Slice slice(std::string_view v) {
  return {v.data(), v.size()};
}
template <std::size_t N>
rocksdb::Slice slice(const keys::Key<N>& k) {
  return {k.data(), N};
}
std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string stateText(const rocksdb::Status& s) {
  const char* state = s.getState();
  return state != nullptr ? std::string(state) : s.ToString();
}

Status runtimeError(const std::string& dir, const rocksdb::Status& s) {
  std::string text = stateText(s);
  if (s.IsCorruption()) {
    return Status::error(Code::Corruption, fmt::format("{}: corrupt: {}", dir, text));
  }
  if (contains(text, "Permission denied")) {
    return Status::error(Code::IoError, fmt::format("{}: permission denied ({})", dir, text));
  }
  if (s.IsBusy() || s.IsTryAgain()) {
    return Status::error(Code::Busy, fmt::format("{}: busy: {}", dir, text));
  }
  if (s.IsInvalidArgument()) {
    return Status::error(Code::InvalidArgument, fmt::format("{}: {}", dir, text));
  }
  return Status::error(Code::IoError, fmt::format("{}: {}", dir, s.ToString()));
}

Status openError(const std::string& dir, const rocksdb::Status& s) {
  std::string text = stateText(s);
  // RocksDB locks <dir>/LOCK with fcntl; a second opener gets EAGAIN (another process) or
  // its own "lock hold by current process" message (ENOLCK) within one process.
  if (contains(text, "lock hold by current process")) {
    return Status::error(Code::Busy, fmt::format("{}: already open in this process", dir));
  }
  if (contains(text, "LOCK") && (contains(text, "Resource temporarily unavailable") ||
                                 contains(text, "No locks available"))) {
    return Status::error(Code::Busy, fmt::format("{}: in use by another salvo process", dir));
  }
  // CURRENT names the live MANIFEST; a name without a file is a damaged store, not an
  // I/O failure.
  if (s.IsPathNotFound() && contains(text, "MANIFEST")) {
    return Status::error(
        Code::Corruption,
        fmt::format("{}: corrupt: CURRENT names a missing MANIFEST ({})", dir, text));
  }
  return runtimeError(dir, s);
}

Status readOnlyError() {
  return Status::error(Code::InvalidArgument, "read-only store");
}

Status fsError(const std::string& dir, const std::string& what, const std::error_code& ec) {
  if (ec == std::errc::permission_denied) {
    return Status::error(Code::IoError,
                         fmt::format("{}: permission denied ({}: {})", dir, what, ec.message()));
  }
  return Status::error(Code::IoError, fmt::format("{}: {}: {}", dir, what, ec.message()));
}

rocksdb::CompressionType pickCompression() {
  auto supported = rocksdb::GetSupportedCompressions();
  for (auto c : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) {
      return c;
    }
  }
  return rocksdb::kNoCompression;
}

// RocksDB's own info log writer aborts on an assertion (kept in Debian's build) when it
// writes again after a failed write, as on a full disk, turning "No space left on device"
// into a crash. This one drops what it cannot write. <dir>/LOG is moved to LOG.old at
// open once it passes 8 MiB.
// Directories this process holds open read-write (canonical paths). A read-only store
// asks whether a daemon holds its directory before trusting the in-flight snapshot.
std::mutex gWritersMutex;
std::set<std::string> gWriters;

std::string canonicalDir(const std::string& dir) {
  std::error_code ec;
  auto p = fs::weakly_canonical(dir, ec);
  return ec ? dir : p.string();
}

// Is <dir>/LOCK held by a read-write opener (this process or another)? Checked in this
// process's registry first: opening and closing LOCK here would drop this process's own
// fcntl lock on it.
bool writerHolds(const std::string& dir) {
  {
    std::lock_guard lock(gWritersMutex);
    if (gWriters.count(canonicalDir(dir)) != 0) {
      return true;
    }
  }
  int fd = ::open((fs::path(dir) / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  bool held = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

class InfoLog : public rocksdb::Logger {
 public:
  explicit InfoLog(const std::string& path) : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {
    std::error_code ec;
    if (fs::file_size(path, ec) > (8u << 20) && !ec) {
      fs::rename(path, path + ".old", ec);
    }
    file_ = std::fopen(path.c_str(), "a");
  }
  ~InfoLog() override {
    if (file_ != nullptr) {
      std::fclose(file_);
    }
  }
  InfoLog(const InfoLog&) = delete;
  InfoLog& operator=(const InfoLog&) = delete;
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    std::lock_guard lock(mutex_);
    if (file_ == nullptr) {
      return;
    }
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    char stamp[32];
    if (localtime_r(&now, &tm) != nullptr &&
        std::strftime(stamp, sizeof stamp, "%Y/%m/%d-%H:%M:%S ", &tm) > 0) {
      std::fputs(stamp, file_);
    }
    std::vfprintf(file_, format, ap);
    std::fputc('\n', file_);
    std::fflush(file_);
  }

 private:
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
};

struct Tuning {
  rocksdb::DBOptions db;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
};

// Options for a queue: writes are small batches, reads are point lookups of jobs (bloom
// filter) and short scans of the due index, whose entries die quickly (files rich in
// tombstones are compacted early). Level compaction throughout.
Tuning makeTuning(const OpenOptions& options) {
  Tuning t;
  t.db.create_if_missing = options.createIfMissing && !options.readOnly;
  t.db.create_missing_column_families = !options.readOnly;
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  t.db.IncreaseParallelism(std::clamp(cores, 2, 8));
  t.db.max_open_files = -1;  // required by secondary instances; keeps table readers open
  t.db.max_total_wal_size = 256u << 20;
  t.db.db_write_buffer_size = 256u << 20;
  t.db.keep_log_file_num = 4;
  t.db.max_log_file_size = 16u << 20;

  auto cache = rocksdb::NewLRUCache(64u << 20);
  auto compression = pickCompression();
  auto family = [&](bool bloom, std::size_t writeBuffer) {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.cache_index_and_filter_blocks = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    if (bloom) {
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    }
    rocksdb::ColumnFamilyOptions cf;
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf.compaction_style = rocksdb::kCompactionStyleLevel;
    cf.level_compaction_dynamic_level_bytes = true;
    cf.compression = compression;
    cf.write_buffer_size = writeBuffer;
    return cf;
  };
  // The due index and the leases are queues: nearly every entry is deleted soon after it
  // is written. Files rich in tombstones are compacted early.
  auto tombstoneHeavy = [&](std::size_t writeBuffer) {
    auto cf = family(false, writeBuffer);
    cf.table_properties_collector_factories.push_back(
        newDeletionTriggerFactory(32 * 1024, 16 * 1024, 0.5));
    return cf;
  };

  std::array<rocksdb::ColumnFamilyOptions, kCfCount> cfs;
  cfs[kDefaultCf] = family(false, 4u << 20);
  cfs[kCampaignsCf] = family(false, 4u << 20);
  cfs[kNamesCf] = family(false, 4u << 20);
  cfs[kJobsCf] = family(true, 64u << 20);
  {
    // Every job lookup is a point lookup of a key that exists. Its filter and index
    // blocks live with the table readers (about 1.3 bytes of filter per job), not in the
    // block cache: there they were evicted by data blocks once the store held a few
    // million jobs, and each takeDue() re-read them from the files, so the scan slowed as
    // deliveries accumulated. Filters of the last level are not built at all (a lookup
    // that reaches it finds its key).
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.cache_index_and_filter_blocks = false;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    cfs[kJobsCf].table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cfs[kJobsCf].optimize_filters_for_hits = true;
  }
  // A skip-list memtable, not a hash one: nothing iterates the jobs (a hash memtable
  // made take+commit 1.6 times faster), but its flushes sort on a background thread and
  // the prefix extractor it needs slowed the table lookups: the due scan after a million
  // deliveries went from 2.5 to 7.6 ms per 1,000 jobs (docs/performance.md).
  cfs[kJobsCf].memtable_prefix_bloom_size_ratio = 0.02;
  cfs[kJobsCf].memtable_whole_key_filtering = true;
  cfs[kDueCf] = tombstoneHeavy(32u << 20);
  cfs[kLeasesCf] = tombstoneHeavy(8u << 20);
  cfs[kCountersCf] = family(true, 8u << 20);
  cfs[kCountersCf].merge_operator = newCounterMergeOperator();
  // Hot counters collect many operands in the memtable; fold them as they arrive.
  cfs[kCountersCf].max_successive_merges = 64;
  cfs[kMetaCf] = family(false, 4u << 20);
  cfs[kSuppressionCf] = family(true, 4u << 20);
  for (std::size_t i = 0; i < kCfCount; ++i) {
    t.cfs.emplace_back(kCfNames[i], cfs[i]);
  }
  return t;
}

// Per-campaign counter deltas of one write batch, folded so that a batch adds one merge
// operand per (campaign, kind) instead of one per job.
struct CampaignDeltas {
  std::uint32_t campaign = 0;
  std::array<std::int64_t, keys::kCounterKinds> delta{};
};

std::array<std::int64_t, keys::kCounterKinds>& deltasFor(std::vector<CampaignDeltas>& all,
                                                         std::uint32_t campaign) {
  for (auto& d : all) {
    if (d.campaign == campaign) {
      return d.delta;
    }
  }
  all.push_back(CampaignDeltas{campaign, {}});
  return all.back().delta;
}

void addDelta(std::array<std::int64_t, keys::kCounterKinds>& d, keys::CounterKind kind,
              std::int64_t delta) {
  d[static_cast<std::size_t>(kind)] += delta;
}

void putDeltas(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* counters,
               const std::vector<CampaignDeltas>& all) {
  for (const auto& d : all) {
    for (std::size_t k = 0; k < keys::kCounterKinds; ++k) {
      if (d.delta[k] == 0) {
        continue;
      }
      auto key = keys::counterKey(d.campaign, static_cast<keys::CounterKind>(k));
      auto value = keys::encodeDelta(d.delta[k]);
      batch.Merge(counters, slice(key), rocksdb::Slice(value.data(), value.size()));
    }
  }
}

std::int64_t* counterField(Counts& c, keys::CounterKind kind) {
  switch (kind) {
    case keys::CounterKind::Queued:
      return &c.queued;
    case keys::CounterKind::Deferred:
      return &c.deferred;
    case keys::CounterKind::Delivered:
      return &c.delivered;
    case keys::CounterKind::Bounced:
      return &c.bounced;
    case keys::CounterKind::Expired:
      return &c.expired;
    case keys::CounterKind::Cancelled:
      return &c.cancelled;
    case keys::CounterKind::Attempts:
      return &c.attempts;
    case keys::CounterKind::Deferrals:
      return &c.deferrals;
    case keys::CounterKind::Suppressed:
      return &c.suppressed;
  }
  return nullptr;
}

// Moves `it` past the entries of e's campaign at e's due time. Entries of one campaign at
// one due time are contiguous, and a submit batch shares one due time, so a campaign that
// is not Active costs one seek per distinct due time rather than one step per job.
// Returns false when nothing can follow.
bool skipCampaignAtTime(rocksdb::Iterator& it, const keys::DueEntry& e) {
  if (e.id.campaign < UINT32_MAX) {
    auto next = keys::dueKey(e.dueMs, JobId{e.id.campaign + 1, 0});
    it.Seek(slice(next));
    return true;
  }
  if (e.dueMs == INT64_MAX) {
    return false;
  }
  auto next = keys::timePrefix(e.dueMs + 1);
  it.Seek(slice(next));
  return true;
}

void closeRaw(rocksdb::DB*& db, std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
  if (db != nullptr) {
    for (auto* h : handles) {
      db->DestroyColumnFamilyHandle(h);
    }
    delete db;
  }
  db = nullptr;
  handles.clear();
}

// meta "in_flight": the daemon's leases per campaign, for read-only stores (`salvo
// status` beside a running daemon), which cannot see its memory: u32 campaign | u64 count
// pairs, rewritten (not synced) whenever the leases change in takeDue/commitOutcomes.
constexpr std::string_view kInFlightKey = "in_flight";
// meta "finished/" u32 campaign -> u64 ms when a sweep first saw it finished | u8 purged.
constexpr std::string_view kFinishedPrefix = "finished/";

struct JobIdHash {
  std::size_t operator()(const JobId& id) const noexcept {
    return std::hash<std::uint64_t>()((id.seq * 0x9E3779B97F4A7C15ULL) ^ id.campaign);
  }
};

}  // namespace

struct JobStore::Impl {
  Impl(std::string dirIn, bool readOnlyIn, std::string secondaryIn, rocksdb::DB* dbIn,
       const std::vector<rocksdb::ColumnFamilyHandle*>& handles)
      : dir(std::move(dirIn)),
        readOnly(readOnlyIn),
        secondaryDir(std::move(secondaryIn)),
        db(dbIn) {
    for (std::size_t i = 0; i < kCfCount; ++i) {
      cf[i] = handles[i];
    }
    synced.sync = true;
  }

  ~Impl() {
    if (!readOnly) {
      std::lock_guard lock(gWritersMutex);
      gWriters.erase(canonicalDir(dir));
    }
    for (auto* h : cf) {
      db->DestroyColumnFamilyHandle(h);
    }
    db->Close().PermitUncheckedError();
    delete db;
    if (!secondaryDir.empty()) {
      std::error_code ec;
      fs::remove_all(secondaryDir, ec);
    }
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Status error(const rocksdb::Status& s) const { return runtimeError(dir, s); }

  // --- campaign states ---
  // The state of each campaign is cached for the due scans. Every method that changes a
  // state calls forgetState() after its write; the generation check keeps a lookup that
  // raced with such a change from caching what it read before the change.
  std::optional<CampaignState> campaignState(std::uint32_t campaign) {
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(stateMutex);
      auto it = states.find(campaign);
      if (it != states.end()) {
        return it->second;
      }
      generation = stateGeneration;
    }
    std::optional<CampaignState> state;
    std::string value;
    auto key = keys::campaignKey(campaign);
    auto s = db->Get(rocksdb::ReadOptions(), cf[kCampaignsCf], slice(key), &value);
    if (s.ok()) {
      if (auto record = CampaignRecord::decode(value)) {
        state = record->state;
      }
    } else if (!s.IsNotFound()) {
      return std::nullopt;  // a read error: treat as not active this time, do not cache
    }
    std::lock_guard lock(stateMutex);
    if (stateGeneration == generation) {
      states.emplace(campaign, state);
    }
    return state;
  }

  void forgetState(std::uint32_t campaign) {
    std::lock_guard lock(stateMutex);
    ++stateGeneration;
    states.erase(campaign);
  }

  void forgetAllStates() {
    std::lock_guard lock(stateMutex);
    ++stateGeneration;
    states.clear();
  }

  // `seen` memoises lookups within one scan, so the shared cache is locked once per
  // campaign per scan rather than once per entry.
  bool isActive(std::uint32_t campaign, std::vector<std::pair<std::uint32_t, bool>>& seen) {
    for (const auto& [c, active] : seen) {
      if (c == campaign) {
        return active;
      }
    }
    bool active = isActive(campaign);
    seen.emplace_back(campaign, active);
    return active;
  }

  bool isActive(std::uint32_t campaign) {
    auto state = campaignState(campaign);
    return state && *state == CampaignState::Active;
  }

  bool isCancelled(std::uint32_t campaign, std::vector<std::pair<std::uint32_t, bool>>& seen) {
    for (const auto& [c, cancelled] : seen) {
      if (c == campaign) {
        return cancelled;
      }
    }
    bool cancelled = campaignState(campaign) == CampaignState::Cancelled;
    seen.emplace_back(campaign, cancelled);
    return cancelled;
  }

  Status readCampaign(std::uint32_t campaign, CampaignRecord& out) {
    std::string value;
    auto key = keys::campaignKey(campaign);
    auto s = db->Get(rocksdb::ReadOptions(), cf[kCampaignsCf], slice(key), &value);
    if (s.IsNotFound()) {
      return Status::error(Code::NotFound, fmt::format("campaign {} not found", campaign));
    }
    if (!s.ok()) {
      return error(s);
    }
    auto record = CampaignRecord::decode(value);
    if (!record) {
      return Status::error(
          Code::Corruption,
          fmt::format("{}: corrupt: campaign {} record is undecodable", dir, campaign));
    }
    out = std::move(*record);
    return Status::ok();
  }

  // Visits every due entry of `campaign` (visit(key, entry) -> Status; a failure stops
  // the walk). The due index is ordered by time first: skip-scan it, seeking to
  // (t, campaign) for each due time t present.
  template <typename Visit>
  Status forEachDue(std::uint32_t campaign, Visit visit) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf[kDueCf]));
    auto first = keys::dueKey(INT64_MIN, JobId{campaign, 0});
    it->Seek(slice(first));
    while (it->Valid()) {
      auto e = keys::decodeDueKey(view(it->key()));
      if (!e) {
        it->Next();
        continue;
      }
      if (e->id.campaign == campaign) {
        if (auto st = visit(it->key(), *e); !st.isOk()) {
          return st;
        }
        it->Next();
      } else if (e->id.campaign < campaign) {
        auto next = keys::dueKey(e->dueMs, JobId{campaign, 0});
        it->Seek(slice(next));
      } else {
        if (e->dueMs == INT64_MAX) {
          break;
        }
        auto next = keys::dueKey(e->dueMs + 1, JobId{campaign, 0});
        it->Seek(slice(next));
      }
    }
    return it->status().ok() ? Status::ok() : error(it->status());
  }

  Status campaignNumber(const std::string& name, std::uint32_t& number) {
    std::string value;
    auto s = db->Get(rocksdb::ReadOptions(), cf[kNamesCf], slice(name), &value);
    if (s.IsNotFound()) {
      return Status::error(Code::NotFound, fmt::format("no campaign '{}'", name));
    }
    if (!s.ok()) {
      return error(s);
    }
    if (value.size() != 4) {
      return Status::error(
          Code::Corruption,
          fmt::format("{}: corrupt: name '{}' maps to {} bytes, not 4", dir, name, value.size()));
    }
    number = keys::getU32(value.data());
    return Status::ok();
  }

  // Moves the campaign to `target` (synced) from `from` (or, for Cancelled, from Active or
  // Paused); already at `target` is a no-op. Caller holds campaignMutex.
  Status changeState(const std::string& name, CampaignState target, CampaignState from,
                     CampaignRecord& record) {
    std::uint32_t number = 0;
    if (auto st = campaignNumber(name, number); !st.isOk()) {
      return st;
    }
    if (auto st = readCampaign(number, record); !st.isOk()) {
      return st;
    }
    if (record.state == target) {
      return Status::ok();
    }
    if (record.state != from &&
        !(target == CampaignState::Cancelled &&
          (record.state == CampaignState::Active || record.state == CampaignState::Paused))) {
      return Status::error(Code::InvalidArgument, fmt::format("campaign '{}' is {}", name,
                                                              campaignStateName(record.state)));
    }
    record.state = target;
    std::string encoded;
    record.encodeTo(encoded);
    auto key = keys::campaignKey(number);
    auto s = db->Put(synced, cf[kCampaignsCf], slice(key), encoded);
    forgetState(number);
    return s.ok() ? Status::ok() : error(s);
  }

  // Cancels every waiting job of `campaign` that is not in flight (it leaves the due
  // index, counted in `cancelled`), in unsynced chunks; the caller syncs. Caller holds
  // takeMutex and commitMutex, so no scan leases what this deletes.
  Status cancelWaiting(std::uint32_t campaign, std::uint64_t& cancelled) {
    constexpr std::size_t kChunk = 10'000;
    std::vector<std::string> dueKeys;
    std::vector<keys::JobKey> jobKeys;
    auto flush = [&]() -> Status {
      if (dueKeys.empty()) {
        return Status::ok();
      }
      std::vector<rocksdb::Slice> slices;
      for (const auto& k : jobKeys) {
        slices.push_back(slice(k));
      }
      std::vector<rocksdb::PinnableSlice> values(slices.size());
      std::vector<rocksdb::Status> statuses(slices.size());
      db->MultiGet(rocksdb::ReadOptions(), cf[kJobsCf], slices.size(), slices.data(), values.data(),
                   statuses.data());
      rocksdb::WriteBatch batch;
      std::vector<CampaignDeltas> deltas;
      JobRecord job;
      for (std::size_t i = 0; i < slices.size(); ++i) {
        if (!statuses[i].ok() && !statuses[i].IsNotFound()) {
          return error(statuses[i]);
        }
        batch.SingleDelete(cf[kDueCf], dueKeys[i]);
        if (statuses[i].ok() && JobRecord::decode(view(values[i]), job) && !isTerminal(job.state)) {
          cancelJob(batch, slices[i], job, deltas, campaign);
          ++cancelled;
        }
      }
      putDeltas(batch, cf[kCountersCf], deltas);
      dueKeys.clear();
      jobKeys.clear();
      auto s = db->Write(async, &batch);
      return s.ok() ? Status::ok() : error(s);
    };
    auto st = forEachDue(campaign, [&](const rocksdb::Slice& key, const keys::DueEntry& e) {
      if (isLeased(e.id)) {
        return Status::ok();  // in flight: cancelled when its outcome commits
      }
      dueKeys.emplace_back(view(key));
      jobKeys.push_back(keys::jobKey(e.id));
      return dueKeys.size() == kChunk ? flush() : Status::ok();
    });
    if (st.isOk()) {
      st = flush();
    }
    return st;
  }

  // The campaign's counters (inFlight left 0). campaign <= keys::kMaxCampaign.
  Counts countersOf(std::uint32_t campaign) {
    Counts out;
    auto begin = keys::campaignKey(campaign);
    auto end = keys::campaignKey(campaign + 1);
    rocksdb::Slice endSlice = slice(end);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &endSlice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf[kCountersCf]));
    for (it->Seek(slice(begin)); it->Valid(); it->Next()) {
      auto key = keys::decodeCounterKey(view(it->key()));
      auto value = keys::decodeDelta(view(it->value()));
      if (key && value) {
        *counterField(out, key->kind) = *value;
      }
    }
    return out;
  }

  // Marks a job Cancelled in `batch`, moving its count from its waiting state.
  void cancelJob(rocksdb::WriteBatch& batch, const rocksdb::Slice& jobKey, JobRecord& record,
                 std::vector<CampaignDeltas>& deltas, std::uint32_t campaign) {
    auto& d = deltasFor(deltas, campaign);
    addDelta(d, keys::counterFor(record.state), -1);
    addDelta(d, keys::CounterKind::Cancelled, 1);
    record.state = JobState::Cancelled;
    std::string encoded;
    record.encodeTo(encoded);
    batch.Put(cf[kJobsCf], jobKey, encoded);
  }

  // Caller holds campaignMutex.
  Status abort(std::uint32_t campaign) {
    CampaignRecord record;
    if (auto st = readCampaign(campaign, record); !st.isOk()) {
      return st;
    }
    rocksdb::WriteBatch batch;
    // Campaign numbers stop below UINT32_MAX, so campaign + 1 bounds the prefix.
    auto begin = keys::campaignKey(campaign);
    auto end = keys::campaignKey(campaign + 1);
    for (auto family : {kJobsCf, kLeasesCf, kCountersCf}) {
      batch.DeleteRange(cf[family], slice(begin), slice(end));
    }
    auto st = forEachDue(campaign, [&](const rocksdb::Slice& key, const keys::DueEntry&) {
      batch.SingleDelete(cf[kDueCf], key);
      return Status::ok();
    });
    if (!st.isOk()) {
      return st;
    }
    std::string owner;
    auto s = db->Get(rocksdb::ReadOptions(), cf[kNamesCf], slice(record.name), &owner);
    if (s.ok() && owner.size() == 4 && keys::getU32(owner.data()) == campaign) {
      batch.Delete(cf[kNamesCf], slice(record.name));
    } else if (!s.ok() && !s.IsNotFound()) {
      return error(s);
    }
    batch.Delete(cf[kCampaignsCf], slice(begin));
    s = db->Write(synced, &batch);
    {
      std::lock_guard lock(leaseMutex);
      std::erase_if(leases, [&](const auto& l) { return l.first.campaign == campaign; });
      leasesPerCampaign.erase(campaign);
    }
    forgetState(campaign);
    return s.ok() ? Status::ok() : error(s);
  }

  // Recovery after open: every lease goes back to the due index at its job's dueMs (the
  // time it was due when leased, so it keeps its place), in one synced batch; then every
  // campaign still Loading (a submit that never finished) is purged.
  Status recover() {
    std::vector<keys::JobKey> leased;
    rocksdb::WriteBatch batch;
    std::vector<CampaignDeltas> cancelDeltas;
    std::uint64_t dropped = 0;
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf[kLeasesCf]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        auto id = keys::decodeJobKey(view(it->key()));
        if (!id) {
          batch.Delete(cf[kLeasesCf], it->key());
          ++dropped;
          continue;
        }
        leased.push_back(keys::jobKey(*id));
      }
      if (!it->status().ok()) {
        return error(it->status());
      }
    }
    if (!leased.empty()) {
      std::vector<rocksdb::Slice> slices;
      slices.reserve(leased.size());
      for (const auto& k : leased) {
        slices.push_back(slice(k));
      }
      std::vector<rocksdb::PinnableSlice> values(leased.size());
      std::vector<rocksdb::Status> statuses(leased.size());
      db->MultiGet(rocksdb::ReadOptions(), cf[kJobsCf], leased.size(), slices.data(), values.data(),
                   statuses.data());
      JobRecord record;
      for (std::size_t i = 0; i < leased.size(); ++i) {
        if (!statuses[i].ok() && !statuses[i].IsNotFound()) {
          return error(statuses[i]);
        }
        batch.Delete(cf[kLeasesCf], slices[i]);
        if (statuses[i].ok() && JobRecord::decode(view(values[i]), record) &&
            !isTerminal(record.state)) {
          auto id = keys::decodeJobKey(view(slices[i]));
          if (campaignState(id->campaign) == CampaignState::Cancelled) {
            // Cancelled while this job was in flight, and its outcome never committed.
            cancelJob(batch, slices[i], record, cancelDeltas, id->campaign);
            continue;
          }
          auto due = keys::dueKey(record.dueMs, *id);
          batch.Put(cf[kDueCf], slice(due), rocksdb::Slice());
        } else {
          ++dropped;
        }
      }
    }
    putDeltas(batch, cf[kCountersCf], cancelDeltas);
    batch.Delete(cf[kMetaCf], slice(kInFlightKey));  // nothing is in flight after a restart
    if (batch.Count() > 0) {
      auto s = db->Write(synced, &batch);
      if (!s.ok()) {
        return error(s);
      }
    }
    dangling += dropped;

    std::vector<std::uint32_t> loading;
    std::vector<std::uint32_t> cancelled;
    {
      std::unique_ptr<rocksdb::Iterator> it(
          db->NewIterator(rocksdb::ReadOptions(), cf[kCampaignsCf]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        auto record = CampaignRecord::decode(view(it->value()));
        auto number = keys::decodeCampaignKey(view(it->key()));
        if (record && number && record->state == CampaignState::Loading) {
          loading.push_back(*number);
        }
        if (record && number && record->state == CampaignState::Cancelled) {
          cancelled.push_back(*number);
        }
      }
      if (!it->status().ok()) {
        return error(it->status());
      }
    }
    std::lock_guard lock(campaignMutex);
    for (auto campaign : loading) {
      if (auto st = abort(campaign); !st.isOk()) {
        return st;
      }
    }
    // Jobs that were in flight when their campaign was cancelled, whose outcome never
    // committed, are still waiting (their campaign's counters say so): cancel them now.
    std::uint64_t late = 0;
    for (auto campaign : cancelled) {
      if (countersOf(campaign).waiting() > 0) {
        std::scoped_lock barrier(takeMutex, commitMutex);
        if (auto st = cancelWaiting(campaign, late); !st.isOk()) {
          return st;
        }
      }
    }
    if (late > 0) {
      auto s = db->SyncWAL();
      if (!s.ok()) {
        return error(s);
      }
    }
    return Status::ok();
  }

  std::string dir;
  bool readOnly = false;
  std::string secondaryDir;  // a read-only store's private directory (info log), removed
  rocksdb::DB* db = nullptr;
  std::array<rocksdb::ColumnFamilyHandle*, kCfCount> cf{};
  rocksdb::WriteOptions async;  // WAL on, not synced
  rocksdb::WriteOptions synced;

  std::atomic<std::uint64_t> dangling{0};

  // Serialises read-modify-writes of campaign records and names (submit is rare).
  std::mutex campaignMutex;

  std::mutex stateMutex;
  std::uint64_t stateGeneration = 0;
  std::unordered_map<std::uint32_t, std::optional<CampaignState>> states;

  // --- where the due scans start ---
  // A queue on RocksDB must not scan from the head of its index every time: the head is
  // a graveyard of tombstones of jobs already taken, until compaction drops them. The
  // scans start at min(resume, timePrefix(floorMs)); invariant: every live due key that
  // no successful scan has examined, and every entry a scan skipped, is at or after it.
  //   resume:  where the last successful takeDue() stopped, never past an entry it
  //            skipped ("": the head). Guarded by takeMutex.
  //   floorMs: the lowest due time written since the last scan began (INT64_MAX: none).
  //            Writers of due keys lower it before their write (so nextDueMs() sees it
  //            at once) and after (so a scan that began in between cannot lose it).
  std::string resume;
  std::atomic<std::int64_t> floorMs{INT64_MAX};

  void lowerFloor(std::int64_t t) {
    auto current = floorMs.load();
    while (t < current && !floorMs.compare_exchange_weak(current, t)) {
    }
  }

  std::string scanStart(std::int64_t floor) const {
    auto prefix = keys::timePrefix(floor);
    if (std::string_view(resume) <= prefix.view()) {
      return resume;
    }
    return std::string(prefix.view());
  }

  // takeDue: one scan at a time (two concurrent scans would lease the same jobs); its
  // buffers are reused from call to call.
  std::mutex takeMutex;
  struct TakeScratch {
    std::vector<keys::DueEntry> entries;
    std::vector<std::string> garbage;
    std::vector<std::pair<std::uint32_t, bool>> seen;
    std::vector<keys::JobKey> jobKeys;
    std::vector<rocksdb::Slice> slices;
    std::vector<rocksdb::PinnableSlice> values;
    std::vector<rocksdb::Status> statuses;
    rocksdb::WriteBatch batch;
  } take;

  // --- leases: jobs handed out by takeDue() whose outcome has not committed ---
  // In memory only. A leased job keeps its due entry until its outcome commits (that
  // write removes or replaces it), so a crash loses no job: after a restart every job
  // that was in flight is simply due again. The scans skip leased entries, and a commit
  // releases its leases only between scans (under takeMutex). Lock order: commitMutex,
  // then takeMutex, then leaseMutex (cancel and recovery take the first two together).
  std::mutex leaseMutex;
  std::unordered_map<JobId, std::int64_t, JobIdHash> leases;  // -> due ms of its due entry
  std::unordered_map<std::uint32_t, std::int64_t> leasesPerCampaign;
  bool inFlightDirty = false;  // leases taken since the snapshot was last written

  bool isLeased(const JobId& id) {
    std::lock_guard lock(leaseMutex);
    return leases.count(id) != 0;
  }

  std::int64_t leasedIn(std::uint32_t campaign) {
    std::lock_guard lock(leaseMutex);
    auto it = leasesPerCampaign.find(campaign);
    return it == leasesPerCampaign.end() ? 0 : it->second;
  }

  // The due time of the job's due entry according to its stored record, when that entry
  // exists (a job not leased by this store); nullopt when it has none.
  Status dueOfStored(const keys::JobKey& jobKey, std::optional<std::int64_t>& due) {
    due.reset();
    std::string value;
    auto s = db->Get(rocksdb::ReadOptions(), cf[kJobsCf], slice(jobKey), &value);
    if (s.IsNotFound()) {
      return Status::ok();
    }
    if (!s.ok()) {
      return error(s);
    }
    JobRecord stored;
    auto id = keys::decodeJobKey(view(slice(jobKey)));
    if (!id || !JobRecord::decode(value, stored) || isTerminal(stored.state)) {
      return Status::ok();
    }
    auto dueKey = keys::dueKey(stored.dueMs, *id);
    s = db->Get(rocksdb::ReadOptions(), cf[kDueCf], slice(dueKey), &value);
    if (s.ok()) {
      due = stored.dueMs;
      return Status::ok();
    }
    return s.IsNotFound() ? Status::ok() : error(s);
  }

  // Forgets the leases of out[from...] (a takeDue that failed after leasing them).
  void releaseLeases(const std::vector<LeasedJob>& out, std::size_t from) {
    std::lock_guard lock(leaseMutex);
    for (std::size_t i = from; i < out.size(); ++i) {
      if (leases.erase(out[i].id) != 0 && --leasesPerCampaign[out[i].id.campaign] == 0) {
        leasesPerCampaign.erase(out[i].id.campaign);
      }
    }
  }

  // Adds the in-flight snapshot (leasesPerCampaign, less `releasing` per campaign) to
  // `batch`. Caller holds leaseMutex.
  void putInFlight(rocksdb::WriteBatch& batch,
                   const std::unordered_map<std::uint32_t, std::int64_t>& releasing) {
    std::string value;
    for (const auto& [campaign, n] : leasesPerCampaign) {
      auto r = releasing.find(campaign);
      auto count = n - (r == releasing.end() ? 0 : r->second);
      if (count > 0) {
        char buf[12];
        keys::putU32(buf, campaign);
        keys::putU64(buf + 4, static_cast<std::uint64_t>(count));
        value.append(buf, sizeof buf);
      }
    }
    batch.Put(cf[kMetaCf], slice(kInFlightKey), value);
    inFlightDirty = false;
  }

  std::mutex commitMutex;
  struct CommitScratch {
    rocksdb::WriteBatch batch;
    std::string record;
    std::vector<CampaignDeltas> deltas;
    std::vector<std::pair<std::uint32_t, bool>> cancelled;
    std::unordered_map<std::uint32_t, std::int64_t> releasing;
    std::vector<std::optional<std::int64_t>> leasedDue;
    std::vector<std::size_t> order;
  } commit;
};

JobStore::JobStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

JobStore::~JobStore() = default;

std::unique_ptr<JobStore> JobStore::open(const std::string& dir, const OpenOptions& options,
                                         Status& status) {
  status = Status::ok();
  if (dir.empty()) {
    status = Status::error(Code::InvalidArgument, "store directory is empty");
    return nullptr;
  }
  bool mustExist = options.readOnly || !options.createIfMissing;
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) {
    if (mustExist) {
      status = Status::error(Code::NotFound, fmt::format("{}: no such directory", dir));
      return nullptr;
    }
    fs::create_directories(dir, ec);
    if (ec) {
      status = fsError(dir, "cannot create the directory", ec);
      return nullptr;
    }
  } else if (ec) {
    status = fsError(dir, "cannot access the directory", ec);
    return nullptr;
  } else if (!fs::is_directory(st)) {
    status = Status::error(Code::InvalidArgument, fmt::format("{}: not a directory", dir));
    return nullptr;
  }
  if (mustExist) {
    auto current = fs::status(fs::path(dir) / "CURRENT", ec);
    if (current.type() == fs::file_type::not_found) {
      status = Status::error(Code::NotFound,
                             fmt::format("{}: no salvo store here (no CURRENT file)", dir));
      return nullptr;
    }
    if (ec) {
      status = fsError(dir, "cannot read CURRENT", ec);
      return nullptr;
    }
  }

  Tuning tuning = makeTuning(options);
  if (!options.readOnly) {
    tuning.db.info_log = std::make_shared<InfoLog>((fs::path(dir) / "LOG").string());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s;
  std::string secondary;
  if (options.readOnly) {
    // A secondary instance, not OpenForReadOnly: RocksDB documents a read-only instance
    // next to a live read-write one as undefined behaviour; a secondary is made for it.
    auto tmp = fs::temp_directory_path(ec);
    if (ec) {
      tmp = "/tmp";
    }
    std::string pattern = (tmp / "salvo-readonly-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      status = Status::error(
          Code::IoError,
          fmt::format("{}: cannot create a private directory for the read-only store: {}: {}", dir,
                      pattern, std::strerror(errno)));
      return nullptr;
    }
    secondary = pattern;
    // TryAgain: the primary switched to a new MANIFEST while we read the old one.
    for (int attempt = 0; attempt < 3; ++attempt) {
      s = rocksdb::DB::OpenAsSecondary(tuning.db, dir, secondary, tuning.cfs, &handles, &db);
      if (s.ok()) {
        s = db->TryCatchUpWithPrimary();
      }
      if (!s.IsTryAgain()) {
        break;
      }
      closeRaw(db, handles);
    }
  } else if (fs::exists(fs::path(dir) / "CURRENT", ec) || ec) {
    s = rocksdb::DB::Open(tuning.db, dir, tuning.cfs, &handles, &db);
  } else {
    // A new store: its families in one call, which writes RocksDB's OPTIONS file once
    // (opening with them all writes and re-reads it once per family). A crash in between
    // leaves a store whose missing families the next open creates.
    s = rocksdb::DB::Open(tuning.db, dir, {tuning.cfs[kDefaultCf]}, &handles, &db);
    if (s.ok()) {
      std::vector<rocksdb::ColumnFamilyHandle*> created;
      s = db->CreateColumnFamilies({tuning.cfs.begin() + 1, tuning.cfs.end()}, &created);
      handles.insert(handles.end(), created.begin(), created.end());
    }
  }
  if (!s.ok()) {
    closeRaw(db, handles);
    if (!secondary.empty()) {
      fs::remove_all(secondary, ec);
    }
    status = openError(dir, s);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>(dir, options.readOnly, secondary, db, handles);
  if (!options.readOnly) {
    {
      std::lock_guard lock(gWritersMutex);
      gWriters.insert(canonicalDir(dir));
    }
    status = impl->recover();
    if (!status.isOk()) {
      return nullptr;
    }
  }
  return std::unique_ptr<JobStore>(new JobStore(std::move(impl)));
}

Status JobStore::beginCampaign(const std::string& name, const std::string& spec, std::int64_t nowMs,
                               std::uint32_t& number) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  if (name.empty()) {
    return Status::error(Code::InvalidArgument, "campaign name is empty");
  }
  std::lock_guard lock(m.campaignMutex);
  std::string value;
  auto s = m.db->Get(rocksdb::ReadOptions(), m.cf[kNamesCf], slice(name), &value);
  if (s.ok()) {
    return Status::error(Code::AlreadyExists, fmt::format("campaign '{}' already exists", name));
  }
  if (!s.IsNotFound()) {
    return m.error(s);
  }
  std::uint32_t next = 1;
  s = m.db->Get(rocksdb::ReadOptions(), m.cf[kMetaCf], slice(kNextCampaignKey), &value);
  if (s.ok()) {
    if (value.size() != 4) {
      return Status::error(Code::Corruption,
                           fmt::format("{}: corrupt: meta '{}' holds {} bytes, not 4", m.dir,
                                       kNextCampaignKey, value.size()));
    }
    next = keys::getU32(value.data());
  } else if (!s.IsNotFound()) {
    return m.error(s);
  }
  if (next == 0 || next > keys::kMaxCampaign) {
    return Status::error(Code::InvalidArgument,
                         fmt::format("{}: campaign numbers exhausted (next is {})", m.dir, next));
  }
  CampaignRecord record;
  record.number = next;
  record.name = name;
  record.state = CampaignState::Loading;
  record.createdMs = nowMs;
  record.spec = spec;
  std::string encoded;
  record.encodeTo(encoded);
  auto key = keys::campaignKey(next);
  auto following = keys::campaignKey(next + 1);
  rocksdb::WriteBatch batch;
  batch.Put(m.cf[kCampaignsCf], slice(key), encoded);
  batch.Put(m.cf[kNamesCf], slice(name), slice(key));
  batch.Put(m.cf[kMetaCf], slice(kNextCampaignKey), slice(following));
  // Not synced: until finishCampaign() a crash only loses a campaign that restart would
  // purge anyway.
  s = m.db->Write(m.async, &batch);
  m.forgetState(next);
  if (!s.ok()) {
    return m.error(s);
  }
  number = next;
  return Status::ok();
}

Status JobStore::addJobs(std::uint32_t campaign, std::uint64_t firstSeq,
                         const std::vector<JobRecord>& jobs, std::int64_t dueMs) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  CampaignRecord record;
  if (auto st = m.readCampaign(campaign, record); !st.isOk()) {
    return st;
  }
  if (jobs.empty()) {
    return Status::ok();
  }
  if (jobs.size() - 1 > UINT64_MAX - firstSeq) {
    return Status::error(Code::InvalidArgument,
                         fmt::format("campaign {}: sequence numbers overflow", campaign));
  }
  m.lowerFloor(dueMs);
  rocksdb::WriteBatch batch(jobs.size() * 96);
  std::string encoded;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    JobId id{campaign, firstSeq + i};
    encoded.clear();
    jobs[i].encodeWith(encoded, JobState::Queued, dueMs, dueMs);
    auto jobKey = keys::jobKey(id);
    auto dueKey = keys::dueKey(dueMs, id);
    batch.Put(m.cf[kJobsCf], slice(jobKey), encoded);
    batch.Put(m.cf[kDueCf], slice(dueKey), rocksdb::Slice());
  }
  std::vector<CampaignDeltas> deltas;
  addDelta(deltasFor(deltas, campaign), keys::CounterKind::Queued,
           static_cast<std::int64_t>(jobs.size()));
  putDeltas(batch, m.cf[kCountersCf], deltas);
  auto s = m.db->Write(m.async, &batch);
  m.lowerFloor(dueMs);
  return s.ok() ? Status::ok() : m.error(s);
}

Status JobStore::finishCampaign(std::uint32_t campaign, std::uint64_t jobCount,
                                std::uint64_t suppressed) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard lock(m.campaignMutex);
  CampaignRecord record;
  if (auto st = m.readCampaign(campaign, record); !st.isOk()) {
    return st;
  }
  if (record.state != CampaignState::Loading) {
    return Status::error(
        Code::InvalidArgument,
        fmt::format("campaign {} is {}, not loading", campaign, campaignStateName(record.state)));
  }
  record.state = CampaignState::Active;
  record.jobs = jobCount;
  std::string encoded;
  record.encodeTo(encoded);
  auto key = keys::campaignKey(campaign);
  rocksdb::WriteBatch batch;
  batch.Put(m.cf[kCampaignsCf], slice(key), encoded);
  if (suppressed > 0) {
    std::vector<CampaignDeltas> deltas;
    addDelta(deltasFor(deltas, campaign), keys::CounterKind::Suppressed,
             static_cast<std::int64_t>(suppressed));
    putDeltas(batch, m.cf[kCountersCf], deltas);
  }
  // Synced: this write also makes every earlier (unsynced) addJobs batch durable.
  auto s = m.db->Write(m.synced, &batch);
  m.forgetState(campaign);
  return s.ok() ? Status::ok() : m.error(s);
}

Status JobStore::abortCampaign(std::uint32_t campaign) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard lock(m.campaignMutex);
  return m.abort(campaign);
}

Status JobStore::pauseCampaign(const std::string& name) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard lock(m.campaignMutex);
  CampaignRecord record;
  return m.changeState(name, CampaignState::Paused, CampaignState::Active, record);
}

Status JobStore::resumeCampaign(const std::string& name) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard lock(m.campaignMutex);
  CampaignRecord record;
  auto st = m.changeState(name, CampaignState::Active, CampaignState::Paused, record);
  if (st.isOk()) {
    // Its due entries may lie behind the scan's resume point: rescan from the head.
    m.lowerFloor(INT64_MIN);
  }
  return st;
}

Status JobStore::cancelCampaign(const std::string& name, std::uint64_t& cancelled) {
  auto& m = *impl_;
  cancelled = 0;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard lock(m.campaignMutex);
  CampaignRecord record;
  if (auto st = m.changeState(name, CampaignState::Cancelled, CampaignState::Active, record);
      !st.isOk()) {
    return st;
  }
  // Barriers: a scan or a commit that read the old state has finished once we hold these
  // mutexes; every later one sees Cancelled. Holding them for the walk also keeps takeDue
  // from leasing (and SingleDeleting) an entry this walk deletes.
  std::scoped_lock barrier(m.takeMutex, m.commitMutex);
  if (auto st = m.cancelWaiting(record.number, cancelled); !st.isOk()) {
    return st;
  }
  // One synced write makes every chunk durable.
  auto s = m.db->SyncWAL();
  return s.ok() ? Status::ok() : m.error(s);
}

Status JobStore::purgeCampaign(const std::string& name, bool compactNow) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard lock(m.campaignMutex);
  std::uint32_t number = 0;
  if (auto st = m.campaignNumber(name, number); !st.isOk()) {
    return st;
  }
  CampaignRecord record;
  if (auto st = m.readCampaign(number, record); !st.isOk()) {
    return st;
  }
  auto n = counts(number);
  if (record.state == CampaignState::Loading || n.waiting() > 0 || n.inFlight > 0) {
    return Status::error(Code::InvalidArgument,
                         fmt::format("campaign '{}' is not finished ({} waiting, {} in flight); "
                                     "cancel it first or let it finish",
                                     name, n.waiting(), n.inFlight));
  }
  rocksdb::WriteBatch batch;
  auto begin = keys::campaignKey(number);
  auto end = keys::campaignKey(number + 1);
  batch.DeleteRange(m.cf[kJobsCf], slice(begin), slice(end));
  auto s = m.db->Write(m.synced, &batch);
  if (!s.ok()) {
    return m.error(s);
  }
  if (!compactNow) {
    return Status::ok();
  }
  // Reclaim the space now rather than at some later compaction.
  rocksdb::Slice from = slice(begin);
  rocksdb::Slice to = slice(end);
  s = m.db->CompactRange(rocksdb::CompactRangeOptions(), m.cf[kJobsCf], &from, &to);
  return s.ok() ? Status::ok() : m.error(s);
}

Status JobStore::takeDue(std::int64_t nowMs, std::size_t max, std::vector<LeasedJob>& out) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  if (max == 0) {
    return Status::ok();
  }
  std::lock_guard lock(m.takeMutex);
  auto& t = m.take;
  t.entries.clear();
  t.garbage.clear();
  t.seen.clear();

  // Take the floor before creating the iterator: a write that lowers it afterwards is
  // either visible to this scan or leaves the floor lowered for the next one.
  std::int64_t floor = m.floorMs.exchange(INT64_MAX);
  std::string start = m.scanStart(floor);
  rocksdb::ReadOptions ro;
  keys::TimePrefix bound;
  rocksdb::Slice boundSlice;
  bool bounded = nowMs < INT64_MAX;
  if (bounded) {
    bound = keys::timePrefix(nowMs + 1);
    boundSlice = slice(bound);
    ro.iterate_upper_bound = &boundSlice;
  }
  std::string next;          // where the next scan may start, once this one is committed
  std::string firstSkipped;  // the first entry left behind (campaign not Active)
  {
    std::unique_ptr<rocksdb::Iterator> it(m.db->NewIterator(ro, m.cf[kDueCf]));
    it->Seek(slice(start));
    bool full = false;
    while (it->Valid()) {
      if (t.entries.size() >= max) {
        full = true;
        break;
      }
      auto e = keys::decodeDueKey(view(it->key()));
      if (!e) {
        t.garbage.emplace_back(view(it->key()));
        it->Next();
        continue;
      }
      if (m.isLeased(e->id)) {
        // In flight: its outcome's commit removes or replaces this entry (and lowers the
        // floor for a replacement behind the scan), so the scan may move past it.
        it->Next();
        continue;
      }
      if (!m.isActive(e->id.campaign, t.seen)) {
        if (firstSkipped.empty()) {
          firstSkipped.assign(view(it->key()));
        }
        if (!skipCampaignAtTime(*it, *e)) {
          break;
        }
        continue;
      }
      t.entries.push_back(*e);
      it->Next();
    }
    if (!it->status().ok()) {
      m.lowerFloor(floor);
      return m.error(it->status());
    }
    if (full) {
      next.assign(view(it->key()));
    } else if (bounded) {
      next = std::max(start, std::string(bound.view()));
    } else {
      next = start;
    }
    if (!firstSkipped.empty() && firstSkipped < next) {
      next = firstSkipped;
    }
  }

  std::size_t n = t.entries.size();
  std::size_t firstOut = out.size();
  if (n > 0 || !t.garbage.empty()) {
    t.jobKeys.resize(n);
    t.slices.resize(n);
    t.values.resize(n);
    t.statuses.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      t.jobKeys[i] = keys::jobKey(t.entries[i].id);
      t.slices[i] = slice(t.jobKeys[i]);
      t.values[i].Reset();
    }
    if (n > 0) {
      m.db->MultiGet(rocksdb::ReadOptions(), m.cf[kJobsCf], n, t.slices.data(), t.values.data(),
                     t.statuses.data());
    }
    auto unwind = [&](const rocksdb::Status& s) {
      out.resize(firstOut);
      for (auto& v : t.values) {
        v.Reset();
      }
      m.lowerFloor(floor);
      return m.error(s);
    };
    // Leasing writes nothing: only dangling entries (no job record, an undecodable or
    // terminal one, an undecodable key) are deleted, plus the in-flight snapshot.
    t.batch.Clear();
    std::uint64_t dropped = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto& st = t.statuses[i];
      if (!st.ok() && !st.IsNotFound()) {
        return unwind(st);
      }
      if (st.ok()) {
        auto& leased = out.emplace_back();
        leased.id = t.entries[i].id;
        if (JobRecord::decode(view(t.values[i]), leased.record) &&
            !isTerminal(leased.record.state)) {
          continue;
        }
        out.pop_back();
      }
      auto dueKey = keys::dueKey(t.entries[i].dueMs, t.entries[i].id);
      t.batch.SingleDelete(m.cf[kDueCf], slice(dueKey));
      ++dropped;
    }
    for (const auto& g : t.garbage) {
      t.batch.SingleDelete(m.cf[kDueCf], slice(g));
      ++dropped;
    }
    {
      std::lock_guard lock(m.leaseMutex);
      std::size_t e = 0;
      for (std::size_t i = firstOut; i < out.size(); ++i) {
        while (t.entries[e].id != out[i].id) {
          ++e;
        }
        m.leases.emplace(out[i].id, t.entries[e].dueMs);
        ++m.leasesPerCampaign[out[i].id.campaign];
      }
      if (out.size() > firstOut) {
        m.inFlightDirty = true;  // saveInFlight() (the writer thread) rewrites the snapshot
      }
    }
    if (t.batch.Count() > 0) {
      auto s = m.db->Write(m.async, &t.batch);
      if (!s.ok()) {
        m.releaseLeases(out, firstOut);
        return unwind(s);
      }
    }
    for (auto& v : t.values) {
      v.Reset();
    }
    m.dangling += dropped;
  }
  m.resume = std::move(next);
  return Status::ok();
}

Status JobStore::commitOutcomes(const std::vector<Outcome>& outcomes, bool sync) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  if (outcomes.empty()) {
    return Status::ok();
  }
  std::lock_guard lock(m.commitMutex);
  auto& c = m.commit;
  c.batch.Clear();
  c.deltas.clear();
  std::int64_t earliestDue = INT64_MAX;
  for (const auto& o : outcomes) {
    if (!isTerminal(o.record.state)) {
      earliestDue = std::min(earliestDue, o.record.dueMs);
    }
  }
  m.lowerFloor(earliestDue);
  c.cancelled.clear();
  c.releasing.clear();
  c.leasedDue.clear();
  {
    std::lock_guard lock(m.leaseMutex);
    for (const auto& o : outcomes) {
      auto it = m.leases.find(o.id);
      c.leasedDue.push_back(it == m.leases.end() ? std::nullopt
                                                 : std::optional<std::int64_t>(it->second));
      if (it != m.leases.end()) {
        ++c.releasing[o.id.campaign];
      }
    }
  }
  // Write in due-key order: the memtables' skip lists then insert each key next to the
  // previous one (a cheap splice) instead of searching from the top for every job
  // (outcomes arrive in completion order).
  c.order.resize(outcomes.size());
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    c.order[i] = i;
  }
  std::sort(c.order.begin(), c.order.end(), [&](std::size_t a, std::size_t b) {
    auto da = c.leasedDue[a].value_or(INT64_MAX);
    auto db = c.leasedDue[b].value_or(INT64_MAX);
    return da != db ? da < db : outcomes[a].id < outcomes[b].id;
  });
  for (std::size_t i : c.order) {
    const auto& o = outcomes[i];
    auto jobKey = keys::jobKey(o.id);
    auto oldDue = c.leasedDue[i];
    if (!oldDue) {
      // Not leased by this store (a caller committing a job it did not take): its due
      // entry, if it has one, is at the time its stored record names.
      if (auto st = m.dueOfStored(jobKey, oldDue); !st.isOk()) {
        return st;
      }
    }
    c.record.clear();
    JobState state = o.record.state;
    // A job of a campaign cancelled while it was in flight is not due again: it ends
    // Cancelled. (cancelCampaign() waits for this mutex after changing the state, so no
    // due entry written here can escape its scan.)
    if (!isTerminal(state) && m.isCancelled(o.id.campaign, c.cancelled)) {
      state = JobState::Cancelled;
      o.record.encodeWith(c.record, state, o.record.createdMs, o.record.dueMs);
    } else {
      o.record.encodeTo(c.record);
    }
    c.batch.Put(m.cf[kJobsCf], slice(jobKey), c.record);
    bool dueAgain = !isTerminal(state);
    if (oldDue && !(dueAgain && *oldDue == o.record.dueMs)) {
      auto dueKey = keys::dueKey(*oldDue, o.id);
      c.batch.SingleDelete(m.cf[kDueCf], slice(dueKey));
    }
    if (dueAgain && !(oldDue && *oldDue == o.record.dueMs)) {
      auto dueKey = keys::dueKey(o.record.dueMs, o.id);
      c.batch.Put(m.cf[kDueCf], slice(dueKey), rocksdb::Slice());
    }
    auto& d = deltasFor(c.deltas, o.id.campaign);
    if (o.previous != state) {
      addDelta(d, keys::counterFor(o.previous), -1);
      addDelta(d, keys::counterFor(state), 1);
    }
    if (!o.attempted) {
      continue;
    }
    addDelta(d, keys::CounterKind::Attempts, 1);
    if (state == JobState::Deferred) {
      addDelta(d, keys::CounterKind::Deferrals, 1);
    }
  }
  putDeltas(c.batch, m.cf[kCountersCf], c.deltas);
  {
    std::lock_guard lock(m.leaseMutex);
    m.putInFlight(c.batch, c.releasing);
  }
  auto s = m.db->Write(sync ? m.synced : m.async, &c.batch);
  if (!s.ok()) {
    return m.error(s);  // the jobs stay leased: in flight until a restart
  }
  {
    // Not while a scan runs: a scan whose iterator predates this write still sees the
    // old due entries and must still find them leased, or it would hand them out again.
    std::lock_guard take(m.takeMutex);
    std::lock_guard lock(m.leaseMutex);
    for (const auto& o : outcomes) {
      if (m.leases.erase(o.id) != 0 && --m.leasesPerCampaign[o.id.campaign] == 0) {
        m.leasesPerCampaign.erase(o.id.campaign);
      }
    }
  }
  // After the leases are gone: a scan that skipped a replacement entry while its job was
  // still leased restarts from it.
  m.lowerFloor(earliestDue);
  return Status::ok();
}

std::optional<std::int64_t> JobStore::nextDueMs() {
  auto& m = *impl_;
  std::lock_guard lock(m.takeMutex);
  std::vector<std::pair<std::uint32_t, bool>> seen;
  std::unique_ptr<rocksdb::Iterator> it(m.db->NewIterator(rocksdb::ReadOptions(), m.cf[kDueCf]));
  it->Seek(slice(m.scanStart(m.floorMs.load())));
  while (it->Valid()) {
    auto e = keys::decodeDueKey(view(it->key()));
    if (!e) {
      it->Next();
      continue;
    }
    if (m.isLeased(e->id)) {
      it->Next();
      continue;
    }
    if (m.isActive(e->id.campaign, seen)) {
      return e->dueMs;
    }
    if (!skipCampaignAtTime(*it, *e)) {
      break;
    }
  }
  return std::nullopt;
}

std::vector<CampaignRecord> JobStore::campaigns() {
  auto& m = *impl_;
  std::vector<CampaignRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(
      m.db->NewIterator(rocksdb::ReadOptions(), m.cf[kCampaignsCf]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (auto record = CampaignRecord::decode(view(it->value()))) {
      out.push_back(std::move(*record));
    }
  }
  return out;
}

std::optional<CampaignRecord> JobStore::campaign(std::uint32_t number) {
  CampaignRecord record;
  if (!impl_->readCampaign(number, record).isOk()) {
    return std::nullopt;
  }
  return record;
}

std::optional<CampaignRecord> JobStore::campaignByName(const std::string& name) {
  auto& m = *impl_;
  std::string value;
  auto s = m.db->Get(rocksdb::ReadOptions(), m.cf[kNamesCf], slice(name), &value);
  if (!s.ok() || value.size() != 4) {
    return std::nullopt;
  }
  return campaign(keys::getU32(value.data()));
}

Counts JobStore::counts(std::uint32_t campaign) {
  auto& m = *impl_;
  if (campaign > keys::kMaxCampaign) {
    return {};
  }
  Counts out = m.countersOf(campaign);
  if (!m.readOnly) {
    out.inFlight = m.leasedIn(campaign);
    return out;
  }
  // A read-only store sees the daemon's leases through its last in-flight snapshot, if a
  // daemon holds the store: after a crash the snapshot is stale until the next start.
  std::string value;
  if (writerHolds(m.dir) &&
      m.db->Get(rocksdb::ReadOptions(), m.cf[kMetaCf], slice(kInFlightKey), &value).ok()) {
    for (std::size_t at = 0; at + 12 <= value.size(); at += 12) {
      if (keys::getU32(value.data() + at) == campaign) {
        out.inFlight = static_cast<std::int64_t>(keys::getU64(value.data() + at + 4));
      }
    }
  }
  return out;
}

std::optional<JobRecord> JobStore::job(const JobId& id) {
  auto& m = *impl_;
  rocksdb::PinnableSlice value;
  auto key = keys::jobKey(id);
  auto s = m.db->Get(rocksdb::ReadOptions(), m.cf[kJobsCf], slice(key), &value);
  if (!s.ok()) {
    return std::nullopt;
  }
  return JobRecord::decode(view(value));
}

bool JobStore::campaignActive(std::uint32_t campaign) {
  return impl_->isActive(campaign);
}

std::uint64_t JobStore::campaignStateGeneration() {
  std::lock_guard lock(impl_->stateMutex);
  return impl_->stateGeneration;
}

std::uint64_t JobStore::danglingDropped() const {
  return impl_->dangling.load();
}

Status JobStore::sweepFinished(std::int64_t nowMs, std::int64_t retentionMs,
                               std::vector<std::string>& purged) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  for (const auto& record : campaigns()) {
    if (record.state == CampaignState::Loading) {
      continue;
    }
    auto n = counts(record.number);
    bool finished = n.waiting() == 0 && n.inFlight == 0;
    std::string key = std::string(kFinishedPrefix);
    char number[4];
    keys::putU32(number, record.number);
    key.append(number, sizeof number);
    std::string mark;
    auto s = m.db->Get(rocksdb::ReadOptions(), m.cf[kMetaCf], slice(key), &mark);
    if (!s.ok() && !s.IsNotFound()) {
      return m.error(s);
    }
    bool marked = s.ok() && mark.size() == 9;
    if (!finished) {
      if (s.ok()) {
        if (s = m.db->Delete(m.async, m.cf[kMetaCf], slice(key)); !s.ok()) {
          return m.error(s);
        }
      }
      continue;
    }
    if (!marked) {
      char value[9];
      keys::putU64(value, static_cast<std::uint64_t>(nowMs));
      value[8] = 0;
      if (s = m.db->Put(m.async, m.cf[kMetaCf], slice(key), slice({value, sizeof value}));
          !s.ok()) {
        return m.error(s);
      }
      continue;
    }
    auto finishedMs = static_cast<std::int64_t>(keys::getU64(mark.data()));
    if (mark[8] != 0 || retentionMs <= 0 || nowMs - finishedMs < retentionMs) {
      continue;
    }
    // No CompactRange here: this runs on the daemon's writer thread, and compacting a
    // large campaign's range would hold up outcome commits; compaction reclaims it later.
    if (auto st = purgeCampaign(record.name, /*compactNow=*/false); !st.isOk()) {
      return st;
    }
    mark[8] = 1;
    if (s = m.db->Put(m.synced, m.cf[kMetaCf], slice(key), mark); !s.ok()) {
      return m.error(s);
    }
    purged.push_back(record.name);
  }
  return Status::ok();
}

Status JobStore::saveInFlight() {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  std::lock_guard commitLock(m.commitMutex);
  rocksdb::WriteBatch batch;
  {
    std::lock_guard lock(m.leaseMutex);
    if (!m.inFlightDirty) {
      return Status::ok();
    }
    m.putInFlight(batch, {});
  }
  auto s = m.db->Write(m.async, &batch);
  return s.ok() ? Status::ok() : m.error(s);
}

Status JobStore::refresh() {
  auto& m = *impl_;
  if (!m.readOnly) {
    return Status::ok();
  }
  auto s = m.db->TryCatchUpWithPrimary();
  m.forgetAllStates();
  return s.ok() ? Status::ok() : m.error(s);
}

namespace {

std::string normalizedAddress(std::string_view address) {
  std::string out(address);
  for (auto& ch : out) {
    if (ch >= 'A' && ch <= 'Z') {
      ch = static_cast<char>(ch - 'A' + 'a');
    }
  }
  return out;
}

std::string suppressionValue(const Suppression& s) {
  std::string value(8, '\0');
  keys::putU64(value.data(), static_cast<std::uint64_t>(s.addedMs));
  value += s.reason;
  return value;
}

bool decodeSuppression(std::string_view key, std::string_view value, Suppression& out) {
  if (value.size() < 8) {
    return false;
  }
  out.address.assign(key);
  out.addedMs = static_cast<std::int64_t>(keys::getU64(value.data()));
  out.reason.assign(value.substr(8));
  return true;
}

}  // namespace

Status JobStore::addSuppressions(const std::vector<Suppression>& entries) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  rocksdb::WriteBatch batch;
  for (const auto& e : entries) {
    if (e.address.empty() || e.address.find('@') == std::string::npos) {
      return Status::error(Code::InvalidArgument,
                           fmt::format("'{}' is not an email address", e.address));
    }
    batch.Put(m.cf[kSuppressionCf], normalizedAddress(e.address), suppressionValue(e));
  }
  auto s = m.db->Write(m.synced, &batch);
  return s.ok() ? Status::ok() : m.error(s);
}

Status JobStore::removeSuppression(const std::string& address) {
  auto& m = *impl_;
  if (m.readOnly) {
    return readOnlyError();
  }
  auto key = normalizedAddress(address);
  std::string value;
  auto s = m.db->Get(rocksdb::ReadOptions(), m.cf[kSuppressionCf], key, &value);
  if (s.IsNotFound()) {
    return Status::error(Code::NotFound, fmt::format("'{}' is not suppressed", address));
  }
  if (s.ok()) {
    s = m.db->Delete(m.synced, m.cf[kSuppressionCf], key);
  }
  return s.ok() ? Status::ok() : m.error(s);
}

std::vector<Suppression> JobStore::suppressions() {
  auto& m = *impl_;
  std::vector<Suppression> out;
  std::unique_ptr<rocksdb::Iterator> it(
      m.db->NewIterator(rocksdb::ReadOptions(), m.cf[kSuppressionCf]));
  Suppression e;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (decodeSuppression(view(it->key()), view(it->value()), e)) {
      out.push_back(e);
    }
  }
  return out;
}

std::optional<Suppression> JobStore::suppressed(const std::string& address) {
  auto& m = *impl_;
  auto key = normalizedAddress(address);
  rocksdb::PinnableSlice value;
  auto s = m.db->Get(rocksdb::ReadOptions(), m.cf[kSuppressionCf], key, &value);
  Suppression e;
  if (!s.ok() || !decodeSuppression(key, view(value), e)) {
    return std::nullopt;
  }
  return e;
}

}  // namespace salvo::queue

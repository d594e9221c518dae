// JobStore: the durable queue on RocksDB.
// Contract: owns every key and column family; knows nothing of SMTP or templates.
// Column families (all keys fixed-width big-endian, so byte order is numeric order):
//   campaigns  u32 campaign                      -> CampaignRecord
//   names      campaign name                     -> u32 campaign
//   jobs       u32 campaign | u64 seq            -> JobRecord
//   due        u64 due ms | u32 campaign | u64 seq -> ""   (the due-time index; the due
//              time's sign bit is flipped so that byte order is signed order)
//   leases     u32 campaign | u64 seq            -> u64 lease time ms (jobs in flight)
//   counters   u32 campaign | u8 kind            -> i64 (merge operator: add)
//   meta       text key                          -> value (next campaign number, ...)
// Durability: submit batches end with a synced write before finishCampaign() returns;
// outcome batches are synced when `sync` is true. A lease is a non-synced write: losing
// it in a crash only means the job is still due, which is the at-least-once promise.
// Recovery on open: every lease goes back to the due index; Loading campaigns are purged.
// A read-only store is a RocksDB secondary instance: safe next to a running daemon, it
// sees the daemon's writes as of open() (or the last refresh()); every writing method
// returns InvalidArgument "read-only store".
// Due keys are written once and removed once, with SingleDelete: each outcome must answer
// exactly one lease handed out by takeDue().
// Thread-safety: every method may be called from any thread (RocksDB is thread-safe);
// the engine keeps writes on one writer thread and the scan on the dispatcher.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "queue/job.h"

namespace salvo::queue {

class Status {
 public:
  enum class Code { Ok, NotFound, AlreadyExists, Corruption, IoError, Busy, InvalidArgument };
  Status() = default;
  static Status ok() { return {}; }
  static Status error(Code code, std::string message) { return Status(code, std::move(message)); }
  bool isOk() const { return code_ == Code::Ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::Ok;
  std::string message_;
};

struct LeasedJob {
  JobId id;
  JobRecord record;
};

// The result of one attempt, as committed by commitOutcomes().
struct Outcome {
  JobId id;
  JobState previous = JobState::Queued;  // the state the job was leased in
  JobRecord record;  // the updated record: new state, attempts, lastReply, dueMs if deferred
};

struct OpenOptions {
  bool readOnly = false;  // for `salvo status` next to a running daemon
  bool createIfMissing = true;
};

class JobStore {
 public:
  // Opens or creates the store in `dir`. Errors are precise: Busy "<dir>: in use by another
  // salvo process" (or "already open in this process"), Corruption "<dir>: corrupt: …",
  // IoError "<dir>: permission denied (…)", NotFound "<dir>: no salvo store here …".
  static std::unique_ptr<JobStore> open(const std::string& dir, const OpenOptions& options,
                                        Status& status);
  ~JobStore();

  // --- submit ---
  // Registers a campaign in state Loading; AlreadyExists if the name is taken.
  Status beginCampaign(const std::string& name, const std::string& spec, std::int64_t nowMs,
                       std::uint32_t& number);
  // Appends jobs with consecutive sequence numbers starting at `firstSeq`, all due at
  // `dueMs`, as one write batch (WAL, not synced). Each record is stored as Queued with
  // createdMs = dueMs = `dueMs`; its other fields as given. NotFound for an unknown
  // campaign. Sequence numbers must be fresh: adding the same job twice is a caller bug.
  Status addJobs(std::uint32_t campaign, std::uint64_t firstSeq, const std::vector<JobRecord>& jobs,
                 std::int64_t dueMs);
  // Marks the campaign Active with its job count; synced. After this returns OK every job
  // is durable. InvalidArgument unless the campaign is Loading.
  Status finishCampaign(std::uint32_t campaign, std::uint64_t jobCount);
  // Removes a campaign and everything written for it (failed submit).
  Status abortCampaign(std::uint32_t campaign);

  // --- delivery ---
  // Moves up to `max` jobs due at or before `nowMs` of Active campaigns from the due index
  // to leases and appends them to `out` in due order. A due entry whose job record is
  // missing, undecodable or terminal is deleted and counted in danglingDropped().
  // Calls are serialised (one scan at a time).
  Status takeDue(std::int64_t nowMs, std::size_t max, std::vector<LeasedJob>& out);
  // Commits outcomes in one batch: job records, due index (deferred), leases, counters.
  // A job whose new state is not terminal (Deferred, or Queued) is due again at
  // record.dueMs. Counters: previous state -1 and new state +1 when they differ, attempts
  // +1 per outcome, deferrals +1 per Deferred outcome.
  Status commitOutcomes(const std::vector<Outcome>& outcomes, bool sync);
  // The earliest due time among waiting jobs of Active campaigns, if any.
  std::optional<std::int64_t> nextDueMs();

  // --- reading ---
  std::vector<CampaignRecord> campaigns();
  std::optional<CampaignRecord> campaign(std::uint32_t number);
  std::optional<CampaignRecord> campaignByName(const std::string& name);
  Counts counts(std::uint32_t campaign);
  std::optional<JobRecord> job(const JobId& id);

  // Due entries dropped because their job record was missing, undecodable or terminal
  // (takeDue) and leases dropped for the same reason (recovery), since open().
  std::uint64_t danglingDropped() const;
  // Read-only stores: catch up with the primary's writes since open. Others: a no-op.
  Status refresh();

  struct Impl;

 private:
  explicit JobStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace salvo::queue

// JobStore: the durable queue on RocksDB.
// Contract: owns every key and column family; knows nothing of SMTP or templates.
// Column families (all keys fixed-width big-endian, so byte order is numeric order):
//   campaigns  u32 campaign                      -> CampaignRecord
//   names      campaign name                     -> u32 campaign
//   jobs       u32 campaign | u64 seq            -> JobRecord
//   due        u64 due ms | u32 campaign | u64 seq -> ""   (the due-time index; the due
//              time's sign bit is flipped so that byte order is signed order)
//   leases     u32 campaign | u64 seq            -> u64 lease time ms (written by versions
//              before in-memory leases; read once by recovery)
//   counters   u32 campaign | u8 kind            -> i64 (merge operator: add)
//   meta       text key                          -> value (next campaign number, ...)
//   suppression lowercased address               -> u64 added ms | reason
// Durability: submit batches end with a synced write before finishCampaign() returns;
// outcome batches are synced when `sync` is true. Leases (jobs in flight) live in memory
// only: a leased job keeps its due entry until its outcome commits, which removes or
// replaces that entry in the same batch as the job record. A crash therefore loses no
// job: after a restart every job that was in flight is due again (at-least-once), and
// taking a job costs no write at all. A read-only store sees the daemon's in-flight counts
// through a snapshot in meta, rewritten by each outcome commit and by saveInFlight().
// Recovery on open: leases left by older versions go back to the due index; Loading
// campaigns are purged; jobs of cancelled campaigns still waiting are cancelled.
// A read-only store is a RocksDB secondary instance: safe next to a running daemon, it
// sees the daemon's writes as of open() (or the last refresh()); every writing method
// returns InvalidArgument "read-only store".
// Due keys are written once and removed once, with SingleDelete: each outcome must answer
// exactly one lease handed out by takeDue() (an outcome for a job this store did not
// lease removes the due entry its stored record names).
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
  // False for a job handed back unattempted (the engine could not take it now: its
  // destination is at its limit): record.state is unchanged and the job is due again
  // at record.dueMs; no attempt is counted.
  bool attempted = true;
};

struct Suppression {
  std::string address;
  std::string reason;
  std::int64_t addedMs = 0;
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
  // Marks the campaign Active with its job count, and counts `suppressed` recipients that
  // were skipped; synced. After this returns OK every job is durable. InvalidArgument
  // unless the campaign is Loading.
  Status finishCampaign(std::uint32_t campaign, std::uint64_t jobCount,
                        std::uint64_t suppressed = 0);
  // Removes a campaign and everything written for it (failed submit).
  Status abortCampaign(std::uint32_t campaign);

  // --- control (by campaign name; NotFound for an unknown one) ---
  // Pause: Active -> Paused; takeDue() stops handing out its jobs at once (jobs already
  // leased are their holder's: the dispatcher gives back those not yet on a connection,
  // seeing campaignStateGeneration() move). Resume: Paused -> Active. Both are idempotent and
  // synced; InvalidArgument for a campaign that is Loading or Cancelled.
  Status pauseCampaign(const std::string& name);
  Status resumeCampaign(const std::string& name);
  // Cancel: Active or Paused -> Cancelled. Every waiting job becomes Cancelled (counted
  // in Counts::cancelled) and leaves the due index; a job in flight is cancelled when its
  // outcome commits unless it was delivered or bounced (or on recovery, if the daemon
  // died). Synced. `cancelled` is the number of waiting jobs cancelled by this call;
  // cancelling a cancelled campaign is OK and cancels 0.
  Status cancelCampaign(const std::string& name, std::uint64_t& cancelled);
  // Purge: drops the job records of a finished campaign (nothing waiting, nothing in
  // flight: every job delivered, bounced, expired or cancelled), keeping its campaign
  // record and counters, so `salvo status` still reports it. InvalidArgument while jobs
  // wait or are in flight (pause does not finish a campaign; cancel does). Synced.
  // compactNow: also compact the purged range at once (reclaims the disk space now; slow
  // for a large campaign), as `salvo purge` does.
  Status purgeCampaign(const std::string& name, bool compactNow = true);

  // --- delivery ---
  // Leases up to `max` jobs due at or before `nowMs` of Active campaigns, not already
  // leased, and appends them to `out` in due order (no write). A due entry whose job record is
  // missing, undecodable or terminal is deleted and counted in danglingDropped().
  // Calls are serialised (one scan at a time).
  Status takeDue(std::int64_t nowMs, std::size_t max, std::vector<LeasedJob>& out);
  // Commits outcomes in one batch: job records, due index, counters; then releases their
  // leases. On failure the jobs stay leased (in flight until the process restarts).
  // A job whose new state is not terminal (Deferred, or Queued) is due again at
  // record.dueMs. Counters: previous state -1 and new state +1 when they differ, attempts
  // +1 per attempted outcome, deferrals +1 per attempted Deferred outcome.
  Status commitOutcomes(const std::vector<Outcome>& outcomes, bool sync);
  // Retention. A campaign is finished when nothing of it waits or is in flight (not
  // Loading). The first sweep that sees it finished records that time in meta; a sweep
  // `retentionMs` or more after that purges its job records (purgeCampaign) once and adds
  // its name to `purged`. retentionMs <= 0 only records. Writes are not synced except the
  // purge and its mark.
  Status sweepFinished(std::int64_t nowMs, std::int64_t retentionMs,
                       std::vector<std::string>& purged);
  // Writes the in-flight snapshot (not synced) if takeDue() leased jobs since it was last
  // written; commitOutcomes() writes it too. Called by the writer thread when idle, so
  // takeDue() itself writes nothing but repairs (dangling due entries).
  Status saveInFlight();
  // The earliest due time among waiting jobs of Active campaigns, if any.
  std::optional<std::int64_t> nextDueMs();
  // Whether a campaign is Active now (the cached state takeDue() uses; false for an
  // unknown campaign or a read error), and a number that changes whenever any campaign's
  // state may have changed: a holder of leased jobs re-checks them when it moves.
  bool campaignActive(std::uint32_t campaign);
  std::uint64_t campaignStateGeneration();

  // --- suppression list (addresses compared lowercased) ---
  // Adds or replaces entries, in one synced batch. InvalidArgument for an entry that is
  // not an address (no '@'); then nothing is written.
  Status addSuppressions(const std::vector<Suppression>& entries);
  // NotFound "'<address>' is not suppressed" when absent. Synced.
  Status removeSuppression(const std::string& address);
  std::vector<Suppression> suppressions();  // in address order
  std::optional<Suppression> suppressed(const std::string& address);

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

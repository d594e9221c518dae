// Job and campaign records of the queue, and their binary codecs.
// Contract: plain values; the codec is versioned (first byte) and rejects truncated or
// unknown input with an error instead of crashing. A job stores the recipient and merge
// values, never a rendered message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace salvo::queue {

// Campaign number (assigned at submit, dense) + sequence within the campaign.
struct JobId {
  std::uint32_t campaign = 0;
  std::uint64_t seq = 0;
  bool operator==(const JobId&) const = default;
  auto operator<=>(const JobId&) const = default;
  std::string str() const;  // "c<campaign>-<seq>", e.g. "c3-1042"
};

enum class JobState : std::uint8_t {
  Queued = 0,      // waiting for its first attempt
  Deferred = 1,    // waiting for a retry
  Delivered = 2,   // terminal
  Bounced = 3,     // terminal
  Expired = 4,     // terminal
  Cancelled = 5,   // terminal
  Suppressed = 6,  // terminal: on the suppression list when it was due
};
const char* jobStateName(JobState s);
inline bool isTerminal(JobState s) {
  return s >= JobState::Delivered;
}

struct JobRecord {
  JobState state = JobState::Queued;
  std::uint32_t attempts = 0;
  std::int64_t createdMs = 0;
  std::int64_t dueMs = 0;           // when waiting: the due-index time
  std::string recipient;            // bare address
  std::vector<std::string> values;  // merge values, in the campaign's variable order
  std::string lastReply;            // summary of the last reply or error

  std::string encode() const;
  static std::optional<JobRecord> decode(std::string_view bytes);
  // Hot-path forms: append to a reused buffer; decode into a reused record (its string
  // capacity is kept). On failure `out` holds partial garbage and must not be used.
  void encodeTo(std::string& out) const;
  static bool decode(std::string_view bytes, JobRecord& out);
  // Appends the encoding of this record with `state`, `createdMs` and `dueMs` in place of
  // its own (the store stamps these on submit without copying the record).
  void encodeWith(std::string& out, JobState state, std::int64_t created, std::int64_t due) const;
};

enum class CampaignState : std::uint8_t {
  Loading = 0,  // jobs being written by submit; invisible to delivery, purged on restart
  Active = 1,
  Paused = 2,
  Cancelled = 3,
};
const char* campaignStateName(CampaignState s);

struct CampaignRecord {
  std::uint32_t number = 0;
  std::string name;  // the campaign's `id` from its YAML
  CampaignState state = CampaignState::Loading;
  std::int64_t createdMs = 0;
  std::uint64_t jobs = 0;  // recipients submitted (suppressed ones included)
  std::string spec;        // opaque to the queue: the compiled campaign from campaigns/

  std::string encode() const;
  static std::optional<CampaignRecord> decode(std::string_view bytes);
  void encodeTo(std::string& out) const;  // appends
};

// Per-campaign counts of jobs by state, kept with a merge operator. A leased job still
// counts in the state it was leased in (queued or deferred) until its outcome commits, so
// inFlight overlaps waiting().
struct Counts {
  std::int64_t queued = 0;
  std::int64_t deferred = 0;
  std::int64_t delivered = 0;
  std::int64_t bounced = 0;
  std::int64_t expired = 0;
  std::int64_t cancelled = 0;
  std::int64_t inFlight = 0;    // leases held (derived, not a counter)
  std::int64_t attempts = 0;    // every committed attempt
  std::int64_t deferrals = 0;   // every committed deferral (a job may defer many times)
  std::int64_t suppressed = 0;  // skipped at submit or at send time (suppression list)

  std::int64_t waiting() const { return queued + deferred; }
};

}  // namespace salvo::queue

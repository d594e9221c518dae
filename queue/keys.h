// Key encoding of the queue's column families: the one place that knows the byte layout.
// Contract: every integer is fixed-width big-endian, so the byte order of encoded keys is
// the numeric order of their fields (RocksDB's default bytewise comparator then sorts the
// due index by time, campaign, sequence). Due times are signed: their sign bit is flipped
// before encoding, so negative times sort first. Keys are built in fixed-size arrays on
// the stack (no allocation on the hot path); decoders reject keys of the wrong size.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "queue/job.h"

namespace salvo::queue::keys {

void putU32(char* out, std::uint32_t v);
void putU64(char* out, std::uint64_t v);
std::uint32_t getU32(const char* in);
std::uint64_t getU64(const char* in);
// Order-preserving mapping of a signed time onto an unsigned 64-bit key field.
void putTime(char* out, std::int64_t ms);
std::int64_t getTime(const char* in);

// A key of N bytes held by value.
template <std::size_t N>
struct Key {
  std::array<char, N> bytes{};
  static constexpr std::size_t size() { return N; }
  const char* data() const { return bytes.data(); }
  std::string_view view() const { return {bytes.data(), N}; }
};

inline constexpr std::size_t kCampaignKeySize = 4;  // u32 campaign
inline constexpr std::size_t kJobKeySize = 12;      // u32 campaign | u64 seq
inline constexpr std::size_t kDueKeySize = 20;      // u64 due ms | u32 campaign | u64 seq
inline constexpr std::size_t kCounterKeySize = 5;   // u32 campaign | u8 kind
inline constexpr std::size_t kTimePrefixSize = 8;   // u64 due ms (prefix of a due key)

using CampaignKey = Key<kCampaignKeySize>;
using JobKey = Key<kJobKeySize>;
using DueKey = Key<kDueKeySize>;
using CounterKey = Key<kCounterKeySize>;
using TimePrefix = Key<kTimePrefixSize>;

// The per-campaign counters. The first six equal JobState's values: the count of jobs in
// that state (leased jobs still count in the state they were leased in). Attempts and
// Deferrals are cumulative event counts. Suppressed counts recipients skipped at submit
// and jobs ending in JobState::Suppressed (whose value, 6, is taken by Attempts).
enum class CounterKind : std::uint8_t {
  Queued = 0,
  Deferred = 1,
  Delivered = 2,
  Bounced = 3,
  Expired = 4,
  Cancelled = 5,
  Attempts = 6,
  Deferrals = 7,
  Suppressed = 8,
};
inline constexpr std::size_t kCounterKinds = 9;
inline CounterKind counterFor(JobState s) {
  return s == JobState::Suppressed ? CounterKind::Suppressed : static_cast<CounterKind>(s);
}

// Campaign numbers are u32, but UINT32_MAX is never allocated, so that `campaign + 1`
// is always the exclusive upper bound of a campaign's key prefix.
inline constexpr std::uint32_t kMaxCampaign = UINT32_MAX - 1;

// campaigns, and the prefix of a campaign's jobs, leases and counters.
CampaignKey campaignKey(std::uint32_t campaign);
std::optional<std::uint32_t> decodeCampaignKey(std::string_view key);

// jobs and leases.
JobKey jobKey(const JobId& id);
std::optional<JobId> decodeJobKey(std::string_view key);

// due.
struct DueEntry {
  std::int64_t dueMs = 0;
  JobId id;
  bool operator==(const DueEntry&) const = default;
};
DueKey dueKey(std::int64_t dueMs, const JobId& id);
std::optional<DueEntry> decodeDueKey(std::string_view key);
// The 8-byte prefix shared by all due keys at `dueMs`: iterating up to timePrefix(t + 1)
// (exclusive) yields exactly the entries due at or before t.
TimePrefix timePrefix(std::int64_t dueMs);

// counters.
CounterKey counterKey(std::uint32_t campaign, CounterKind kind);
struct CounterEntry {
  std::uint32_t campaign = 0;
  CounterKind kind = CounterKind::Queued;
};
std::optional<CounterEntry> decodeCounterKey(std::string_view key);

// Counter values: signed 64-bit little-endian (the merge operator's operand format).
std::array<char, 8> encodeDelta(std::int64_t delta);
std::optional<std::int64_t> decodeDelta(std::string_view value);

}  // namespace salvo::queue::keys

// RetrySchedule: when a deferred job is tried again, and when it expires.
// Contract: pure arithmetic on values given to it (no clock, no random source of its own).
// The delay after the n-th failed attempt is first * 2^(n-1), capped at max; a job older
// than maxAge when it defers again expires instead. The jittered variant spreads retries
// by +-jitter (default 10%) around that delay so that jobs deferred together (a site that
// was down) do not all come back in the same second; the caller supplies the random value.
// A campaign may set its own schedule (its `retry:` key): overriddenBy() gives the daemon's
// schedule with the keys that campaign sets replaced, and the same jitter.
#pragma once

#include <cstdint>

#include "campaigns/config.h"

namespace salvo::engine {

class RetrySchedule {
 public:
  static constexpr double kDefaultJitter = 0.1;

  // `jitter` in [0, 1): the jittered delay lies in [d * (1 - jitter), d * (1 + jitter)],
  // and never above the configured maximum delay.
  explicit RetrySchedule(const campaigns::RetryConfig& config, double jitter = kDefaultJitter);
  // Delay in ms before the next try, after `attempts` attempts (>= 1) have failed.
  std::int64_t delayMs(std::uint32_t attempts) const;
  // delayMs() spread by the jitter; `unit` is a random value in [0, 1) (clamped): 0 gives
  // the shortest delay, 0.5 the unjittered one, just under 1 the longest.
  std::int64_t jitteredDelayMs(std::uint32_t attempts, double unit) const;
  // True when a job created at `createdMs` must not be retried any more at `nowMs`.
  bool expired(std::int64_t createdMs, std::int64_t nowMs) const;
  // This schedule with the keys `campaign` sets replaced (itself when it sets none).
  RetrySchedule overriddenBy(const campaigns::RetryOverride& campaign) const;
  const campaigns::RetryConfig& config() const { return config_; }

  // A well-spread value in [0, 1) from any 64-bit seed (splitmix64), for callers that
  // want jitter derived from a job's identity and attempt rather than a generator.
  static double unitFromSeed(std::uint64_t seed);

 private:
  campaigns::RetryConfig config_;
  double jitter_;
};

}  // namespace salvo::engine

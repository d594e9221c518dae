// RetrySchedule: when a deferred job is tried again, and when it expires.
// Contract: pure arithmetic on values given to it (no clock). The delay after the n-th
// failed attempt is first * 2^(n-1), capped at max; a job older than maxAge when it
// defers again expires instead.
#pragma once

#include <cstdint>

#include "campaigns/config.h"

namespace salvo::engine {

class RetrySchedule {
 public:
  explicit RetrySchedule(const campaigns::RetryConfig& config) : config_(config) {}
  // Delay in ms before the next try, after `attempts` attempts (≥ 1) have failed.
  std::int64_t delayMs(std::uint32_t attempts) const;
  // True when a job created at `createdMs` must not be retried any more at `nowMs`.
  bool expired(std::int64_t createdMs, std::int64_t nowMs) const;

 private:
  campaigns::RetryConfig config_;
};

}  // namespace salvo::engine

#include "engine/retry_schedule.h"

#include <algorithm>
#include <cmath>

namespace salvo::engine {

RetrySchedule::RetrySchedule(const campaigns::RetryConfig& config, double jitter)
    : config_(config), jitter_(std::clamp(jitter, 0.0, 0.99)) {}

std::int64_t RetrySchedule::delayMs(std::uint32_t attempts) const {
  std::int64_t delay = static_cast<std::int64_t>(config_.firstDelaySec) * 1000;
  const std::int64_t cap = static_cast<std::int64_t>(config_.maxDelaySec) * 1000;
  for (std::uint32_t i = 1; i < attempts && delay < cap; ++i) {
    delay *= 2;
  }
  return std::max<std::int64_t>(0, std::min(delay, cap));
}

std::int64_t RetrySchedule::jitteredDelayMs(std::uint32_t attempts, double unit) const {
  const double base = static_cast<double>(delayMs(attempts));
  const double u = std::isnan(unit) ? 0.5 : std::clamp(unit, 0.0, 1.0);
  const double factor = 1.0 + jitter_ * (2.0 * u - 1.0);
  const std::int64_t cap = static_cast<std::int64_t>(config_.maxDelaySec) * 1000;
  return std::clamp<std::int64_t>(std::llround(base * factor), 0, std::max<std::int64_t>(0, cap));
}

bool RetrySchedule::expired(std::int64_t createdMs, std::int64_t nowMs) const {
  return nowMs - createdMs >= static_cast<std::int64_t>(config_.maxAgeSec) * 1000;
}

RetrySchedule RetrySchedule::overriddenBy(const campaigns::RetryOverride& campaign) const {
  if (campaign.empty()) {
    return *this;
  }
  return RetrySchedule(campaign.over(config_), jitter_);
}

double RetrySchedule::unitFromSeed(std::uint64_t seed) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;  // 53 bits: exactly representable
}

}  // namespace salvo::engine

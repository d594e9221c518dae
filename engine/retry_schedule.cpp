#include "engine/retry_schedule.h"

#include <algorithm>

namespace salvo::engine {

std::int64_t RetrySchedule::delayMs(std::uint32_t attempts) const {
  std::int64_t delay = static_cast<std::int64_t>(config_.firstDelaySec) * 1000;
  const std::int64_t cap = static_cast<std::int64_t>(config_.maxDelaySec) * 1000;
  for (std::uint32_t i = 1; i < attempts && delay < cap; ++i) {
    delay *= 2;
  }
  return std::max<std::int64_t>(0, std::min(delay, cap));
}

bool RetrySchedule::expired(std::int64_t createdMs, std::int64_t nowMs) const {
  return nowMs - createdMs >= static_cast<std::int64_t>(config_.maxAgeSec) * 1000;
}

}  // namespace salvo::engine

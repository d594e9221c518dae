// GCRA: a send at time t conforms when tat - t <= (burst - 1) * interval; it then pushes
// tat to max(tat, t) + interval. Equivalent to a token bucket of `burst` tokens refilled
// at `rate`, with one integer of state and no refill loop.
#include "engine/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace salvo::engine {

namespace {

std::int64_t intervalFor(double perSecond) {
  if (!(perSecond > 0)) {
    return 0;
  }
  // At least 1 us so that an absurd rate still counts as limited.
  return std::max<std::int64_t>(1, std::llround(1e6 / perSecond));
}

}  // namespace

RateLimiter::RateLimiter(double perSecond, std::uint32_t burst)
    : rate_(perSecond > 0 ? perSecond : 0),
      burst_(std::max<std::uint32_t>(1, burst)),
      intervalUs_(intervalFor(perSecond)) {}

void RateLimiter::setRate(double perSecond) {
  const std::int64_t interval = intervalFor(perSecond);
  if (tatUs_ != kNever) {
    // tat = last send + old interval: re-space the pending slot at the new interval.
    tatUs_ = interval == 0 || intervalUs_ == 0 ? kNever : tatUs_ - intervalUs_ + interval;
  }
  rate_ = perSecond > 0 ? perSecond : 0;
  intervalUs_ = interval;
}

std::int64_t RateLimiter::nextAllowedUs(std::int64_t nowUs) const {
  if (intervalUs_ == 0 || tatUs_ == kNever) {
    return nowUs;
  }
  const std::int64_t tolerance = static_cast<std::int64_t>(burst_ - 1) * intervalUs_;
  return std::max(nowUs, tatUs_ - tolerance);
}

bool RateLimiter::tryAcquire(std::int64_t nowUs) {
  if (intervalUs_ == 0) {
    return true;
  }
  if (nextAllowedUs(nowUs) > nowUs) {
    return false;
  }
  const std::int64_t base = tatUs_ == kNever ? nowUs : std::max(tatUs_, nowUs);
  tatUs_ = base + intervalUs_;
  return true;
}

}  // namespace salvo::engine

// RateLimiter: a smooth per-destination rate limit (GCRA, the "virtual scheduling" form of
// a token bucket). Contract: a value type fed `now` by its owner (steady microseconds, any
// origin); it never reads a clock, never sleeps and takes no locks: it belongs to one
// event loop. With a burst of 1 (the default) sends are spaced exactly 1/rate apart, so a
// provider never sees a burst after an idle spell; a larger burst lets that many go at
// once. nextAllowedUs() tells the owner when to arm a timer instead of polling.
#pragma once

#include <cstdint>
#include <limits>

namespace salvo::engine {

class RateLimiter {
 public:
  // `perSecond` <= 0 means unlimited. `burst` >= 1 (0 is taken as 1).
  explicit RateLimiter(double perSecond = 0, std::uint32_t burst = 1);

  // Changes the rate (shaping rules scale it) without forgetting the sends already made:
  // the next send is still spaced from the last one at the new rate.
  void setRate(double perSecond);
  double rate() const { return rate_; }
  bool unlimited() const { return intervalUs_ == 0; }

  // Takes one send slot at `nowUs` if the limit allows it.
  bool tryAcquire(std::int64_t nowUs);
  // The earliest time >= nowUs at which tryAcquire() would succeed (nowUs when it would now).
  std::int64_t nextAllowedUs(std::int64_t nowUs) const;

 private:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  double rate_ = 0;
  std::uint32_t burst_ = 1;
  std::int64_t intervalUs_ = 0;  // 1/rate; 0 = unlimited
  // The theoretical arrival time: when the next send would be due at exactly the rate.
  std::int64_t tatUs_ = kNever;
};

}  // namespace salvo::engine

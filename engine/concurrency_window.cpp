#include "engine/concurrency_window.h"

#include <algorithm>
#include <cassert>

namespace salvo::engine {

namespace {
// n feedbacks of 1/n must make one whole step despite rounding.
constexpr double kEpsilon = 1e-9;
}  // namespace

ConcurrencyWindow::ConcurrencyWindow(ConcurrencyWindowConfig config) : config_(config) {
  config_.max = std::max(1, config_.max);
  config_.initial = std::clamp(config_.initial, 1, config_.max);
  config_.failedCohortLimit = std::max(0, config_.failedCohortLimit);
  config_.probeDelayMs = std::max<std::int64_t>(0, config_.probeDelayMs);
  window_ = config_.initial;
}

int ConcurrencyWindow::allowed(std::int64_t nowMs) const {
  if (dead_) {
    return nowMs >= probeAtMs_ ? 1 : 0;
  }
  return window_;
}

void ConcurrencyWindow::onSuccess() {
  failedCohorts_ = 0;
  if (dead_) {
    // The probe worked: the site is back. Restart slow start rather than jumping to the
    // window it had before it failed.
    dead_ = false;
    window_ = config_.initial;
    successCredit_ = 0;
    failureCredit_ = 0;
    return;
  }
  // Postfix's hysteresis: feedback accumulates in fractions of 1/window and moves the
  // window in whole steps.
  successCredit_ += 1.0 / window_;
  while (successCredit_ + kEpsilon >= 1.0) {
    successCredit_ = std::max(0.0, successCredit_ - 1.0);
    failureCredit_ = 0;
    window_ = std::min(config_.max, window_ + 1);
  }
}

void ConcurrencyWindow::onFailure(smtp::FailureScope scope, std::int64_t nowMs) {
  if (scope != smtp::FailureScope::Site) {
    return;
  }
  if (dead_) {
    // The probe (or a straggler from before the site died) failed: rest again.
    probeAtMs_ = nowMs + config_.probeDelayMs;
    return;
  }
  assert(window_ >= 1);
  failedCohorts_ += 1.0 / window_;
  if (config_.failedCohortLimit > 0 && failedCohorts_ + kEpsilon >= config_.failedCohortLimit) {
    dead_ = true;
    probeAtMs_ = nowMs + config_.probeDelayMs;
    failedCohorts_ = 0;
    successCredit_ = 0;
    failureCredit_ = 0;
    return;
  }
  failureCredit_ += 1.0 / window_;
  while (failureCredit_ + kEpsilon >= 1.0) {
    failureCredit_ = std::max(0.0, failureCredit_ - 1.0);
    successCredit_ = 0;
    window_ = std::max(1, window_ - 1);
  }
}

void ConcurrencyWindow::setMax(int max) {
  config_.max = std::max(1, max);
  window_ = std::min(window_, config_.max);
}

}  // namespace salvo::engine

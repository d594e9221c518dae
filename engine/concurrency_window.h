// ConcurrencyWindow: how many connections a destination may have open at once, adapted to
// how the site behaves. Contract: a value type owned by one destination on one loop; the
// caller reports outcomes with their failure scope and passes `now` (steady ms); no clock,
// no I/O, no locks.
//
// The algorithm is Postfix's queue manager scheduler (qmgr_queue.c, SCHEDULER_README):
// - Slow start: a destination starts at `initial` connections, not at the limit, so an
//   unknown or struggling site is never hit with the full fan-out at once.
// - Positive feedback: each success earns 1/window of a step, so a whole cohort of
//   successes (as many as the window is wide) grows the window by one, up to `max`.
//   Growth is linear and self-clocked by the site's own throughput.
// - Negative feedback: each *site-scope* failure (connection refused or timed out,
//   greeting failure, 421, TLS required but broken) earns 1/window of a step down, so a
//   cohort of failures shrinks the window by one, never below one. A step either way
//   clears the other direction's partial credit (Postfix's hysteresis).
//   Only site failures count: a rejected recipient or message says nothing about whether
//   the site can take more connections, and must never slow the destination (Postfix
//   qmgr_deliver.c). Those scopes are ignored here.
// - Dead: every failure also adds 1/window to a "failed cohorts" count that any success
//   resets. When `failedCohortLimit` consecutive cohorts have failed, the site is dead:
//   the window drops to zero and nothing is tried until `probeDelayMs` has passed. Then a
//   single probe connection is allowed (window 1); its success restarts slow start from
//   `initial`, its failure makes the site dead again for another delay.
// Why a window and not a fixed limit: providers signal overload by refusing or delaying
// connections long before they bounce; backing off on those signals, and only those,
// keeps the sender welcome without giving up throughput on healthy sites.
#pragma once

#include <cstdint>

#include "engine/smtp/session.h"

namespace salvo::engine {

struct ConcurrencyWindowConfig {
  int initial = 2;                     // connections at the start (slow start), >= 1
  int max = 8;                         // the ceiling, >= initial
  int failedCohortLimit = 1;           // consecutive failed cohorts before "dead"; 0 = never
  std::int64_t probeDelayMs = 60'000;  // how long a dead site rests before one probe
};

class ConcurrencyWindow {
 public:
  explicit ConcurrencyWindow(ConcurrencyWindowConfig config);

  // Connections allowed at `nowMs`: 0 while dead and resting, 1 for the probe, else the
  // window. The caller opens at most this many.
  int allowed(std::int64_t nowMs) const;
  // The current window width (0 while dead).
  int window() const { return dead_ ? 0 : window_; }
  bool dead() const { return dead_; }
  // When a dead site may be probed (meaningful only while dead()).
  std::int64_t probeAtMs() const { return probeAtMs_; }

  // A delivery or connection to the site worked (the site answered and took work; a
  // recipient rejected by a working site is a success for the site).
  void onSuccess();
  // An attempt failed with `scope`; only FailureScope::Site moves the window.
  void onFailure(smtp::FailureScope scope, std::int64_t nowMs);

  // Changes the ceiling (shaping rules scale connections for a while); the window is
  // clamped to it at once and may grow back once the ceiling is raised again.
  void setMax(int max);
  int max() const { return config_.max; }

 private:
  ConcurrencyWindowConfig config_;
  int window_;
  double successCredit_ = 0;  // positive feedback not yet worth a whole step
  double failureCredit_ = 0;  // negative feedback not yet worth a whole step
  double failedCohorts_ = 0;
  bool dead_ = false;
  std::int64_t probeAtMs_ = 0;
};

}  // namespace salvo::engine

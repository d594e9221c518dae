#include "engine/destination.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/log.h"

namespace salvo::engine {

namespace {

constexpr std::int64_t kUsPerMs = 1000;

std::string_view replyText(const smtp::Reply& reply, std::string& scratch) {
  scratch.clear();
  for (const auto& line : reply.lines) {
    if (!scratch.empty()) {
      scratch += ' ';
    }
    scratch += line;
  }
  return scratch;
}

// A reply summary ("451 4.7.1 text") without its code and enhanced code.
std::string_view summaryText(std::string_view summary, int code,
                             const smtp::EnhancedCode& enhanced) {
  if (summary.size() > 4 && summary.substr(0, 3) == std::to_string(code)) {
    summary.remove_prefix(4);
    std::string e = enhanced.str();
    if (!e.empty() && summary.size() > e.size() && summary.substr(0, e.size()) == e) {
      summary.remove_prefix(e.size() + 1);
    }
  }
  return summary;
}

}  // namespace

DestinationThrottle::DestinationThrottle(const DestinationLimits& limits,
                                         const ShapingRules* shaping)
    : limits_(limits),
      rules_(shaping),
      window_(windowConfig(limits)),
      messages_(limits.messagesPerSecond),
      connections_(limits.connectionsPerMinute / 60.0,
                   static_cast<std::uint32_t>(std::max(1, limits.initialConnections))) {}

void DestinationThrottle::noteSent(std::int64_t nowMs) {
  if (nowMs - bucketStartMs_ >= 1000) {
    lastSecondSends_ = nowMs - bucketStartMs_ < 2000 ? bucketSends_ : 0;
    bucketStartMs_ = nowMs;
    bucketSends_ = 0;
  }
  ++bucketSends_;
}

double DestinationThrottle::observedRate(std::int64_t nowMs) const {
  if (nowMs - bucketStartMs_ >= 2000) {
    return 0;
  }
  if (nowMs - bucketStartMs_ >= 1000) {
    return static_cast<double>(bucketSends_);
  }
  return static_cast<double>(std::max(lastSecondSends_, bucketSends_));
}

void DestinationThrottle::applyShaping(std::int64_t nowMs) {
  double rate = shaping_.rateFactor(nowMs);
  if (rate != rateFactor_) {
    rateFactor_ = rate;
    // Without a configured rate the cut applies to the rate observed when it began.
    double base = limits_.messagesPerSecond > 0 ? limits_.messagesPerSecond : shapedBaseRate_;
    messages_.setRate(rate >= 1.0 ? limits_.messagesPerSecond : base * rate);
  }
  double conns = shaping_.connectionFactor(nowMs);
  if (conns != connectionFactor_) {
    connectionFactor_ = conns;
    window_.setMax(std::max(1, static_cast<int>(std::floor(limits_.maxConnections * conns))));
  }
}

int DestinationThrottle::connectionsAllowed(std::int64_t nowMs) {
  applyShaping(nowMs);
  if (shaping_.destinationSuspended(nowMs)) {
    return 0;
  }
  return window_.allowed(nowMs);
}

bool DestinationThrottle::tryOpen(int open, std::int64_t nowMs, std::string_view& limit) {
  if (shaping_.destinationSuspended(nowMs)) {
    limit = "suspended";
    return false;
  }
  if (open >= connectionsAllowed(nowMs)) {
    limit = "max_connections";
    return false;
  }
  if (!connections_.tryAcquire(nowMs * kUsPerMs)) {
    limit = "connections_per_minute";
    return false;
  }
  return true;
}

bool DestinationThrottle::trySend(std::int64_t nowMs, std::string_view& limit) {
  applyShaping(nowMs);
  if (shaping_.destinationSuspended(nowMs)) {
    limit = "suspended";
    return false;
  }
  if (!messages_.tryAcquire(nowMs * kUsPerMs)) {
    limit = "messages_per_second";
    return false;
  }
  noteSent(nowMs);
  return true;
}

std::int64_t DestinationThrottle::nextStepMs(std::int64_t nowMs) const {
  auto ceilMs = [](std::int64_t us) { return (us + kUsPerMs - 1) / kUsPerMs; };
  std::int64_t at = std::max(ceilMs(messages_.nextAllowedUs(nowMs * kUsPerMs)),
                             ceilMs(connections_.nextAllowedUs(nowMs * kUsPerMs)));
  if (auto change = shaping_.nextChangeMs(nowMs); change && shaping_.destinationSuspended(nowMs)) {
    at = std::max(at, *change);
  }
  if (window_.dead()) {
    at = std::max(at, window_.probeAtMs());
  }
  return std::max(at, nowMs);
}

void DestinationThrottle::onSuccess() {
  window_.onSuccess();
}

void DestinationThrottle::onFailure(smtp::FailureScope scope, std::int64_t nowMs) {
  window_.onFailure(scope, nowMs);
}

const ShapingRule* DestinationThrottle::onReply(int code, const smtp::EnhancedCode& enhanced,
                                                std::string_view text, std::string_view campaign,
                                                std::int64_t nowMs, std::int64_t sentAtMs) {
  if (rules_ == nullptr || code < 400) {
    return nullptr;
  }
  const ShapingRule* rule = rules_->evaluate(code, enhanced, text);
  if (rule != nullptr) {
    if (rule->action == ShapingAction::ScaleRate && rateFactor_ >= 1.0) {
      shapedBaseRate_ = std::max(1.0, observedRate(nowMs));
    }
    shaping_.apply(*rule, campaign, nowMs, sentAtMs);
    applyShaping(nowMs);
  }
  return rule;
}

Destination::Destination(net::EventLoop& loop, std::shared_ptr<const DestinationSpec> spec,
                         const DeliverySettings& settings, ResultSink& results)
    : loop_(loop),
      spec_(std::move(spec)),
      settings_(settings),
      results_(results),
      endpointFailed_(spec_->endpoints.size(), false),
      throttle_(spec_->limits, settings.shaping),
      timer_(std::make_unique<net::Timer>(loop)) {}

Destination::~Destination() = default;

std::int64_t Destination::nowMs() const {
  if (settings_.steadyMs) {
    return settings_.steadyMs();
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Destination::wakeAt(std::int64_t atMs, std::string_view limit) {
  if (timerAtMs_ != 0 && timerAtMs_ <= atMs) {
    return;  // already armed for then or earlier
  }
  if (timerAtMs_ == 0 && settings_.metrics != nullptr) {
    settings_.metrics->countThrottled(spec_->provider, limit);
  }
  timerAtMs_ = atMs;
  std::int64_t delay = std::max<std::int64_t>(0, atMs - nowMs());
  timer_->start(static_cast<std::uint64_t>(delay), 0, [this] {
    timerAtMs_ = 0;
    pump();
  });
}

void Destination::deferJob(DeliveryJob&& job, const std::string& reason) {
  DeliveryResult r;
  r.job = std::move(job);
  r.disposition = smtp::Disposition::Deferred;
  r.scope = smtp::FailureScope::None;
  r.reply = reason;
  results_.deliveryDone(std::move(r));
}

void Destination::shaped(const ShapingRule& rule, std::string_view campaign) {
  log(LogLevel::Warn, "{}: shaping rule '{}': {} for {} ms{}", spec_->label, rule.name,
      shapingActionName(rule.action), rule.durationMs,
      rule.action == ShapingAction::SuspendCampaign ? fmt::format(" (campaign {})", campaign)
                                                    : std::string());
  if (settings_.metrics == nullptr) {
    return;
  }
  settings_.metrics->countShapingAction(spec_->provider, shapingActionName(rule.action));
  if (rule.action == ShapingAction::SuspendDestination) {
    settings_.metrics->countSuspension(spec_->provider, "destination");
  } else if (rule.action == ShapingAction::SuspendCampaign) {
    settings_.metrics->countSuspension(spec_->provider, "campaign");
  }
}

void Destination::enqueue(std::vector<DeliveryJob>&& jobs) {
  for (auto& job : jobs) {
    pending_.push_back(std::move(job));
  }
  pump();
}

void Destination::useSpec(std::shared_ptr<const DestinationSpec> spec) {
  if (spec == spec_ || spec->key != spec_->key) {
    return;
  }
  bool sameEndpoints = spec->endpoints.size() == spec_->endpoints.size();
  for (std::size_t i = 0; sameEndpoints && i < spec->endpoints.size(); ++i) {
    sameEndpoints = spec->endpoints[i].str() == spec_->endpoints[i].str();
  }
  spec_ = std::move(spec);
  if (!sameEndpoints) {
    endpointFailed_.assign(spec_->endpoints.size(), false);
  }
}

void Destination::shutdown() {
  shuttingDown_ = true;
  // Jobs not yet on a connection are still in the store's due index (their leases end
  // with the process), so the next start sends them. Only jobs already in a session
  // finish here.
  pending_.clear();
  for (auto& c : connections_) {
    if (c->idle()) {
      c->quit();
    }
  }
}

void Destination::pump() {
  // Connections call back into us (ready, jobDone) while we submit; one pass at a time.
  if (pumping_) {
    return;
  }
  pumping_ = true;
  const std::int64_t now = nowMs();
  if (!pending_.empty() && !shuttingDown_) {
    if (throttle_.suspended(now)) {
      failPending("destination suspended by a shaping rule");
    } else if (throttle_.dead() && throttle_.connectionsAllowed(now) == 0 && connections_.empty()) {
      if (settings_.metrics != nullptr) {
        settings_.metrics->countSuspension(spec_->provider, "dead");
      }
      failPending("site unreachable (every recent connection failed); next probe in " +
                  std::to_string((throttle_.window().probeAtMs() - now) / 1000) + " s");
    }
  }
  std::string_view held;
  bool sendHeld = false;
  const auto perConnection =
      static_cast<std::size_t>(std::max(1, throttle_.messagesPerConnection()));
  for (auto& c : connections_) {
    while (!pending_.empty() && c->canAccept() && c->submitted() < perConnection) {
      const std::string& campaign = pending_.front().campaign->id();
      if (throttle_.campaignSuspended(campaign, now)) {
        DeliveryJob job = std::move(pending_.front());
        pending_.pop_front();
        deferJob(std::move(job),
                 "campaign " + campaign + " suspended at " + spec_->label + " by a shaping rule");
        continue;
      }
      if (!throttle_.trySend(now, held)) {
        sendHeld = true;
        break;
      }
      DeliveryJob job = std::move(pending_.front());
      pending_.pop_front();
      c->submit(std::move(job));
    }
    if (sendHeld) {
      break;
    }
  }
  bool openHeld = false;
  if (!shuttingDown_ && !spec_->endpoints.empty()) {
    std::string_view openLimit;
    while (!pending_.empty() && connections_.size() < pending_.size()) {
      if (!throttle_.tryOpen(static_cast<int>(connections_.size()), now, openLimit)) {
        // A full window waits for a connection to close; a rate waits for its time.
        openHeld = openLimit != "max_connections";
        if (openHeld && !sendHeld) {
          held = openLimit;
        }
        break;
      }
      openConnection();
    }
  }
  if (!pending_.empty() && (sendHeld || openHeld) && !shuttingDown_) {
    wakeAt(throttle_.nextStepMs(now), held);
  }
  if (spec_->endpoints.empty() && !pending_.empty()) {
    failPending("no address to deliver to");
  }
  pumping_ = false;
}

void Destination::openConnection() {
  const auto firstWorking = std::find(endpointFailed_.begin(), endpointFailed_.end(), false);
  const std::size_t i = firstWorking == endpointFailed_.end()
                            ? 0
                            : static_cast<std::size_t>(firstWorking - endpointFailed_.begin());
  const auto& endpoint = spec_->endpoints[i];
  std::string hostName = i < spec_->hostNames.size() ? spec_->hostNames[i] : std::string();
  smtp::TlsPolicy tls = spec_->tls;
  if (plaintextOnly_ && tls == smtp::TlsPolicy::Opportunistic) {
    tls = smtp::TlsPolicy::Disabled;
  }
  auto connection = std::make_unique<SmtpConnection>(loop_, endpoint, std::move(hostName), tls,
                                                     spec_->auth, settings_, *this);
  SmtpConnection* raw = connection.get();
  connections_.push_back(std::move(connection));
  raw->setOpenedAtMs(nowMs());
  results_.connectionOpened(spec_->provider);
  raw->start();
}

std::size_t Destination::endpointIndex(const SmtpConnection& connection) const {
  for (std::size_t i = 0; i < spec_->endpoints.size(); ++i) {
    if (spec_->endpoints[i].str() == connection.endpoint().str()) {
      return i;
    }
  }
  return spec_->endpoints.size();
}

void Destination::connectionReady(SmtpConnection& connection) {
  // The endpoint works again (rare: only look it up when some endpoint is marked).
  if (std::find(endpointFailed_.begin(), endpointFailed_.end(), true) != endpointFailed_.end()) {
    const std::size_t i = endpointIndex(connection);
    if (i < endpointFailed_.size()) {
      endpointFailed_[i] = false;
    }
  }
  const bool spent = connection.submitted() >=
                     static_cast<std::size_t>(std::max(1, throttle_.messagesPerConnection()));
  if (pending_.empty() || spent) {
    if ((shuttingDown_ || spent) && connection.idle()) {
      connection.quit();  // its closing lets pump() open a fresh one
    }
    if (pending_.empty()) {
      return;
    }
  }
  pump();
}

void Destination::jobDone(DeliveryResult&& result) {
  if (settings_.metrics != nullptr && result.latencySeconds > 0) {
    settings_.metrics->observeDeliveryLatency(spec_->provider, result.latencySeconds);
  }
  if (result.scope != smtp::FailureScope::Site) {
    throttle_.onSuccess();  // a rejected recipient is a success for the site
  }
  if (result.replyCode >= 400) {
    const std::int64_t now = nowMs();
    // submittedUs is steady-clock time; with an injected clock, count it as sent now.
    const std::int64_t sentAt = result.job.submittedUs != 0 && !settings_.steadyMs
                                    ? result.job.submittedUs / kUsPerMs
                                    : now;
    const ShapingRule* rule =
        throttle_.onReply(result.replyCode, result.enhanced,
                          summaryText(result.reply, result.replyCode, result.enhanced),
                          result.job.campaign->id(), now, sentAt);
    if (rule != nullptr) {
      shaped(*rule, result.job.campaign->id());
    }
  }
  results_.deliveryDone(std::move(result));
}

void Destination::withdraw(const std::vector<std::uint32_t>& campaigns) {
  std::erase_if(pending_, [&](DeliveryJob& job) {
    if (std::find(campaigns.begin(), campaigns.end(), job.id.campaign) == campaigns.end()) {
      return false;
    }
    DeliveryResult r;
    r.job = std::move(job);
    r.reply = "withdrawn: campaign no longer active";
    r.attempted = false;
    results_.deliveryDone(std::move(r));
    return true;
  });
}

void Destination::jobReturned(DeliveryJob&& job) {
  if (shuttingDown_) {
    return;  // like shutdown()'s pending jobs: still leased, back in the queue on restart
  }
  pending_.push_front(std::move(job));
}

void Destination::connectionFinished(SmtpConnection& connection, const std::string& error,
                                     smtp::FailureScope scope) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) {
    return;
  }
  // Destroy after the current callback chain has unwound: we are inside its call stack.
  std::shared_ptr<SmtpConnection> doomed(std::move(*it));
  connections_.erase(it);
  loop_.post([doomed] {});
  results_.connectionClosed(spec_->provider);

  if (!error.empty()) {
    log(LogLevel::Warn, "{} via {}: {}", spec_->label, connection.endpoint().str(), error);
  }
  if (connection.tlsFailed() && spec_->tls == smtp::TlsPolicy::Opportunistic) {
    // Its jobs came back through jobReturned(): retry them at once without TLS.
    log(LogLevel::Info, "{}: TLS handshake failed; retrying without TLS", spec_->label);
    plaintextOnly_ = true;
    if (!shuttingDown_) {
      pump();
    }
    if (drained() && onDrained) {
      onDrained();
    }
    return;
  }
  bool siteFailure = !connection.everReady() && !error.empty() &&
                     (scope == smtp::FailureScope::Site || scope == smtp::FailureScope::Connection);
  const smtp::Reply& siteReply = connection.siteReply();
  if (siteReply.code >= 400) {
    std::string scratch;
    const ShapingRule* rule =
        throttle_.onReply(siteReply.code, siteReply.enhanced, replyText(siteReply, scratch), {},
                          nowMs(), connection.openedAtMs());
    if (rule != nullptr) {
      shaped(*rule, {});
    }
  }
  if (connection.everReady() && scope == smtp::FailureScope::Site) {
    throttle_.onFailure(smtp::FailureScope::Site, nowMs());  // a 421 from a working site
  }
  if (siteFailure) {
    // Fail over to the next endpoint; when every endpoint has failed, give the jobs back
    // to the retry schedule rather than spinning on a dead site.
    const std::size_t i = endpointIndex(connection);
    if (i < endpointFailed_.size()) {
      endpointFailed_[i] = true;
    }
    if (std::find(endpointFailed_.begin(), endpointFailed_.end(), false) == endpointFailed_.end()) {
      // Every endpoint of the site failed: that is what the window counts.
      throttle_.onFailure(smtp::FailureScope::Site, nowMs());
      endpointFailed_.assign(endpointFailed_.size(), false);
      failPending(error);
    }
  }
  if (!shuttingDown_) {
    pump();
  }
  if (drained() && onDrained) {
    onDrained();
  }
}

void Destination::failPending(const std::string& error) {
  std::deque<DeliveryJob> jobs;
  jobs.swap(pending_);
  for (auto& job : jobs) {
    DeliveryResult r;
    r.job = std::move(job);
    r.disposition = smtp::Disposition::Deferred;
    r.scope = smtp::FailureScope::Site;
    r.reply = spec_->label + ": " + error;
    results_.deliveryDone(std::move(r));
  }
}

}  // namespace salvo::engine

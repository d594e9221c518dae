#include "engine/dispatcher.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <thread>

#include "engine/dns/cache.h"
#include "engine/log.h"

namespace salvo::engine {

namespace {

constexpr std::size_t kTakeBatch = 2000;        // jobs per takeDue call
constexpr std::uint64_t kPumpIntervalMs = 100;  // look for newly due jobs this often
constexpr std::uint64_t kGaugeIntervalMs = 1000;
// Results arrive a few at a time, thousands of times a second: each drain costs the control
// thread a wake-up and the writer a hand-off, so results are gathered this long first.
constexpr std::uint64_t kResultGatherMs = 2;
// A job handed back for its destination's cap is due again after the time that destination
// takes to drain to half its cap, within these bounds.
constexpr std::int64_t kReleaseDelayMs = 1000;
constexpr std::int64_t kMinReleaseDelayMs = 20;
constexpr std::int64_t kDrainWindowMs = 250;  // how often a destination's drain rate updates
// Jobs one destination may hold per connection it may open: enough to keep every
// connection's pipeline fed between two pumps.
constexpr std::int64_t kJobsPerConnection = 128;
constexpr std::int64_t kMinPerDestination = 256;
// A destination's share of the in-flight window: what it finishes in this long (at least
// its cap). Its ready queue holds the jobs over the cap, leased but not yet on its loop.
constexpr double kReadyMs = 1000;
constexpr std::int64_t kMinDnsTtlMs = 60'000;
constexpr std::int64_t kMaxDnsTtlMs = 3'600'000;

// A leased job going back to the queue without an attempt, unchanged until the caller
// sets its new due time or state.
queue::Outcome unattempted(queue::LeasedJob&& l) {
  queue::Outcome o;
  o.id = l.id;
  o.previous = l.record.state;
  o.record = std::move(l.record);
  o.attempted = false;
  return o;
}

std::string machineName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') {
    return "localhost";
  }
  return buf;
}

std::string domainOf(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : address.substr(at + 1);
}

// The reply's text as classification rules see it: the summary without its leading
// "NNN " and enhanced code.
std::string_view replyText(std::string_view summary, int code, const smtp::EnhancedCode& enhanced) {
  if (code != 0 && summary.size() >= 3 && summary.substr(0, 3) == std::to_string(code)) {
    summary.remove_prefix(std::min<std::size_t>(4, summary.size()));
    std::string e = enhanced.str();
    if (!e.empty() && summary.substr(0, e.size()) == e) {
      summary.remove_prefix(std::min(e.size() + 1, summary.size()));
    }
  }
  return summary;
}

metrics::Result resultOf(queue::JobState state) {
  switch (state) {
    case queue::JobState::Delivered:
      return metrics::Result::Delivered;
    case queue::JobState::Bounced:
      return metrics::Result::Bounced;
    case queue::JobState::Expired:
      return metrics::Result::Expired;
    case queue::JobState::Suppressed:
      return metrics::Result::Suppressed;
    default:
      return metrics::Result::Deferred;
  }
}

std::optional<EventType> eventOf(queue::JobState state) {
  switch (state) {
    case queue::JobState::Delivered:
      return EventType::Delivered;
    case queue::JobState::Deferred:
      return EventType::Deferred;
    case queue::JobState::Bounced:
      return EventType::Bounced;
    case queue::JobState::Expired:
      return EventType::Expired;
    case queue::JobState::Suppressed:
      return EventType::Suppressed;
    default:
      return std::nullopt;
  }
}

std::int64_t clampTtl(std::uint32_t seconds) {
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(seconds) * 1000, kMinDnsTtlMs,
                                  kMaxDnsTtlMs);
}

}  // namespace

bool applyLimitOverrides(const std::vector<campaigns::LimitOverrideConfig>& overrides,
                         const std::string& domain, const std::vector<std::string>& mxHosts,
                         DestinationLimits& limits) {
  for (const auto& o : overrides) {
    bool matches = false;
    if (!o.match.empty()) {
      matches = mxPatternMatches(o.match, domain);
    } else {
      for (const auto& host : mxHosts) {
        std::string h = host;
        std::transform(h.begin(), h.end(), h.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!h.empty() && h.back() == '.') {
          h.pop_back();
        }
        if (mxPatternMatches(o.mx, h)) {
          matches = true;
          break;
        }
      }
    }
    if (!matches) {
      continue;
    }
    std::string error;
    for (const auto& v : o.values) {
      setDestinationLimit(limits, v.key, v.value, error);  // checked by loadPolicy()
    }
    limits.initialConnections = std::min(limits.initialConnections, limits.maxConnections);
    return true;
  }
  return false;
}

bool loadPolicy(const campaigns::SalvoConfig& config, DispatcherOptions& options,
                campaigns::Diagnostics& diags) {
  bool ok = true;
  if (!config.policy.providers.empty()) {
    options.providers = ProviderTable::load(config.policy.providers, diags);
    ok = ok && options.providers.has_value();
  }
  if (!config.policy.bounceRules.empty()) {
    options.bounceRules = BounceClassifier::load(config.policy.bounceRules, diags);
    ok = ok && options.bounceRules.has_value();
  }
  if (!config.policy.shapingRules.empty()) {
    options.shapingRules = ShapingRules::load(config.policy.shapingRules, diags);
    ok = ok && options.shapingRules.has_value();
  }
  for (const auto& o : config.limits) {
    for (const auto& v : o.values) {
      DestinationLimits scratch;
      std::string error;
      if (!setDestinationLimit(scratch, v.key, v.value, error)) {
        diags.add(v.file, v.line, v.column, "limits: " + error, campaigns::kExitConfig);
        ok = false;
      }
    }
  }
  return ok;
}

Dispatcher::Dispatcher(const campaigns::SalvoConfig& config, queue::JobStore& store,
                       metrics::Metrics* metrics, DispatcherOptions options)
    : config_(config),
      store_(store),
      metrics_(metrics),
      options_(std::move(options)),
      routes_(config.routes),
      retry_(config.retry),
      classifier_(options_.bounceRules ? std::move(*options_.bounceRules) : BounceClassifier()),
      providers_(options_.providers ? std::move(*options_.providers) : ProviderTable()),
      shaping_(options_.shapingRules ? std::move(*options_.shapingRules) : ShapingRules()) {
  if (!options_.clock) {
    options_.clock = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  const auto& d = config.delivery;
  settings_.session.heloName = d.heloName.empty() ? machineName() : d.heloName;
  settings_.maxConnections = std::max(1, d.maxConnectionsPerDestination);
  settings_.messagesPerConnection = std::max(1, d.messagesPerConnection);
  settings_.connectTimeoutMs = d.connectTimeoutMs;
  settings_.idleTimeoutMs = d.idleTimeoutMs;
  // A quarter of the in-flight window: one destination can never starve the others, and a
  // busy one holds enough to keep its connections fed between scans.
  perDestinationCap_ = std::max({kMinPerDestination, kJobsPerConnection * settings_.maxConnections,
                                 static_cast<std::int64_t>(d.maxInFlight / 4)});
  applyDeliveryConfig(d, settings_);
  settings_.shaping = &shaping_;
  settings_.metrics = metrics_;
  baseLimits_ = providers_.defaults();
  baseLimits_.maxConnections = settings_.maxConnections;
  baseLimits_.initialConnections =
      std::min(baseLimits_.initialConnections, baseLimits_.maxConnections);
  baseLimits_.messagesPerConnection = settings_.messagesPerConnection;
  if (!settings_.tlsContext) {
    log(LogLevel::Error, "TLS disabled: {}", settings_.tlsContextError);
  }
}

Dispatcher::~Dispatcher() {
  // Timers and the resolver belong to the control loop: release them before it goes.
  pumpTimer_.reset();
  gaugeTimer_.reset();
  graceTimer_.reset();
  resolver_.reset();
}

int Dispatcher::run() {
  std::string error;
  if (options_.resolver) {
    resolver_ = options_.resolver(control_, error);
  } else {
    dns::AresOptions ares;
    ares.servers = config_.dnsServers;
    resolver_ = dns::AresResolver::create(control_, ares, error);
  }
  if (!resolver_) {
    log(LogLevel::Error, "DNS resolver: {}", error);
    return 78;
  }
  // MX and address answers (negative ones too) are cached for their TTL; equal MX
  // preferences come back shuffled.
  resolver_ = std::make_unique<dns::CachingResolver>(control_, std::move(resolver_),
                                                     [this] { return now(); });

  if (!options_.eventLogPath.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(options_.eventLogPath).parent_path(),
                                        ec);
    EventLogOptions eo;
    eo.path = options_.eventLogPath;
    events_ = EventLog::open(eo, error);
    if (!events_) {
      log(LogLevel::Error, "event log: {}", error);
      return 73;
    }
  }
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  int threads = config_.delivery.threads > 0 ? config_.delivery.threads : cores;
  // Signing is the costly part of a message: every core signs, whichever loop owns the
  // destination (one smarthost is one destination on one loop).
  renderPool_ = std::make_unique<RenderPool>(cores);
  settings_.renderPool = renderPool_.get();
  for (int i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, settings_, *this));
    workers_.back()->start();
  }
  writer_ = std::make_unique<queue::OutcomeWriter>(
      store_,
      [this](std::vector<queue::Outcome>&& outcomes, const queue::Status& status) {
        // Writer thread: add the hard bounces of this batch to the suppression list (a
        // synced write, kept off the control loop), then hand the batch back.
        if (status.isOk()) {
          writeSuppressions();
        }
        auto shared = std::make_shared<std::vector<queue::Outcome>>(std::move(outcomes));
        control_.post([this, shared, status] { committed(std::move(*shared), status); });
      },
      options_.groupCommit, [this] { sweepRetention(); });

  pumpTimer_ = std::make_unique<net::Timer>(control_);
  gaugeTimer_ = std::make_unique<net::Timer>(control_);
  graceTimer_ = std::make_unique<net::Timer>(control_);
  drainTimer_ = std::make_unique<net::Timer>(control_);
  pumpTimer_->start(0, kPumpIntervalMs, [this] { pump(); });
  gaugeTimer_->start(0, kGaugeIntervalMs, [this] { refreshGauges(); });
  net::SignalWatcher onInt(control_, SIGINT, [this] { beginShutdown(); });
  net::SignalWatcher onTerm(control_, SIGTERM, [this] { beginShutdown(); });

  log(LogLevel::Info, "salvo run: {} delivery loop(s), up to {} jobs in flight", threads,
      config_.delivery.maxInFlight);
  control_.run();

  // Commit what the loops reported before they stopped, then stop everything.
  for (auto& w : workers_) {
    w->stopAndJoin();
  }
  settings_.renderPool = nullptr;
  renderPool_.reset();  // its last tasks post to the stopped loops; those drop them
  drainResults();
  writer_->stop();
  // The writer posted its last commit notifications to the stopped control loop.
  control_.runPosted();
  summary_.batches = writer_->batches();
  writer_.reset();
  if (events_ && !events_->flush()) {
    log(LogLevel::Error, "event log: {}", events_->error());
  }
  refreshGauges();
  workers_.clear();
  return exitCode_;
}

void Dispatcher::stop() {
  control_.post([this] { beginShutdown(); });
}

void Dispatcher::releaseHeld(const std::string& site) {
  auto held = perDestination_.find(site);
  if (held != perDestination_.end() && --held->second <= 0) {
    perDestination_.erase(held);
  }
}

void Dispatcher::handOut(DeliveryJob&& job,
                         std::unordered_map<std::string, std::vector<DeliveryJob>>& batches) {
  ++perDestination_[job.site];
  route(std::move(job), batches);
}

void Dispatcher::handBackJob(std::vector<queue::Outcome>& handBack, queue::LeasedJob&& job,
                             std::int64_t dueMs) {
  handBack.emplace_back(unattempted(std::move(job))).record.dueMs = dueMs;
  handedBackDueMs_ = std::max(handedBackDueMs_, dueMs);
  ++summary_.handedBack;
  if (metrics_ != nullptr) {
    metrics_->countHandedBack();
  }
}

void Dispatcher::withdrawInactive(std::int64_t nowMs, std::vector<queue::Outcome>& handBack) {
  const std::uint64_t generation = store_.campaignStateGeneration();
  if (generation == campaignStateGeneration_) {
    return;
  }
  campaignStateGeneration_ = generation;
  std::vector<std::uint32_t> inactive;
  std::vector<std::uint32_t> newly;  // active at the last check: their jobs may be out
  for (const auto& [number, campaign] : campaigns_) {
    if (!store_.campaignActive(number)) {
      inactive.push_back(number);
      if (std::find(inactive_.begin(), inactive_.end(), number) == inactive_.end()) {
        newly.push_back(number);
      }
    }
  }
  inactive_ = std::move(inactive);
  if (newly.empty()) {
    return;
  }
  const auto withdrawn = [&](DeliveryJob& job) {
    if (std::find(newly.begin(), newly.end(), job.id.campaign) == newly.end()) {
      return false;
    }
    handBackJob(handBack, queue::LeasedJob{job.id, std::move(job.record)}, nowMs);
    return true;
  };
  for (auto& [site, queue] : ready_) {  // feedReady() drops the queues this empties
    std::erase_if(queue, withdrawn);
  }
  // Jobs waiting for their destination to resolve were counted against it already. The
  // entries stay (possibly empty) while their lookup runs, so no second lookup starts.
  for (auto& [name, jobs] : waiting_) {
    std::erase_if(jobs, [&](DeliveryJob& job) {
      const std::string site = job.site;
      if (!withdrawn(job)) {
        return false;
      }
      releaseHeld(site);
      return true;
    });
  }
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->loop().post([worker, newly] { worker->withdraw(newly); });
  }
}

void Dispatcher::feedReady(std::int64_t nowMs) {
  std::unordered_map<std::string, std::vector<DeliveryJob>> batches;
  std::vector<queue::Outcome> handBack;
  withdrawInactive(nowMs, handBack);
  for (auto it = ready_.begin(); it != ready_.end();) {
    const std::string& site = it->first;
    auto& queue = it->second;
    std::int64_t held = 0;
    if (auto h = perDestination_.find(site); h != perDestination_.end()) {
      held = h->second;
    }
    for (; held < perDestinationCap_ && !queue.empty(); ++held) {
      handOut(std::move(queue.front()), batches);
      queue.pop_front();
    }
    // A destination that slowed down keeps only its new share: the rest goes back to the
    // queue (newest first), so the window stays open for the others.
    std::int64_t excess = load(site) - shareOf(site, nowMs);
    if (excess > 0 && !queue.empty()) {
      const std::int64_t due = nowMs + releaseDelayMs(site, nowMs);
      for (; excess > 0 && !queue.empty(); --excess) {
        auto& job = queue.back();
        handBackJob(handBack, queue::LeasedJob{job.id, std::move(job.record)}, due);
        queue.pop_back();
      }
    }
    it = queue.empty() ? ready_.erase(it) : std::next(it);
  }
  for (auto& [name, jobs] : batches) {
    dispatch(resolved_[name].spec, std::move(jobs));
  }
  if (!handBack.empty()) {
    writer_->push(std::move(handBack));
  }
}

void Dispatcher::pump() {
  if (stopping_) {
    return;
  }
  feedReady(now());
  std::int64_t room = static_cast<std::int64_t>(config_.delivery.maxInFlight) - inFlight_;
  if (room <= 0) {
    return;
  }
  auto limit = std::min<std::size_t>(kTakeBatch, static_cast<std::size_t>(room));
  if (!stalledOn_.empty()) {
    const std::int64_t t0 = now();
    bool drained = false;
    std::int64_t free = 0;
    for (const auto& name : stalledOn_) {
      const std::int64_t share = shareOf(name, t0);
      const std::int64_t held = load(name);
      drained = drained || held <= share / 2;
      free += std::max<std::int64_t>(0, share - held);
    }
    if (!drained && t0 < stalledUntilMs_) {
      return;
    }
    if (drained && t0 < stalledUntilMs_) {
      // The head of the due index is still theirs: take what they have room for rather
      // than a batch that would partly go back.
      limit = std::min(limit, static_cast<std::size_t>(free));
    }
    stalledOn_.clear();
  }
  std::vector<queue::LeasedJob> leased;
  auto status = store_.takeDue(now(), limit, leased);
  if (!status.isOk()) {
    log(LogLevel::Error, "queue: {}", status.message());
    exitCode_ = 74;
    beginShutdown();
    return;
  }
  if (leased.empty()) {
    // Jobs handed back by the head-of-line limit are due again shortly: not idle yet.
    if (options_.untilIdle && inFlight_ == 0 && now() >= handedBackDueMs_) {
      log(LogLevel::Info, "salvo run: idle (nothing due, nothing in flight)");
      beginShutdown();
    }
    return;
  }
  inFlight_ += static_cast<std::int64_t>(leased.size());
  std::unordered_map<std::string, std::vector<DeliveryJob>> batches;
  std::vector<queue::Outcome> handBack;
  std::vector<std::string> capped;  // destinations that had jobs handed back for their cap
  std::int64_t t = now();
  const std::int64_t leasedAtUs = std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count();
  for (auto& l : leased) {
    if (l.record.state == queue::JobState::Deferred) {
      ++leasedDeferred_;
    }
    // The suppression list may have grown since submit: check again before sending.
    if (auto s = store_.suppressed(l.record.recipient)) {
      auto& o = handBack.emplace_back(unattempted(std::move(l)));
      o.record.state = queue::JobState::Suppressed;
      o.record.lastReply = "suppressed: " + s->reason;
      continue;
    }
    std::string error;
    auto campaign = campaignFor(l.id.campaign, error);
    if (campaign && campaign->rate() && campaign->rate()->messages > 0 &&
        campaign->rate()->periodMs > 0) {
      // The campaign's own rate, on top of every destination limit: a job over it goes
      // back to the queue, due when the campaign may send again.
      auto& limiter = campaignRates_[l.id.campaign];
      if (!limiter) {
        limiter =
            std::make_unique<RateLimiter>(static_cast<double>(campaign->rate()->messages) * 1000.0 /
                                          static_cast<double>(campaign->rate()->periodMs));
      }
      if (!limiter->tryAcquire(t * 1000)) {
        // Successive slots for the jobs handed back, so they come back one at a time
        // rather than all at the next slot.
        const double intervalMs = static_cast<double>(campaign->rate()->periodMs) /
                                  static_cast<double>(campaign->rate()->messages);
        auto& last = campaignSlotMs_[l.id.campaign];
        std::int64_t due = std::max((limiter->nextAllowedUs(t * 1000) + 999) / 1000,
                                    last + static_cast<std::int64_t>(std::ceil(intervalMs)));
        last = due;
        handBackJob(handBack, std::move(l), due);
        continue;
      }
    }
    std::string destination = siteOf(l.record.recipient);
    if (!campaign) {
      DeliveryJob job{l.id, std::move(l.record), campaign, leasedAtUs, 0, std::move(destination)};
      finishLocally(std::move(job), smtp::Disposition::Deferred, error);
      continue;
    }
    auto held = perDestination_.find(destination);
    if (held != perDestination_.end() && held->second >= perDestinationCap_) {
      if (load(destination) < shareOf(destination, t)) {
        ready_[destination].push_back(
            DeliveryJob{l.id, std::move(l.record), campaign, leasedAtUs, 0, destination});
        continue;
      }
      if (std::find(capped.begin(), capped.end(), destination) == capped.end()) {
        capped.push_back(destination);
      }
      // Due again about when the destination will have drained to half its share at the
      // rate it has been finishing jobs (a fast one in tens of milliseconds, a slow one
      // after at most kReleaseDelayMs), so a fast destination is not left idle.
      handBackJob(handBack, std::move(l), t + releaseDelayMs(destination, t));
      continue;
    }
    handOut(DeliveryJob{l.id, std::move(l.record), campaign, leasedAtUs, 0, std::move(destination)},
            batches);
  }
  for (auto& [name, jobs] : batches) {
    dispatch(resolved_[name].spec, std::move(jobs));
  }
  bool handedOut = handBack.size() < leased.size();
  if (!handBack.empty()) {
    writer_->push(std::move(handBack));
  }
  // The head of the due index belongs to saturated destinations: scanning again now would
  // only hand the same jobs back (three writes each). Wait until one of them has drained
  // to half its share, or the handed-back jobs are due again. A destination that drains
  // that far within kReleaseDelayMs is waited for even when others took part of the batch
  // (they hold a second's work in their ready queues); a slower one only when it took the
  // whole batch, so it never holds back the others for long.
  if (handedOut) {
    std::erase_if(capped, [&](const std::string& name) {
      return releaseDelayMs(name, t) >= kReleaseDelayMs;
    });
  }
  stalledOn_ = std::move(capped);
  if (!stalledOn_.empty()) {
    stalledUntilMs_ = std::min(t + kReleaseDelayMs, handedBackDueMs_);
  }
  // Only when this batch mostly fed destinations: a batch handed back (mostly) would make
  // the next scan find the same saturated destination again; the timer or the next
  // commit scans again.
  if (leased.size() == kTakeBatch && handBack.size() * 2 < leased.size()) {
    // More may be due right now: keep the pipeline full without waiting for the timer.
    control_.post([this] { pump(); });
  }
}

DestinationLimits Dispatcher::limitsFor(const std::string& domain,
                                        const std::vector<std::string>& mxHosts,
                                        const Provider* provider) const {
  DestinationLimits limits = provider != nullptr ? provider->limits : baseLimits_;
  applyLimitOverrides(config_.limits, domain, mxHosts, limits);
  return limits;
}

std::string Dispatcher::providerOf(const std::string& destination,
                                   const std::string& mxHost) const {
  if (mxHost.empty() || destination.rfind("route:", 0) == 0) {
    return std::string(kOtherProvider);
  }
  return providers_.lookup(mxHost).name;
}

void Dispatcher::writeSuppressions() {
  std::vector<queue::Suppression> entries;
  {
    std::lock_guard<std::mutex> lock(suppressMutex_);
    entries.swap(toSuppress_);
  }
  if (entries.empty()) {
    return;
  }
  auto status = store_.addSuppressions(entries);
  if (!status.isOk()) {
    log(LogLevel::Error, "suppression list: cannot add {} hard bounce(s): {}", entries.size(),
        status.message());
    return;
  }
  suppressedAdded_.fetch_add(entries.size());
}

std::shared_ptr<const campaigns::Campaign> Dispatcher::campaignFor(std::uint32_t number,
                                                                   std::string& error) {
  auto it = campaigns_.find(number);
  if (it != campaigns_.end()) {
    return it->second;
  }
  auto record = store_.campaign(number);
  if (!record) {
    error = "campaign #" + std::to_string(number) + " is missing from the queue";
    return nullptr;
  }
  auto campaign = campaigns::Campaign::deserialize(record->spec, error);
  if (!campaign) {
    error = "campaign '" + record->name + "' cannot be loaded: " + error;
    log(LogLevel::Error, "{}", error);
    return nullptr;
  }
  campaigns_[number] = campaign;
  return campaign;
}

void Dispatcher::sweepRetention() {
  const std::int64_t retentionMs = static_cast<std::int64_t>(config_.queue.retentionSec) * 1000;
  if (retentionMs <= 0) {
    return;
  }
  // Writer thread. Often enough to purge close to the deadline, rarely enough to cost
  // nothing: a sweep reads every campaign's counters.
  const std::int64_t t = now();
  if (t - lastSweepMs_ < std::clamp<std::int64_t>(retentionMs / 4, 250, 60'000)) {
    return;
  }
  lastSweepMs_ = t;
  std::vector<std::string> purged;
  auto st = store_.sweepFinished(t, retentionMs, purged);
  for (const auto& name : purged) {
    log(LogLevel::Info, "retention: purged the job records of finished campaign '{}'", name);
  }
  if (!st.isOk()) {
    log(LogLevel::Error, "retention: {}", st.message());
  }
}

void Dispatcher::noteFinished(const std::string& site, std::int64_t nowMs) {
  auto& d = drain_[site];
  if (d.windowStartMs == 0) {
    d.windowStartMs = nowMs;
  }
  ++d.finished;
  if (nowMs - d.windowStartMs >= kDrainWindowMs) {
    d.perSecond =
        static_cast<double>(d.finished) * 1000.0 / static_cast<double>(nowMs - d.windowStartMs);
    d.windowStartMs = nowMs;
    d.finished = 0;
  }
}

double Dispatcher::drainPerSecond(const std::string& site, std::int64_t nowMs) const {
  auto it = drain_.find(site);
  if (it == drain_.end()) {
    return 0;
  }
  double perSecond = it->second.perSecond;
  if (perSecond <= 0 && nowMs > it->second.windowStartMs) {
    perSecond = static_cast<double>(it->second.finished) * 1000.0 /
                static_cast<double>(nowMs - it->second.windowStartMs);
  }
  return perSecond;
}

std::int64_t Dispatcher::load(const std::string& site) const {
  std::int64_t n = 0;
  if (auto it = perDestination_.find(site); it != perDestination_.end()) {
    n += it->second;
  }
  if (auto it = ready_.find(site); it != ready_.end()) {
    n += static_cast<std::int64_t>(it->second.size());
  }
  return n;
}

std::int64_t Dispatcher::shareOf(const std::string& site, std::int64_t nowMs) const {
  const auto window = static_cast<std::int64_t>(config_.delivery.maxInFlight);
  const auto second = static_cast<std::int64_t>(drainPerSecond(site, nowMs) * kReadyMs / 1000.0);
  return std::max(perDestinationCap_, std::min(second, window));
}

std::int64_t Dispatcher::releaseDelayMs(const std::string& site, std::int64_t nowMs) const {
  if (drain_.find(site) == drain_.end()) {
    return kMinReleaseDelayMs;  // nothing finished yet: look again soon
  }
  double perSecond = drainPerSecond(site, nowMs);
  if (perSecond <= 0) {
    return kReleaseDelayMs;
  }
  auto ms = static_cast<std::int64_t>(static_cast<double>(shareOf(site, nowMs) * 3 / 4) * 1000.0 /
                                      perSecond);
  return std::clamp(ms, kMinReleaseDelayMs, kReleaseDelayMs);
}

std::string mxSiteKey(std::vector<std::string> hosts) {
  for (auto& h : hosts) {
    std::transform(h.begin(), h.end(), h.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!h.empty() && h.back() == '.') {
      h.pop_back();
    }
  }
  std::sort(hosts.begin(), hosts.end());
  hosts.erase(std::unique(hosts.begin(), hosts.end()), hosts.end());
  std::string key = "mx:";
  for (std::size_t h = 0; h < hosts.size(); ++h) {
    key += (h ? "," : "") + hosts[h];
  }
  return key;
}

std::string Dispatcher::siteOf(const std::string& recipient) const {
  std::string name = destinationName(recipient);
  auto it = resolved_.find(name);
  return it == resolved_.end() ? name : it->second.spec->key;
}

std::string Dispatcher::destinationName(const std::string& recipient) const {
  std::string domain = domainOf(recipient);
  const campaigns::RouteConfig* r = routes_.match(domain);
  if (r != nullptr) {
    return "route:" + r->host + ":" + std::to_string(r->port);
  }
  return domain;
}

void Dispatcher::route(DeliveryJob&& job,
                       std::unordered_map<std::string, std::vector<DeliveryJob>>& batches) {
  std::string domain = domainOf(job.record.recipient);
  std::string name = destinationName(job.record.recipient);
  const campaigns::RouteConfig* r = routes_.match(domain);
  auto it = resolved_.find(name);
  if (it != resolved_.end() && it->second.expiresMs > now()) {
    batches[name].push_back(std::move(job));
    return;
  }
  auto& waiting = waiting_[name];
  waiting.push_back(std::move(job));
  if (waiting.size() == 1) {
    if (r != nullptr) {
      resolveRoute(name, domain, *r);
    } else {
      resolveDomain(domain);
    }
  }
}

void Dispatcher::resolveRoute(const std::string& key, const std::string& domain,
                              const campaigns::RouteConfig& route) {
  resolver_->resolveAddresses(
      route.host, route.port,
      [this, key, domain, host = route.host,
       tls = tlsPolicyFor(route.tls.value_or(config_.delivery.tls)),
       auth = smtp::AuthSettings{route.authUser, route.authPassword, route.allowPlaintextAuth}](
          dns::AddressAnswer answer) {
        if (answer.rcode != dns::Rcode::Ok || answer.endpoints.empty()) {
          destinationFailed(
              key, smtp::Disposition::Deferred,
              "route host " + host + ": " +
                  (answer.error.empty() ? dns::rcodeName(answer.rcode) : answer.error));
          return;
        }
        auto spec = std::make_shared<DestinationSpec>();
        spec->key = key;
        spec->label = key;
        spec->endpoints = std::move(answer.endpoints);
        spec->hostNames.assign(spec->endpoints.size(), host);
        spec->tls = tls;
        spec->auth = auth;
        spec->limits = limitsFor(domain, {}, nullptr);
        // A route's address is configuration: keep it for the whole run.
        destinationResolved(key, spec, kMaxDnsTtlMs * 24);
      });
}

void Dispatcher::resolveDomain(const std::string& domain) {
  resolver_->resolveMx(domain, [this, domain](dns::MxAnswer mx) {
    std::vector<std::string> hosts;
    switch (mx.rcode) {
      case dns::Rcode::Ok:
        for (const auto& r : mx.records) {
          hosts.push_back(r.host);
        }
        break;
      case dns::Rcode::NoData:
        hosts.push_back(domain);  // implicit MX (RFC 5321 §5.1)
        break;
      case dns::Rcode::NxDomain:
        destinationFailed(domain, smtp::Disposition::Bounced,
                          "domain " + domain + " does not exist (NXDOMAIN)");
        return;
      case dns::Rcode::NullMx:
        destinationFailed(domain, smtp::Disposition::Bounced,
                          "domain " + domain + " accepts no mail (null MX, RFC 7505)");
        return;
      case dns::Rcode::TempFail:
        destinationFailed(domain, smtp::Disposition::Deferred,
                          "MX lookup for " + domain + " failed: " + mx.error);
        return;
    }
    // Resolve every MX host's addresses; the endpoint list keeps MX preference order.
    struct Gather {
      std::vector<std::vector<net::Endpoint>> perHost;
      std::size_t remaining = 0;
      std::int64_t ttlMs = 0;
    };
    auto gather = std::make_shared<Gather>();
    gather->perHost.resize(hosts.size());
    gather->remaining = hosts.size();
    gather->ttlMs = clampTtl(mx.ttl);
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      resolver_->resolveAddresses(
          hosts[i], config_.delivery.mxPort,
          [this, domain, hosts, gather, i](dns::AddressAnswer answer) {
            if (answer.rcode == dns::Rcode::Ok) {
              gather->perHost[i] = std::move(answer.endpoints);
              gather->ttlMs = std::min(gather->ttlMs, clampTtl(answer.ttl));
            }
            if (--gather->remaining > 0) {
              return;
            }
            auto spec = std::make_shared<DestinationSpec>();
            spec->key = mxSiteKey(hosts);
            for (std::size_t h = 0; h < hosts.size(); ++h) {
              for (auto& e : gather->perHost[h]) {
                spec->endpoints.push_back(e);
                spec->hostNames.push_back(hosts[h]);
              }
            }
            spec->label = domain + " (" + spec->key + ")";
            spec->tls = tlsPolicyFor(config_.delivery.tls);
            const Provider& provider = providers_.lookup(hosts);
            spec->provider = provider.name;
            spec->limits =
                limitsFor(domain, hosts, provider.name == kOtherProvider ? nullptr : &provider);
            if (spec->endpoints.empty()) {
              destinationFailed(domain, smtp::Disposition::Deferred,
                                "no address found for the MX hosts of " + domain);
              return;
            }
            destinationResolved(domain, spec, gather->ttlMs);
          });
    }
  });
}

void Dispatcher::destinationResolved(const std::string& name,
                                     std::shared_ptr<const DestinationSpec> spec,
                                     std::int64_t ttlMs) {
  resolved_[name] = Resolved{spec, now() + ttlMs};
  auto it = waiting_.find(name);
  if (it == waiting_.end()) {
    return;
  }
  auto jobs = std::move(it->second);
  waiting_.erase(it);
  if (stopping_ || jobs.empty()) {
    // Abandoned (still leased, returned to the queue on the next start), or all withdrawn.
    return;
  }
  dispatch(spec, std::move(jobs));
}

void Dispatcher::destinationFailed(const std::string& name, smtp::Disposition disposition,
                                   const std::string& error) {
  auto it = waiting_.find(name);
  if (it == waiting_.end()) {
    return;
  }
  auto jobs = std::move(it->second);
  waiting_.erase(it);
  log(LogLevel::Warn, "{}: {} ({} job(s))", name, error, jobs.size());
  for (auto& job : jobs) {
    finishLocally(std::move(job), disposition, error);
  }
}

void Dispatcher::dispatch(const std::shared_ptr<const DestinationSpec>& spec,
                          std::vector<DeliveryJob>&& jobs) {
  // Pin each destination to one loop so its state needs no locks.
  std::size_t index = std::hash<std::string>{}(spec->key) % workers_.size();
  Worker* worker = workers_[index].get();
  auto shared = std::make_shared<std::vector<DeliveryJob>>(std::move(jobs));
  worker->loop().post([worker, spec, shared] { worker->deliver(spec, std::move(*shared)); });
}

void Dispatcher::finishLocally(DeliveryJob&& job, smtp::Disposition disposition,
                               const std::string& reply) {
  DeliveryResult r;
  r.job = std::move(job);
  r.disposition = disposition;
  r.scope = smtp::FailureScope::Site;
  r.reply = reply;
  deliveryDone(std::move(r));
}

void Dispatcher::deliveryDone(DeliveryResult&& result) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(resultsMutex_);
    wake = results_.empty();
    results_.push_back(std::move(result));
  }
  if (wake) {
    control_.post([this] {
      if (!drainTimer_->active()) {
        drainTimer_->start(kResultGatherMs, 0, [this] { drainResults(); });
      }
    });
  }
}

void Dispatcher::connectionOpened(const std::string& provider) {
  if (metrics_ != nullptr) {
    metrics_->connectionOpened(provider);
  }
}

void Dispatcher::connectionClosed(const std::string& provider) {
  if (metrics_ != nullptr) {
    metrics_->connectionClosed(provider);
  }
}

void Dispatcher::drainResults() {
  std::vector<DeliveryResult> results;
  {
    std::lock_guard<std::mutex> lock(resultsMutex_);
    results.swap(results_);
  }
  if (results.empty()) {
    return;
  }
  std::int64_t t = now();
  std::vector<queue::Outcome> outcomes;
  outcomes.reserve(results.size());
  std::vector<queue::Suppression> hardBounces;
  for (auto& r : results) {
    releaseHeld(r.job.site);
    if (!r.attempted) {  // withdrawn unsent: back as it was leased, due now
      handBackJob(outcomes, queue::LeasedJob{r.job.id, std::move(r.job.record)}, t);
      continue;
    }
    if (options_.onResult) {
      options_.onResult(r);
    }
    std::string destination = destinationName(r.job.record.recipient);
    noteFinished(r.job.site, t);
    AttemptInfo info;
    info.provider = providerOf(destination, r.mxHost);
    info.mxHost = std::move(r.mxHost);
    info.tls = r.tls;
    info.replyCode = r.replyCode;
    info.enhanced = r.enhanced.str();
    auto spec = resolved_.find(destination);
    info.destination =
        spec != resolved_.end() && spec->second.spec ? spec->second.spec->label : destination;
    if (metrics_ != nullptr && r.replyCode != 0) {
      metrics_->countReply(info.provider, r.replyCode);
    }
    queue::Outcome o;
    o.id = r.job.id;
    o.previous = r.job.record.state;
    o.record = std::move(r.job.record);
    o.record.attempts += 1;
    o.record.lastReply = std::move(r.reply);
    if (r.disposition != smtp::Disposition::Delivered) {
      BounceClass c = classifier_.classify(r.replyCode, r.enhanced,
                                           replyText(o.record.lastReply, r.replyCode, r.enhanced));
      info.category = bounceCategoryName(c.category);
      info.hard = r.disposition == smtp::Disposition::Bounced && c.hard;
    }
    switch (r.disposition) {
      case smtp::Disposition::Delivered:
        o.record.state = queue::JobState::Delivered;
        break;
      case smtp::Disposition::Bounced:
        o.record.state = queue::JobState::Bounced;
        if (info.hard) {
          hardBounces.push_back(queue::Suppression{
              o.record.recipient, "hard bounce (" + info.category + "): " + o.record.lastReply, t});
        }
        break;
      case smtp::Disposition::Deferred: {
        // The campaign's own retry keys (its `retry:`) over the daemon's schedule.
        const RetrySchedule retry =
            r.job.campaign ? retry_.overriddenBy(r.job.campaign->retry()) : retry_;
        if (retry.expired(o.record.createdMs, t)) {
          o.record.state = queue::JobState::Expired;
          info.category = bounceCategoryName(BounceCategory::MessageExpired);
        } else {
          o.record.state = queue::JobState::Deferred;
          // Jitter from the job's identity and attempt: jobs deferred together (a site
          // that was down) come back spread out, and a replay gives the same schedule.
          std::uint64_t seed = (static_cast<std::uint64_t>(o.id.campaign) << 40) ^ o.id.seq ^
                               (static_cast<std::uint64_t>(o.record.attempts) << 56);
          o.record.dueMs =
              t + retry.jitteredDelayMs(o.record.attempts, RetrySchedule::unitFromSeed(seed));
        }
        break;
      }
    }
    attemptInfo_[o.id] = std::move(info);
    outcomes.push_back(std::move(o));
  }
  if (!hardBounces.empty()) {
    // Before the outcomes: the writer adds them right after committing the batch.
    std::lock_guard<std::mutex> lock(suppressMutex_);
    for (auto& h : hardBounces) {
      toSuppress_.push_back(std::move(h));
    }
  }
  writer_->push(std::move(outcomes));
  feedReady(t);
}

void Dispatcher::committed(std::vector<queue::Outcome>&& outcomes, const queue::Status& status) {
  if (!status.isOk()) {
    // The jobs stay leased; the next start returns them to the queue. Stop: a queue we
    // cannot write is not one we may keep delivering from.
    log(LogLevel::Error, "queue: cannot commit outcomes: {}", status.message());
    exitCode_ = 74;
    beginShutdown();
    return;
  }
  if (metrics_ != nullptr) {
    metrics_->countOutcomeBatch();
  }
  std::int64_t t = now();
  for (const auto& o : outcomes) {
    if (o.previous == queue::JobState::Deferred) {
      --leasedDeferred_;
    }
    if (!o.attempted && o.record.state != queue::JobState::Suppressed) {
      continue;  // handed back unattempted (head-of-line limit, campaign rate, pause)
    }
    switch (o.record.state) {
      case queue::JobState::Delivered:
        ++summary_.delivered;
        break;
      case queue::JobState::Deferred:
        ++summary_.deferred;
        break;
      case queue::JobState::Bounced:
        ++summary_.bounced;
        break;
      case queue::JobState::Expired:
        ++summary_.expired;
        break;
      default:
        break;
    }
    recordCommitted(o, t);
  }
  summary_.suppressed = suppressedAdded_.load();
  inFlight_ -= static_cast<std::int64_t>(outcomes.size());
  if (inFlight_ == 0 && options_.untilIdle && !stopping_) {
    pump();
  } else if (!stopping_ &&
             inFlight_ < static_cast<std::int64_t>(config_.delivery.maxInFlight) / 2) {
    pump();
  }
}

void Dispatcher::recordCommitted(const queue::Outcome& o, std::int64_t t) {
  AttemptInfo info;
  auto it = attemptInfo_.find(o.id);
  if (it != attemptInfo_.end()) {
    info = std::move(it->second);
    attemptInfo_.erase(it);
  } else {
    info.provider = std::string(kOtherProvider);
    info.destination = destinationName(o.record.recipient);
  }
  std::string campaign;
  auto c = campaigns_.find(o.id.campaign);
  if (c != campaigns_.end()) {
    campaign = c->second->id();
  } else if (auto record = store_.campaign(o.id.campaign)) {
    campaign = record->name;
  } else {
    campaign = "c" + std::to_string(o.id.campaign);
  }
  metrics::Result result = resultOf(o.record.state);
  if (metrics_ != nullptr) {
    metrics_->countMessages(result, campaign, info.provider);
    if (o.attempted && o.record.attempts >= 2) {
      metrics_->countRetry(info.provider);
    }
    if (o.record.state == queue::JobState::Bounced || o.record.state == queue::JobState::Expired) {
      metrics_->countBounce(info.provider, info.category, info.hard);
    } else if (o.record.state == queue::JobState::Deferred) {
      metrics_->countDeferral(info.provider, info.category);
    }
    if (isTerminal(o.record.state)) {
      metrics_->observeTimeInQueue(result, static_cast<double>(t - o.record.createdMs) / 1000.0);
    }
  }
  auto type = eventOf(o.record.state);
  if (!events_ || !type) {
    return;
  }
  DeliveryEvent e;
  e.type = *type;
  e.timeMs = t;
  e.campaign = std::move(campaign);
  e.recipient = o.record.recipient;
  e.destination = std::move(info.destination);
  e.mxHost = std::move(info.mxHost);
  e.tls = info.tls;
  e.replyCode = info.replyCode;
  e.enhanced = std::move(info.enhanced);
  e.reply = o.record.lastReply;
  e.category = std::move(info.category);
  e.hard = info.hard;
  e.attempt = o.record.attempts;
  e.queuedMs = o.record.createdMs;
  events_->append(std::move(e));
}

void Dispatcher::refreshGauges() {
  if (metrics_ == nullptr) {
    return;
  }
  std::int64_t queued = 0;
  std::int64_t deferred = 0;
  for (const auto& c : store_.campaigns()) {
    auto counts = store_.counts(c.number);
    queued += counts.queued;
    deferred += counts.deferred;
  }
  // The store counts a leased job in the state it was leased from; report it as in flight.
  std::int64_t leasedQueued = inFlight_ - leasedDeferred_;
  metrics_->setQueueDepth(std::max<std::int64_t>(0, queued - leasedQueued),
                          std::max<std::int64_t>(0, deferred - leasedDeferred_), inFlight_);
}

void Dispatcher::beginShutdown() {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  pumpTimer_->stop();
  // Jobs in ready queues never reached a connection: they are still in the store's due
  // index (their leases end with the process), so the next start sends them.
  ready_.clear();
  log(LogLevel::Info, "salvo run: stopping ({} job(s) in flight)", inFlight_);
  workersDrained_ = 0;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->loop().post([this, worker] {
      worker->shutdown([this] {
        control_.post([this] {
          if (++workersDrained_ == static_cast<int>(workers_.size())) {
            finishShutdown();
          }
        });
      });
    });
  }
  graceTimer_->start(options_.stopGraceMs, 0, [this] {
    log(LogLevel::Warn, "salvo run: connections still busy after {} ms; stopping anyway",
        options_.stopGraceMs);
    finishShutdown();
  });
}

void Dispatcher::finishShutdown() {
  graceTimer_->stop();
  drainTimer_->stop();
  gaugeTimer_->stop();
  control_.stop();
}

}  // namespace salvo::engine

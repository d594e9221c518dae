// Dispatcher: the daemon's control loop, joining the queue and the delivery loops.
// Contract: runs on the thread that calls run(). It takes due jobs from the JobStore
// (bounded by maxInFlight), resolves each recipient domain to a destination (a configured
// route, or the domain's MX hosts through the Resolver), hands jobs to the worker loop the
// destination is pinned to, turns results into queue outcomes (retry schedule, expiry) and
// gives them to the single OutcomeWriter thread, which group-commits them. It never does a
// synced write itself and never blocks a loop.
// Policy: every failed attempt is classified (BounceClassifier); hard bounces are added to
// the suppression list by the writer thread right after their batch commits; deferrals
// come back on the jittered retry schedule. Destinations get their provider (by MX host)
// and limits (provider limits, then the first matching `limits` override); a campaign's
// `rate` is enforced here by handing jobs back with successive due times. On commit each
// outcome is counted in the labelled metrics and appended to the event log.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "campaigns/config.h"
#include "engine/bounce_classifier.h"
#include "engine/delivery.h"
#include "engine/dns/resolver.h"
#include "engine/event_log.h"
#include "engine/net/loop.h"
#include "engine/provider_table.h"
#include "engine/rate_limiter.h"
#include "engine/render_pool.h"
#include "engine/retry_schedule.h"
#include "engine/route_table.h"
#include "engine/shaping_rules.h"
#include "engine/worker.h"
#include "metrics/metrics.h"
#include "queue/outcome_writer.h"
#include "queue/store.h"

namespace salvo::engine {

struct DispatcherOptions {
  bool untilIdle = false;
  // Wall-clock milliseconds; injected so tests can move time.
  std::function<std::int64_t()> clock;
  // Creates the resolver on the control loop; default: c-ares with the config's servers.
  std::function<std::unique_ptr<dns::Resolver>(net::EventLoop&, std::string& error)> resolver;
  // How long a graceful stop waits for busy connections before giving up.
  std::uint64_t stopGraceMs = 10'000;
  // Outcome group commit: one synced batch per maxBatch outcomes or maxDelayMs.
  queue::GroupCommit groupCommit;
  // Policy tables; default: the shipped ones.
  std::optional<BounceClassifier> bounceRules;
  std::optional<ProviderTable> providers;
  std::optional<ShapingRules> shapingRules;
  // The per-recipient event log (<data_dir>/events/events.jsonl); "" = none.
  std::string eventLogPath;
  // Called on the control loop for each delivery result before it becomes an outcome
  // (`salvo bench` collects latencies with it); empty = none.
  std::function<void(const DeliveryResult&)> onResult;
};

// Loads the policy files the configuration names (providers, bounce rules, shaping rules)
// into `options`, and checks every `limits` override's keys and values. false after
// adding every problem to `diags` (file:line:column, exit 78).
bool loadPolicy(const campaigns::SalvoConfig& config, DispatcherOptions& options,
                campaigns::Diagnostics& diags);

// Applies the first override matching a destination (its recipient `domain` against
// `match`, or any of its `mxHosts` against `mx`) to `limits`; false when none matches.
// The destination key of an MX host set: "mx:" and the host names lowercased, without a
// final dot, sorted, deduplicated and joined by ',' (so shuffled ties and other domains
// served by the same hosts give the same key).
std::string mxSiteKey(std::vector<std::string> hosts);

bool applyLimitOverrides(const std::vector<campaigns::LimitOverrideConfig>& overrides,
                         const std::string& domain, const std::vector<std::string>& mxHosts,
                         DestinationLimits& limits);

struct RunSummary {
  std::uint64_t delivered = 0;
  std::uint64_t deferred = 0;
  std::uint64_t bounced = 0;
  std::uint64_t expired = 0;
  std::uint64_t suppressed = 0;  // hard bounces added to the suppression list
  std::uint64_t batches = 0;
  std::uint64_t handedBack = 0;  // leased jobs returned to the queue unattempted
};

class Dispatcher : public ResultSink {
 public:
  Dispatcher(const campaigns::SalvoConfig& config, queue::JobStore& store,
             metrics::Metrics* metrics, DispatcherOptions options);
  ~Dispatcher() override;

  // Runs until stop() (or, with untilIdle, until nothing is due or in flight). Returns a
  // sysexits code: 0, or 74 when the queue cannot be written, 78 for a bad resolver setup.
  int run();
  // Thread-safe and async-signal-free: asks run() to stop gracefully.
  void stop();
  const RunSummary& summary() const { return summary_; }

  // ResultSink (delivery loop threads)
  void deliveryDone(DeliveryResult&& result) override;
  void connectionOpened(const std::string& provider) override;
  void connectionClosed(const std::string& provider) override;

 private:
  struct DomainEntry;
  void pump();
  void route(DeliveryJob&& job, std::unordered_map<std::string, std::vector<DeliveryJob>>& batches);
  void resolveDomain(const std::string& domain);
  void resolveRoute(const std::string& key, const std::string& domain,
                    const campaigns::RouteConfig& route);
  void destinationResolved(const std::string& name, std::shared_ptr<const DestinationSpec> spec,
                           std::int64_t ttlMs);
  void destinationFailed(const std::string& name, smtp::Disposition disposition,
                         const std::string& error);
  void dispatch(const std::shared_ptr<const DestinationSpec>& spec,
                std::vector<DeliveryJob>&& jobs);
  void finishLocally(DeliveryJob&& job, smtp::Disposition disposition, const std::string& reply);
  void drainResults();
  void committed(std::vector<queue::Outcome>&& outcomes, const queue::Status& status);
  void refreshGauges();
  void beginShutdown();
  void finishShutdown();
  std::shared_ptr<const campaigns::Campaign> campaignFor(std::uint32_t number, std::string& error);
  std::int64_t now() const { return options_.clock(); }

  const campaigns::SalvoConfig& config_;
  queue::JobStore& store_;
  metrics::Metrics* metrics_;
  DispatcherOptions options_;
  RouteTable routes_;
  RetrySchedule retry_;
  DeliverySettings settings_;

  net::EventLoop control_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Renders signing campaigns' messages for the workers' connections; its tasks post to
  // the workers' loops, so it goes first.
  std::unique_ptr<RenderPool> renderPool_;
  std::unique_ptr<queue::OutcomeWriter> writer_;
  std::unique_ptr<net::Timer> pumpTimer_;
  std::unique_ptr<net::Timer> gaugeTimer_;
  std::unique_ptr<net::Timer> graceTimer_;
  std::unique_ptr<net::Timer> drainTimer_;  // gathers results before drainResults()

  // Destinations by name ("route:host:port" or a recipient domain), with expiry.
  struct Resolved {
    std::shared_ptr<const DestinationSpec> spec;
    std::int64_t expiresMs = 0;
  };
  std::unordered_map<std::string, Resolved> resolved_;
  // Jobs waiting for a name to resolve, by name.
  std::unordered_map<std::string, std::vector<DeliveryJob>> waiting_;
  std::unordered_map<std::uint32_t, std::shared_ptr<const campaigns::Campaign>> campaigns_;

  // What an attempt's outcome does not carry, kept on the control loop from drainResults()
  // until its outcome commits (for the event log and the labelled metrics).
  struct AttemptInfo {
    std::string destination;
    std::string provider;
    std::string mxHost;
    bool tls = false;
    int replyCode = 0;
    std::string enhanced;
    std::string category;  // "" when the outcome is not a failure
    bool hard = false;
  };
  std::map<queue::JobId, AttemptInfo> attemptInfo_;
  void recordCommitted(const queue::Outcome& outcome, std::int64_t nowMs);
  std::string providerOf(const std::string& destination, const std::string& mxHost) const;

  BounceClassifier classifier_;
  ProviderTable providers_;
  ShapingRules shaping_;
  // The limits of a destination no provider claims (routes too): the provider table's
  // defaults under delivery.max_connections_per_destination and messages_per_connection.
  DestinationLimits baseLimits_;
  DestinationLimits limitsFor(const std::string& domain, const std::vector<std::string>& mxHosts,
                              const Provider* provider) const;
  std::unique_ptr<EventLog> events_;
  // Hard bounces to add to the suppression list; written (synced) by the outcome writer
  // thread right after the batch holding their outcomes, never on the control loop.
  std::mutex suppressMutex_;
  std::vector<queue::Suppression> toSuppress_;
  std::atomic<std::uint64_t> suppressedAdded_{0};
  void writeSuppressions();  // writer thread
  // Writer thread, every OutcomeWriter tick: purges finished campaigns past
  // queue.retention (JobStore::sweepFinished).
  void sweepRetention();
  std::int64_t lastSweepMs_ = 0;  // writer thread

  std::mutex resultsMutex_;
  std::vector<DeliveryResult> results_;  // from delivery loops, drained on the control loop

  // Head-of-line protection: jobs handed to each destination's loop (route, MX site, or a
  // domain not resolved yet: DeliveryJob::site) and not yet finished. A destination at its
  // cap gets no more on its loop; its further due jobs wait, still leased, in its in-memory
  // ready queue while the destination holds less than its share (about a second of what it
  // finishes, at least the cap); beyond that they are handed back to the queue unattempted,
  // due again after a short delay, so one slow destination holding most due jobs cannot fill
  // the in-flight window, and a fast one costs no queue writes for jobs it will take soon.
  std::string destinationName(const std::string& recipient) const;  // route key or domain
  // The MX site key of the recipient's destination once resolved, else destinationName().
  std::string siteOf(const std::string& recipient) const;
  std::unordered_map<std::string, std::int64_t> perDestination_;
  std::int64_t perDestinationCap_ = 0;
  std::unordered_map<std::string, std::deque<DeliveryJob>> ready_;  // no empty queues
  // After a pause or cancel (the store's campaign-state generation moved), the jobs of
  // campaigns no longer active that are held in memory and not yet on a connection go back
  // to the queue, due now, so they do not go out after the command answered: ready-queue
  // jobs and jobs waiting for DNS at once, those on the loops through Worker::withdraw()
  // (they come back as unattempted results).
  void withdrawInactive(std::int64_t nowMs, std::vector<queue::Outcome>& handBack);
  std::uint64_t campaignStateGeneration_ = 0;
  std::vector<std::uint32_t> inactive_;  // campaigns of this run not active, as last seen
  // How many jobs `site` may hold, on its loop and in its ready queue together.
  std::int64_t shareOf(const std::string& site, std::int64_t nowMs) const;
  // held + ready queue of a destination.
  std::int64_t load(const std::string& site) const;
  // Uncounts one job that `site` held (finished, or withdrawn before reaching a connection).
  void releaseHeld(const std::string& site);
  // Moves a leased job to its destination's loop batch (or finishes it when its campaign
  // is missing), counting it against the destination.
  void handOut(DeliveryJob&& job,
               std::unordered_map<std::string, std::vector<DeliveryJob>>& batches);
  // Feeds destinations that finished jobs from their ready queues, and hands back what a
  // ready queue holds beyond its destination's (shrunken) share.
  void feedReady(std::int64_t nowMs);
  // Queues a leased job's return to the queue unattempted, due again at `dueMs` (the
  // destination cap, a shrunken share, or the campaign's rate), and counts it.
  void handBackJob(std::vector<queue::Outcome>& handBack, queue::LeasedJob&& job,
                   std::int64_t dueMs);
  // How fast each destination finishes jobs (results per second over a short window): it
  // sets the destination's share, and a job handed back for the cap is due again when its
  // destination will have room.
  struct Drain {
    std::int64_t windowStartMs = 0;
    std::int64_t finished = 0;
    double perSecond = 0;
  };
  std::unordered_map<std::string, Drain> drain_;
  void noteFinished(const std::string& site, std::int64_t nowMs);
  double drainPerSecond(const std::string& site, std::int64_t nowMs) const;  // 0: unknown
  std::int64_t releaseDelayMs(const std::string& site, std::int64_t nowMs) const;
  // Saturated destinations the due scan waits for (see pump()), and until when at most.
  std::vector<std::string> stalledOn_;
  std::int64_t stalledUntilMs_ = 0;
  std::int64_t handedBackDueMs_ = 0;  // when the last jobs handed back are due again
  // Per-campaign `rate` limiters (the campaign's own limit, on top of destinations').
  std::unordered_map<std::uint32_t, std::unique_ptr<RateLimiter>> campaignRates_;
  std::unordered_map<std::uint32_t, std::int64_t> campaignSlotMs_;  // last slot handed out

  std::int64_t inFlight_ = 0;        // leased and not yet committed
  std::int64_t leasedDeferred_ = 0;  // of those, how many were leased from state Deferred
  bool stopping_ = false;
  int workersDrained_ = 0;
  int exitCode_ = 0;
  RunSummary summary_;
};

}  // namespace salvo::engine
